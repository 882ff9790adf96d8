"""Print what the last real-radio run measured (build/realradio/out), as the tables in
docs/device.md and docs/benchmarks.md: ``.venv/bin/python -m tests.realradio.report``."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from tests.realradio import vm
from tests.realradio.test_ble import results as results_ble
from tests.realradio.test_e2e import provision_events, results
from tests.realradio.test_failures import cases, rejected_at

NM_STATES = {30: "disconnected", 50: "config", 60: "need-auth", 70: "ip-config", 100: "activated",
             110: "deactivating", 120: "failed"}  # fmt: skip


CASES = {
    "wpa2_right": "WPA2, right password",
    "wpa2_wrong": "WPA2, wrong password",
    "sae_right": "WPA3-SAE, right password",
    "sae_wrong": "WPA3-SAE, wrong password",
    "mixed_right": "WPA2/WPA3 transition, right password",
    "mixed_wrong": "WPA2/WPA3 transition, wrong password",
    "hidden_right": "hidden WPA2 network, right password",
    "hidden_wrong": "hidden WPA2 network, wrong password",
    "absent": "network absent",
    "no_dhcp": "no DHCP server on the network",
    "phone_right": "laptop (`--wifi nm`) joining a device's AP (NM, WPA2), right passphrase",
    "phone_wrong": "laptop (`--wifi nm`) joining a device's AP (NM, WPA2), wrong passphrase",
    "phone_open": "laptop (`--wifi nm`) joining a device's open AP (NM)",
    "peap_right": "WPA2-Enterprise PEAP/MSCHAPv2, right password",
    "peap_wrong": "WPA2-Enterprise PEAP/MSCHAPv2, wrong password",
    "static_ip": "static address, no DHCP server",
    "sae_wrong_nm_only": "WPA3-SAE, wrong password, NM alone",
    "mixed_wrong_nm_only": "WPA2/WPA3 transition, wrong password, NM alone",
}


def said(record: dict[str, Any]) -> str:
    """NM's state changes that carried a reason, and the supplicant's status codes."""
    words = []
    for event in record.get("events", []):
        if event[1] == "nm" and event[4]:
            words.append(f"NM {NM_STATES.get(event[2], event[2])} reason {event[4]}")
        elif event[1] == "wpas":
            for key in ("AuthStatusCode", "DisconnectReason"):
                if event[2].get(key):
                    words.append(f"wpas {key} {event[2][key]}")
    seen: list[str] = []
    for word in words:  # the supplicant repeats itself on every retry
        if word not in seen:
            seen.append(word)
    return ", ".join(seen) or "-"


def failure_table(run: vm.Run) -> list[str]:
    rows = ["| case | NM / wpa_supplicant said | took | wifiprov reports |", "|---|---|---|---|"]
    for name, record in cases(run).items():
        took = f"{record.get('seconds', 0):.1f} s"
        rejected = rejected_at(run, record.get("start", 0), record.get("end", 0))
        if rejected is not None:
            took += f" ({record['end'] - rejected:.1f} s after the AP rejected it)"
        reports = record["result"] + (f" ({record['code']})" if "code" in record else "")
        rows.append(f"| {CASES.get(name, name)} | {said(record)} | {took} | {reports} |")
    return rows


def _stamp(line: str) -> float:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


class DeviceLog:
    """The device agent's log (its lines carry milliseconds), from ``after`` (a marker line
    the group script wrote into it) on."""

    def __init__(self, run: vm.Run, after: str = "") -> None:
        text = run.text("logs/device.log")
        self.lines = text[text.find(after) :].splitlines() if after in text else []

    def first(self, pattern: str, since: float = 0.0) -> float:
        for line in self.lines:
            if re.match(r"\d{4}-\d\d-\d\d ", line) and re.search(pattern, line):
                if (stamp := _stamp(line)) >= since:
                    return stamp
        raise LookupError(pattern)

    def line(self, pattern: str) -> str:
        return next((line for line in self.lines if re.search(pattern, line)), "")


def device_times(run: vm.Run) -> dict[str, float]:
    """Scenario 1's intervals from the device agent's log."""
    log = DeviceLog(run)
    first = log.first
    return {
        "boot → AP open (agent started, NM's AP activation)": first("access point '.*' open")
        - first("boot: "),
        "/config → cloud login": first("logged in to the cloud") - first("configuration received"),
        "  of which NM joining the home network (radio, DHCP)": first("joined '")
        - first("joining '"),
        "  of which the rest (AP down, cloud login)": (
            first("logged in to the cloud") - first("configuration received")
        )
        - (first("joined '") - first("joining '")),
    }


def reprovision_times(run: vm.Run) -> dict[str, float]:
    """The second provisioning (through the WPA2-protected AP, onto Office WiFi)."""
    log = DeviceLog(run, "provisioning onto Office WiFi")
    got = log.first("configuration received")
    joining = log.first("joining 'Office WiFi'", got)
    joined = log.first("joined 'Office WiFi'", got)
    login = log.first("logged in to the cloud", got)
    return {
        "/config → cloud login (Office WiFi)": login - got,
        "  of which NM joining Office WiFi (radio, DHCP)": joined - joining,
        "  of which the rest (AP down, cloud login)": (login - got) - (joined - joining),
    }


def failover_times(run: vm.Run) -> dict[str, float]:
    """Office WiFi's AP stopped under the running device: what the agent did, from its log."""
    log = DeviceLog(run, "Office WiFi's AP stops")
    lost = log.first("link lost|cloud connection lost")
    trying = log.first("joining 'Office WiFi'", lost)
    failed = log.first("could not join 'Office WiFi'", trying)
    home = log.first("joining 'Home WiFi'", failed)
    joined = log.first("joined 'Home WiFi'", home)
    login = log.first("logged in to the cloud", joined)
    return {
        "link lost → first join tried (Office WiFi)": trying - lost,
        "Office WiFi tried until it failed": failed - trying,
        "Home WiFi: joining → joined (radio, DHCP)": joined - home,
        "joined → logged in to the cloud": login - joined,
        "link lost → logged in again": login - lost,
    }


