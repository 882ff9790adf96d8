"""Print what the last real-radio run measured (build/realradio/out), as the tables in
docs/device.md and docs/benchmarks.md: ``.venv/bin/python -m tests.realradio.report``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from tests.realradio import vm
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


def device_times(run: vm.Run) -> dict[str, float]:
    """Intervals from the device agent's log (its lines carry milliseconds)."""
    lines = run.text("logs/device.log").splitlines()

    def first(pattern: str) -> float:
        for line in lines:
            if re.search(pattern, line):
                return _stamp(line)
        raise LookupError(pattern)

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
        if key.endswith(("_relogin", "_noticed", "_seen")) or key.startswith(("opened", "device")):
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
