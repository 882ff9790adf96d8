"""What wifiprov's NetworkManager backends report on the real stack (guest/radio_cases.py): the
device radio (NmRadio) joining hostapd networks, and the provisioner's laptop WiFi (NmPhoneWifi)
joining a device's access point that NetworkManager serves (WPA2, and open)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.realradio import vm
from tests.realradio.guest.radio_cases import PASSWORD, WRONG

EXPECTED = {
    "wpa2_right": "joined",
    "sae_right": "joined",
    "mixed_right": "joined",
    "hidden_right": "joined",
    "wpa2_wrong": "invalid_credentials",
    "sae_wrong": "invalid_credentials",
    "mixed_wrong": "invalid_credentials",
    "hidden_wrong": "invalid_credentials",
    "absent": "not_found",
    "no_dhcp": "no_ip_assigned",
    "phone_right": "joined",
    "phone_wrong": "join_failed",
    "phone_open": "joined",  # the agent's default AP: open, as Edgent's
    "peap_right": "joined",
    "peap_wrong": "invalid_credentials",
    "static_ip": "joined",
}
# hostapd's log line when it rejects the password: the SAE confirm does not verify; WPA2's
# 4-way handshake gives up after its retries (it logs each bad MIC before that); the EAP server
# sends EAP-Failure.
REJECTED = re.compile(
    r"^(\d+\.\d+): .*(SAE: Confirm mismatch|PTKSTART: Retry limit|CTRL-EVENT-EAP-FAILURE)", re.M
)


def cases(run: vm.Run) -> dict[str, dict[str, Any]]:
    lines = run.text("cases.jsonl").splitlines()
    return {r["case"]: r for r in map(json.loads, lines)}


def rejected_at(run: vm.Run, start: float, end: float) -> float | None:
    """When hostapd (wlan1) rejected the password during [start, end], per its log."""
    for match in REJECTED.finditer(run.text("logs/hostapd-wlan1.log")):
        if start <= float(match[1]) <= end:
            return float(match[1])
    return None


@pytest.mark.parametrize("case", list(EXPECTED))
def test_what_wifiprov_reports(failures: vm.Run, case: str) -> None:
    record = cases(failures).get(case)
    assert record is not None, f"no result for {case}\n{failures.describe()}"
    assert record["result"] == EXPECTED[case], record


@pytest.mark.parametrize(
    "case", ["wpa2_wrong", "sae_wrong", "mixed_wrong", "hidden_wrong", "peap_wrong"]
)
def test_a_wrong_password_is_reported_within_5_s_of_the_access_point_rejecting_it(
    failures: vm.Run, case: str
) -> None:
    record = cases(failures)[case]
    rejected = rejected_at(failures, record["start"], record["end"])
    assert rejected is not None, f"hostapd never rejected the password in {case}: {record}"
    late = record["end"] - rejected
    assert late <= 5, f"{case}: reported {late:.1f} s after the access point rejected it: {record}"
    assert "wrong password" in record["detail"], record


def test_a_static_address_is_applied_without_dhcp(failures: vm.Run) -> None:
    record = cases(failures)["static_ip"]
    assert record["detail"] == "192.168.77.200", record


def test_the_phone_says_the_device_passphrase_is_wrong(failures: vm.Run) -> None:
    record = cases(failures)["phone_wrong"]
    assert "rejected the passphrase" in record["detail"], record
    assert record["seconds"] <= 15, record  # not NM's 25 s wait for "not found"


def test_no_password_reaches_the_output(failures: vm.Run) -> None:
    text = failures.text("script.log")
    for secret in (PASSWORD, WRONG, "device passphrase", "not the passphrase"):
        assert secret not in text, f"{secret!r} in the guest's output"


def test_networkmanager_alone_calls_a_wrong_sae_password_not_found(failures: vm.Run) -> None:
    """Why wifiprov watches wpa_supplicant: NM's own verdict (recorded for docs/device.md).
    If a NetworkManager release reports these as a wrong password, the watch is redundant."""
    found = cases(failures)
    for case in ("sae_wrong_nm_only", "mixed_wrong_nm_only"):
        assert found[case]["result"] in ("not_found", "invalid_credentials"), found[case]
