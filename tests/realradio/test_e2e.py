"""Scenario 1 on the real stack (guest/e2e.sh): `wifiprov device --radio nm` opens its access
point through NetworkManager, a phone radio joins it (DHCP, DNS, the captive redirect), and
`wifiprov provision --wifi nm` provisions it; the device joins hostapd's "home" network and logs
in to a `wifiprov cloud`. Then, on the running device: the home AP and NetworkManager restarted;
failover between two saved networks (the agent restarted with a WPA2 passphrase on its AP,
reprovisioned through it onto a second network, which then goes away); the radios removed."""

from __future__ import annotations

import json
from typing import Any

from tests.realradio import vm


def results(run: vm.Run) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in run.text("e2e.txt").splitlines() if "=" in line)
    return {key: value.strip() for key, value in pairs}


def provision_events(
    run: vm.Run, name: str = "provision.jsonl"
) -> list[tuple[float, dict[str, Any]]]:
    """`wifiprov provision --json` lines, each with the time the guest read it."""
    events = []
    for line in run.text(name).splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith("{"):
            events.append((float(stamp), json.loads(text)))
    return events


def test_the_device_opens_its_access_point_through_networkmanager(e2e: vm.Run) -> None:
    found = results(e2e)
    assert found.get("ap_ssid", "").startswith("Blynk Lamp-"), e2e.describe()
    # --ap-passphrase: WPA2 (RSN), no SAE (the agent's open AP: the failures group, phone_open)
    assert found["ap_mode"].split() == ["ap", "shared", "wpa-psk", "rsn"], found


def test_a_phone_joins_gets_an_address_resolves_and_is_sent_to_the_portal(e2e: vm.Run) -> None:
    found = results(e2e)
    assert found.get("phone_ip", "").startswith("192.168.4."), e2e.describe()
    assert found["dns_blynk_setup"] == "192.168.4.1", found
    assert found["dns_other"] == "192.168.4.1", found  # captive: every name is the portal
    assert found["captive_status"].split()[1:2] == ["302"], found
    assert "192.168.4.1" in found["captive_location"] or "blynk.setup" in found["captive_location"]


def test_provisioning_brings_the_device_onto_the_home_network_and_the_cloud(e2e: vm.Run) -> None:
    steps = [event["step"] for _, event in provision_events(e2e)]
    for step in ("find", "join", "board_info", "config", "online", "done"):
        assert step in steps, f"{steps}\n{e2e.text('logs/provision.err')[-3000:]}"
    device_log = e2e.text("logs/device.log")
    assert "joined 'Home WiFi' with address 192.168.77." in device_log, device_log[-3000:]
    assert "logged in to the cloud" in device_log, device_log[-3000:]
    done = next(event for _, event in provision_events(e2e) if event["step"] == "done")
    assert (done["device"]["name"], done["device"]["online"]) == ("Kitchen", True), done


def test_no_password_reaches_a_log(e2e: vm.Run) -> None:
    logs = ("logs/device.log", "logs/cloud.log", "provision.jsonl", "logs/provision.err")
    logs += ("provision-office.jsonl", "logs/provision-office.err", "reconfigure.jsonl")
    logs += ("logs/reconfigure.err", "script.log")
    for name in logs:
        text = e2e.text(name)
        for secret in ("correct horse", "office pass 1", "device pass 1"):
            assert secret not in text, (name, secret)


def test_the_home_ap_restarting_is_rejoined_and_the_device_ap_never_reopens(e2e: vm.Run) -> None:
    found = results(e2e)
    # the agent saw its network go: NM's lost link, or the cloud closing the silent connection
    assert "ap_gone_noticed" in found, f"{found}\n{e2e.text('logs/device.log')[-3000:]}"
    assert "ap_back_relogin" in found, f"{found}\n{e2e.text('logs/device.log')[-3000:]}"
    assert found["opened_after_ap_restart"] == "1", found


def test_networkmanager_restarting_under_the_agent_is_a_lost_link_then_rejoined(
    e2e: vm.Run,
) -> None:
    found = results(e2e)
    assert found["nm_stopped_seen"] != "0", found
    assert "nm_restart_relogin" in found, f"{found}\n{e2e.text('logs/device.log')[-3000:]}"
    assert found["opened_after_nm_restart"] == found["opened_after_failover"], found
    assert found["device_wlan0_after_nm"].startswith("100 "), found
    device_log = e2e.text("logs/device.log")
    during = device_log[device_log.find("NetworkManager left the system bus") :]
    during = during[: during.find("logged in to the cloud")]
    assert "task died" not in during, during[:3000]  # NM not ready yet is a failed attempt


def test_the_radio_removed_is_a_lost_link_and_the_agent_keeps_retrying(e2e: vm.Run) -> None:
    found = results(e2e)
    assert "radio_removed_noticed" in found, found
    assert found["device_alive_after_removal"] == "yes", found
    device_log = e2e.text("logs/device.log")
    tail = device_log[device_log.rfind("the device was removed") :]
    assert "task died" not in tail, tail[:3000]  # a handled failure, not a crash
    assert "no WiFi device 'wlan0'" in tail, tail[:3000]


HOME, OFFICE = b"Home WiFi".hex(), b"Office WiFi".hex()


def test_reconfigure_reopens_the_protected_ap_and_provisions_onto_a_second_network(
    e2e: vm.Run,
) -> None:
    found = results(e2e)
    assert found["reconfigure_rc"] == "0", e2e.text("logs/reconfigure.err")
    assert "reconfigure_ap_open" in found, e2e.text("logs/device.log")[-3000:]
    steps = [event["step"] for _, event in provision_events(e2e, "provision-office.jsonl")]
    for step in ("find", "join", "board_info", "config", "online", "done"):
        assert step in steps, f"{steps}\n{e2e.text('logs/provision-office.err')[-3000:]}"
    assert found["office_joined"] == "1", e2e.text("logs/device.log")[-3000:]


def test_the_new_network_is_saved_first_and_the_old_one_kept(e2e: vm.Run) -> None:
    assert results(e2e)["saved_networks"].split() == [OFFICE, HOME]


def test_the_device_fails_over_to_the_older_network_without_opening_its_ap(e2e: vm.Run) -> None:
    found = results(e2e)
    device_log = e2e.text("logs/device.log")
    after = device_log[device_log.find("Office WiFi's AP stops") :]
    assert "failover_joined" in found and "failover_relogin" in found, f"{found}\n{after[:4000]}"
    assert found["opened_after_failover"] == found["opened_before_failover"], after[:4000]
    assert found["device_wlan0_after_failover"].startswith("100 (connected) 192.168.77."), found
    # the newest network is tried first, then the older one
    tried = after.find("joining 'Office WiFi'")
    assert 0 <= tried < after.find("joined 'Home WiFi'"), after[:4000]
    assert "task died" not in after[: after.find("joined 'Home WiFi'")], after[:4000]