def ble_times(name: str) -> dict[str, float]:
    """From `wifiprov provision --ble --json` events, by their ``elapsed`` (the provisioner's own
    clock): the Bluetooth link open (the next thing is the first GATT write, ``info``) and
    ``config`` (``set`` and ``connect`` written) to the device's ``connected``, and on to the
    cloud."""
    lines = vm.latest("ble").text(name).splitlines()
    events = [json.loads(line[line.find("{") :]) for line in lines if "{" in line]

    def at(step: str, state: str | None = None) -> float:
        for event in events:
            if event["step"] == step and (state is None or event.get("state") == state):
                return float(event["elapsed"])
        raise LookupError(step)

    connected = at("progress", "connected")
    return {
        "first GATT write → connected": connected - at("connect"),
        "config written → connected": connected - at("config"),
        "connected → online in the cloud": at("online") - connected,
    }


def main() -> None:
    failures, e2e = vm.latest("failures"), vm.latest("e2e")
    print("\n".join(failure_table(failures)))
    print()
    found = results(e2e)
    print(f"process start → AP open: {float(found['ap_ready_seconds']):.1f} s (wall)")
    for what, seconds in device_times(e2e).items():
        print(f"{what}: {seconds:.1f} s")
    events = provision_events(e2e)
    if events:
        print(f"wifiprov provision, first to last event: {events[-1][0] - events[0][0]:.1f} s")
    for key, value in found.items():
        if key.endswith(("_relogin", "_noticed", "_seen", "_joined", "_open", "_seconds")) or (
            key.startswith(("opened", "device"))
        ):
            print(f"{key}: {value}")
    for table in (reprovision_times, failover_times):
        try:
            for what, seconds in table(e2e).items():
                print(f"{what}: {seconds:.1f} s")
        except LookupError as exc:
            print(f"{table.__name__}: not in the log ({exc})")
    print()
    ble = vm.latest("ble")
    try:
        for step, seconds in ble_times("ble-right.jsonl").items():
            print(f"BLE, wifiprov's agent (sim WiFi, real BlueZ), {step}: {seconds:.2f} s")
    except LookupError as exc:
        print(f"BLE: not in the last run ({exc})")
    for key, value in results_ble(ble).items():
        if key.endswith("_seconds"):
            print(f"BLE {key}: {value}")


if __name__ == "__main__":
    main()
