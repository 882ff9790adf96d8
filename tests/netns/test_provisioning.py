"""`wifiprov provision --wifi joined` from the phone ns through the AP's DHCP and DNS to a device
agent on 192.168.4.1:80, which then reaches the cloud over its home link."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time

from tests.netns.netlab import HOME_PASSWORD, HOME_SSID, PYTHON, Lab


def _provision_args(lab: Lab, *extra: str) -> list[str]:
    return [
        PYTHON, "-m", "wifiprov", "provision", "--wifi", "joined", "--cloud", lab.cloud_url,
        "--template", lab.template_id, "--ssid", HOME_SSID, *extra,
    ]  # fmt: skip


def test_provisioning_from_a_phone_on_the_ap_brings_the_device_online(lab: Lab) -> None:
    lab.start_cloud()
    lab.start_dnsmasq(captive=False)
    lab.dhcp()
    lab.start_device()
    (lab.tmp / "wifi-password").write_text(HOME_PASSWORD + "\n")
    done = lab.run(
        lab.phone,
        _provision_args(
            lab, "--password-file", str(lab.tmp / "wifi-password"), "--name", "Kitchen", "--json"
        ),
        timeout=180,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (done.stdout, done.stderr)
    steps = [e["step"] for e in events]
    for step in ("find", "join", "board_info", "config", "online", "done"):
        assert step in steps, steps
    assert HOME_PASSWORD not in done.stdout + done.stderr  # secrets never shown
    listed = lab.run(
        lab.phone, [PYTHON, "-m", "wifiprov", "devices", "--json", "--cloud", lab.cloud_url]
    )
    devices = json.loads(listed.stdout)
    assert [(d["name"], d["online"]) for d in devices] == [("Kitchen", True)], listed.stdout


def test_not_on_the_devices_network_says_so(lab: Lab) -> None:
    lab.start_cloud()  # the phone has mobile data, but never joined the AP (no DHCP)
    done = lab.run(lab.phone, _provision_args(lab, "--password-file", "/dev/null"), timeout=120)
    assert done.returncode == 1
    text = " ".join((done.stdout + done.stderr).split())
    assert "you are not on a device's network" in text, text
    assert "join the device's WiFi (named 'Blynk …') first" in text, text


def _read_until(fd: int, pattern: str, timeout: float, seen: list[str]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the process ended and closed the terminal
                return False
            if not chunk:
                return False
            seen.append(chunk.decode("utf-8", "replace"))
            if re.search(pattern, "".join(seen)):
                return True
    return False


def test_the_phone_leaving_mid_provisioning_is_explained_and_the_device_keeps_its_ap(
    lab: Lab,
) -> None:
    lab.start_cloud()
    lab.start_dnsmasq(captive=False)
    lab.dhcp()
    lab.start_device()
    before = lab.store.read_bytes() if lab.store and lab.store.exists() else b""
    # A terminal, so the provisioner asks for the password after reading board info and the
    # scan: a point where the phone can leave the AP deterministically.
    master, slave = pty.openpty()
    proc = lab.spawn(
        lab.phone, _provision_args(lab), name="provision", stdin=slave, stdout=slave,
        stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen: list[str] = []
    try:
        assert _read_until(master, r"Password for", 90, seen), "".join(seen)
        lab.set_phone_link(up=False)  # the phone walks out of the device's WiFi
        os.write(master, (HOME_PASSWORD + "\n").encode())
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            raise AssertionError("".join(seen)) from None
        _read_until(master, r"$^", 1, seen)  # whatever is left
    finally:
        os.close(master)
    text = " ".join("".join(seen).split())
    assert proc.popen.returncode == 1, text
    assert "device's network" in text, text  # what happened, in words
    assert "try again" in text, text  # and what to do
    assert HOME_PASSWORD not in text
    status = lab.portal_json("/status.json")
    assert status["state"] in ("WAIT_CONFIG", "CONFIGURING"), status  # its AP is still up
    after = lab.store.read_bytes() if lab.store and lab.store.exists() else b""
    assert after == before  # and its configuration untouched
