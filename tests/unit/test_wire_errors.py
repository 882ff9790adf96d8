"""Unit tests for wifiprov.wire.errors: provisioning error codes and their explanations."""

from __future__ import annotations

import pytest

from wifiprov.wire.errors import EXPLANATIONS, Explanation, ProvisioningError, explain

CODES = [e for e in ProvisioningError if e is not ProvisioningError.NONE]


def is_sentence(text: str) -> bool:
    return (
        bool(text)
        and text == text.strip()
        and text[0].isupper()
        and text.endswith(".")
        and len(text.split()) >= 3
    )


def test_code_values() -> None:
    assert {e.name: int(e) for e in ProvisioningError} == {
        "NONE": 0,
        "CONFIG_INVALID": 700,
        "NETWORK_TIMEOUT": 701,
        "CLOUD_TIMEOUT": 702,
        "TOKEN_REJECTED": 703,
        "NETWORK_OTHER": 704,
        "CLOUD_OTHER": 705,
        "DNS_FAILED": 710,
        "TLS_REJECTED": 711,
        "CAPTIVE_PORTAL": 712,
        "NETWORK_NOT_FOUND": 720,
        "NO_CABLE": 721,
        "AUTH_FAILED": 722,
        "NO_ADDRESS": 723,
        "SIM_MISSING": 730,
        "SIM_LOCKED": 731,
        "SIM_WRONG_PIN": 732,
    }


@pytest.mark.parametrize("code", CODES, ids=lambda e: e.name)
def test_every_code_has_a_sentence_explanation(code: ProvisioningError) -> None:
    assert int(code) in EXPLANATIONS
    explanation = explain(code)
    assert isinstance(explanation, Explanation)
    assert explanation is EXPLANATIONS[int(code)]
    assert is_sentence(explanation.what), explanation.what
    assert is_sentence(explanation.todo), explanation.todo
    assert "unknown" not in explanation.what.lower()


@pytest.mark.parametrize("code", CODES, ids=lambda e: e.name)
def test_explain_accepts_plain_ints(code: ProvisioningError) -> None:
    assert explain(int(code)) == explain(code)


def test_explanations_cover_exactly_the_codes() -> None:
    assert set(EXPLANATIONS) == {int(e) for e in ProvisioningError}


def test_explanations_are_distinct() -> None:
    whats = [EXPLANATIONS[int(c)].what for c in CODES]
    assert len(set(whats)) == len(whats)


def test_none_means_no_error() -> None:
    assert explain(ProvisioningError.NONE).what == "No error."
    assert explain(0).todo


@pytest.mark.parametrize("code", [999, 1, 706, 799, -3, 100000])
def test_unknown_code_is_explained_with_its_number(code: int) -> None:
    explanation = explain(code)
    assert str(code) in explanation.what
    assert is_sentence(explanation.what)
    assert is_sentence(explanation.todo)
    assert explanation not in EXPLANATIONS.values()


def test_explain_999() -> None:
    assert "999" in explain(999).what


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (720, ("not found", "could not find", "cannot find")),
        (722, ("password",)),
        (723, ("address", "dhcp")),
        (702, ("cloud",)),
        (710, ("resolve", "dns")),
        (711, ("certificate",)),
        (703, ("token",)),
    ],
)
def test_explanation_mentions_the_concept(code: int, words: tuple[str, ...]) -> None:
    explanation = explain(code)
    assert any(w in explanation.what.lower() for w in words), explanation.what
    assert isinstance(explanation.todo, str) and explanation.todo


def test_explanation_fields() -> None:
    assert Explanation._fields == ("what", "todo")
