"""Unit tests for wifiprov.wire.naming: the device / AP name rule (PROTOCOLS.md section 2)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wifiprov.wire.naming import (
    AP_NAME_LIMIT,
    BLE_NAME_LIMIT,
    CLASSIC_ALPHABET,
    NEWER_ALPHABET,
    ap_name,
    ble_name,
    chip_code,
    chip_crc,
    cut_utf8,
    encode_code,
    mac_chip_id,
)

MAC = "24:6F:28:AA:BB:CC"
LONG_TEMPLATE = "A Very Long Template Name For Testing"


# --- the worked example of PROTOCOLS.md ----------------------------------------------------------


def test_worked_example_crc_and_code() -> None:
    chip_id = mac_chip_id(MAC)
    assert chip_id == bytes([0x24, 0x6F, 0x28, 0xAA, 0xBB, 0xCC])
    assert chip_crc(chip_id) == 0x940152F1
    assert chip_code(chip_id) == "W8FH"
    assert chip_code(chip_id, NEWER_ALPHABET) == "W8FH"  # no U in it, so both alphabets agree


def test_worked_example_ap_name() -> None:
    name = ap_name("Blynk", LONG_TEMPLATE, chip_code(mac_chip_id(MAC)))
    assert name == "Blynk A Very Long Template-W8FH"
    assert len(name) == AP_NAME_LIMIT == 31


def test_worked_example_ble_name() -> None:
    # Edgent-Arduino: 29 bytes, prefix first, then "-code", then what is left of the name.
    name = ble_name("Blynk", LONG_TEMPLATE, "W8FH")
    assert name == "Blynk A Very Long Templa-W8FH"
    assert len(name) == BLE_NAME_LIMIT == 29


def test_crc_is_chained_four_times() -> None:
    data = mac_chip_id(MAC)
    crc = 0
    for _ in range(4):
        crc = zlib.crc32(data, crc)
    assert chip_crc(data) == crc


def test_esp32_chip_id_is_the_mac_and_two_zero_bytes() -> None:
    # An ESP32 hashes its eFuse MAC as a little-endian uint64: a different code for the same MAC.
    assert chip_crc(mac_chip_id(MAC) + b"\0\0") == 0xE0828B9E
    assert chip_code(mac_chip_id(MAC) + b"\0\0") == "1W7R"


# --- the code -----------------------------------------------------------------------------------


def test_alphabets() -> None:
    for alphabet in (CLASSIC_ALPHABET, NEWER_ALPHABET):
        assert len(alphabet) == len(set(alphabet)) == 24
    assert CLASSIC_ALPHABET.replace("U", "X") == NEWER_ALPHABET


def test_equal_adjacent_digits_take_the_next_character() -> None:
    assert encode_code(0) == "0W0W"  # digits 0 0 0 0: every second 0 becomes W
    assert encode_code(1 + 1 * 24) == "W80W"  # digits 1 1 0 0: W W -> W 8
    assert encode_code(23 + 23 * 24) == "R0W0"  # digits 23 23 0 0: R R -> R 0 (wraps)


def test_least_significant_digit_first() -> None:
    n = 5 + 7 * 24 + 11 * 24**2 + 13 * 24**3
    a = CLASSIC_ALPHABET
    assert encode_code(n) == a[5] + a[7] + a[11] + a[13]


def test_newer_alphabet_differs_only_where_u_was() -> None:
    u = CLASSIC_ALPHABET.index("U")
    assert encode_code(u) == "U0W0"
    assert encode_code(u, NEWER_ALPHABET) == "X0W0"


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_code_never_repeats_a_character(n: int) -> None:
    code = encode_code(n)
    assert len(code) == 4
    assert all(c in CLASSIC_ALPHABET for c in code)
    assert all(a != b for a, b in zip(code, code[1:], strict=False))


@pytest.mark.parametrize("mac", ["24-6f-28-aa-bb-cc", "246F28AABBCC", "24:6f:28:aa:bb:cc"])
def test_mac_forms(mac: str) -> None:
    assert mac_chip_id(mac) == mac_chip_id(MAC)


@pytest.mark.parametrize("mac", ["", "24:6F:28:AA:BB", "24:6F:28:AA:BB:CC:DD", "24:6F:28:AA:BB:GG"])
def test_bad_mac(mac: str) -> None:
    with pytest.raises(ValueError):
        mac_chip_id(mac)


# --- truncation ---------------------------------------------------------------------------------


def test_short_names_are_not_cut() -> None:
    assert ap_name("Blynk", "Lamp", "W8FH") == "Blynk Lamp-W8FH"
    assert ble_name("Blynk", "Lamp", "W8FH") == "Blynk Lamp-W8FH"


def test_ap_name_cuts_in_bytes_never_inside_a_character() -> None:
    # 20 bytes of room; "€" is 3 bytes: 6 of them (18 bytes) fit, the 7th would be cut.
    name = ap_name("Blynk", "€" * 7, "W8FH")
    assert name == "Blynk " + "€" * 6 + "-W8FH"
    assert len(name.encode()) == 29
    # 2-byte characters fill the room exactly; a 4-byte one at the edge is dropped whole.
    assert ap_name("Blynk", "Ä" * 11, "W8FH") == "Blynk " + "Ä" * 10 + "-W8FH"
    assert ap_name("Blynk", "abcdefghijklmnopq😀", "W8FH") == "Blynk abcdefghijklmnopq-W8FH"


@given(st.text(max_size=40), st.text(max_size=40))
def test_names_fit_their_limits(prefix: str, template: str) -> None:
    name = ble_name(prefix, template, "W8FH")
    assert len(name.encode("utf-8", "surrogatepass")) <= BLE_NAME_LIMIT
    if len(prefix.encode("utf-8", "surrogatepass")) <= 20:
        name = ap_name(prefix, template, "W8FH")
        assert len(name.encode("utf-8", "surrogatepass")) <= AP_NAME_LIMIT
        assert name.startswith(prefix + " ") and name.endswith("-W8FH")


@given(st.text(), st.integers(min_value=-1, max_value=80))
def test_cut_utf8_keeps_whole_characters(text: str, limit: int) -> None:
    cut = cut_utf8(text, limit)
    assert text.startswith(cut)
    assert len(cut.encode("utf-8", "surrogatepass")) <= max(limit, 0)
    if len(text) > len(cut):  # the next character would not have fitted
        assert len((cut + text[len(cut)]).encode("utf-8", "surrogatepass")) > limit


def test_ap_name_keeps_classic_quirks() -> None:
    assert ap_name("Blynk", "", "W8FH") == "Blynk -W8FH"  # as the firmware does
    assert ap_name("ACME Devices", LONG_TEMPLATE, "W8FH") == "ACME Devices A Very Long T-W8FH"


def test_ap_name_rejects_a_prefix_that_leaves_no_room() -> None:
    with pytest.raises(ValueError):
        ap_name("P" * 26, "x", "W8FH")
    assert ap_name("P" * 25, "x", "W8FH") == "P" * 25 + " -W8FH"


def test_ble_name_priorities() -> None:
    assert ble_name("Blynk", "Blynk", "W8FH") == "Blynk-W8FH"  # name equal to prefix: dropped
    assert ble_name("Blynk", "", "W8FH") == "Blynk-W8FH"
    assert ble_name("P" * 24, "Lamp", "W8FH") == "P" * 24 + "-W8FH"  # no room for the name
    assert ble_name("P" * 26, "Lamp", "W8FH") == "P" * 26 + "-W8"  # the code is cut
    assert ble_name("P" * 40, "Lamp", "W8FH") == "P" * 29  # the prefix is cut
    assert ble_name("", "Lamp", "W8FH") == "Lamp-W8FH"
