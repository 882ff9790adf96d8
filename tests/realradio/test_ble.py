"""Real BlueZ (tests/realradio/guest/ble.sh): wifiprov's device agent advertising Blynk.Inject on
one virtual controller, provisioned by `wifiprov provision --ble` (bleak) from the other against
a real `wifiprov cloud`, a wrong password (the provisioner's session) then the right one
(`wifiprov provision --ble`); and blynk-provisioning's own device session
provisioned by wifiprov's provisioner session; and blynk-provisioning's whole ceremony
(`get_credentials()` with `configure_network=True`, its WiFi join through NetworkManager, its MQTT
5 TLS check-in) provisioned by `wifiprov provision --ble`, a wrong password then the right one.
Times are reported, never asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.realradio import vm


@pytest.fixture(scope="module")
def ble(guests: dict[str, vm.Run]) -> Iterator[vm.Run]:
    """The BLE group's run, from the tier's scheduler (tests/realradio/conftest.py)."""
    run = guests["ble"]
    if run.rc != 0:
        raise vm.GuestError(f"the guest's script failed\n{run.describe()}")
    yield run


def results(run: vm.Run) -> dict[str, str]:
    pairs = (line.partition("=") for line in run.text("ble.txt").splitlines())
    return {k: v for k, _, v in pairs if k}


def events(run: vm.Run, name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in run.text(name).splitlines() if line.startswith("{")]


def test_device_advertises_its_blynk_name(ble: vm.Run) -> None:
    r = results(ble)
    assert r.get("bluetooth") == "ready", ble.describe()
    assert r["ble_name"].startswith("Blynk Lamp-") and len(r["ble_name"].encode()) <= 29


def test_wrong_password_is_reported_with_its_code(ble: vm.Run) -> None:
    r = results(ble)
    assert r.get("wrong_found", "").startswith("Blynk Lamp-"), ble.describe()
    assert r["wrong_result"] == "failed 722", ble.describe()  # net_fail invalid_credentials


def test_right_password_provisions_and_names_the_device(ble: vm.Run) -> None:
    r = results(ble)
    got = events(ble, "ble-right.jsonl")
    assert r["provision_right_rc"] == "0", (got, ble.describe())
    assert any(e["step"] == "find" and "rssi" in e for e in got)
    steps = [e["step"] for e in got]
    for step in ("find", "connect", "info", "scan", "token", "config", "claimed", "online", "done"):
        assert step in steps, steps
    states = [e.get("state") for e in got if e["step"] == "progress"]
    assert states[:2] == ["connecting_net", "connecting_cloud"] and "connected" in states
    assert r["device_state"].endswith("-> RUNNING")
    assert r["secrets_in_device_log"] == "0"


def test_blynk_provisioning_device_is_provisioned_by_our_provisioner(ble: vm.Run) -> None:
    r = results(ble)
    assert r.get("blynk_found", "").startswith("Blynk Test-"), ble.describe()
    assert r["blynk_info_tmpl"] == "TMPLble0test"
    assert r["blynk_ifs"] == "eth:ready"  # configure_network=False: the token only
    assert r["blynk_result"] == "connected"
    assert r["blynk_saved_token_ok"] == "1" and r["blynk_saved_server"] == "127.0.0.1"
    assert r["blynk_session_returned"] == "True"


def test_blynk_provisioning_wrong_password_is_its_net_fail(ble: vm.Run) -> None:
    """Its NetworkManager join fails: `net_fail invalid_credentials`, our code 722."""
    r = results(ble)
    got = events(ble, "ble-full-wrong.jsonl")
    assert r["provision_full-wrong_rc"] != "0", (got, ble.describe())
    failed = [e for e in got if e["step"] == "failed"]
    assert failed and failed[-1]["code"] == 722, (got, ble.describe())
    scan = next(e for e in got if e["step"] == "scan")  # its scan, through NetworkManager
    assert any(n["ssid"] == "Home WiFi" and n["sec"] == "WPA2" for n in scan["networks"])


def test_blynk_provisioning_whole_ceremony(ble: vm.Run) -> None:
    """get_credentials() returns the token and server it was given over BLE after joining
    "Home WiFi" through NetworkManager; its MQTT 5 TLS check-in (info/mcu) makes the device
    online in the cloud, which the provisioner sees claimed and names."""
    r = results(ble)
    got = events(ble, "ble-full-right.jsonl")
    assert r["provision_full-right_rc"] == "0", (got, ble.describe())
    steps = [e["step"] for e in got]
    for step in ("find", "connect", "info", "scan", "token", "config", "claimed", "online", "done"):
        assert step in steps, steps
    states = [e.get("state") for e in got if e["step"] == "progress"]
    assert states[:2] == ["connecting_net", "connecting_cloud"] and "connected" in states
    assert next(e for e in got if e["step"] == "done")["device"]["name"] == "Porch"
    assert r["full_server"] == "192.168.77.1" and r["full_token_length"] == "32"
    assert r["full_wlan0"].startswith("100 (connected) Home WiFi 192.168.77."), r["full_wlan0"]
    assert r["full_mqtt_connected"] == "1" and r["full_checkin"] == "1"
    assert r["full_device_exited"] == "yes"
    assert r["full_secrets_in_logs"] == "0"
