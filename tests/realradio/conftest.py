"""The real-radio tier: scenario groups booted in qemu guests, two at a time, once per session.

The first test that asks for ``guests`` builds what the guests boot (tests/realradio/build.sh,
cached in build/realradio/) and runs every group collected; the tests then read each group's
results.
Anything that keeps the tier from running fails the tests with the reason: it never skips.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realradio import vm

CASES = (  # guest/radio_cases.py, in this order
    "sae_wrong,mixed_wrong,wpa2_wrong,hidden_wrong,phone_wrong,wpa2_right,sae_right,mixed_right,"
    "hidden_right,phone_right,phone_open,peap_right,peap_wrong,absent,no_dhcp,static_ip,"
    "sae_wrong_nm_only,mixed_wrong_nm_only"
)
# group name -> (guest script, its settings, guest memory in MB); at most two guests run at once
# (2 cores, shared), the longest first. BLE (tests/realradio/test_ble.py) reads ``guests`` too.
GROUPS: dict[str, tuple[str, dict[str, str], int]] = {
    "e2e": ("e2e.sh", {}, 384),
    # 768: at 384 the BLE guest (cloud, device, provisioner, helper) thrashed and timed out
    "ble": ("ble.sh", {}, 768),
    "failures": ("failures.sh", {"cases": CASES}, 384),
}
AT_ONCE = 2
TIMEOUT = 660  # per guest (e2e takes 8-9 min when other tests load the machine to ~7)


@pytest.fixture(scope="session")
def guests(request: pytest.FixtureRequest) -> Iterator[dict[str, vm.Run]]:
    """Every group whose tests were collected (tests/realradio/test_<group>.py: so
    `pytest tests/realradio/test_e2e.py` boots the e2e guest alone), at most ``AT_ONCE`` guests
    at a time: the next starts when one ends."""
    kernel = vm.build()
    runs: dict[str, vm.Run] = {}
    modules = (getattr(item, "module", None) for item in request.session.items)
    collected = {m.__name__.rsplit(".", 1)[-1] for m in modules if m is not None}
    pending = [name for name in GROUPS if f"test_{name}" in collected]
    running: dict[str, tuple[subprocess.Popen[bytes], Path, float]] = {}
    try:
        while pending or running:
            while pending and len(running) < AT_ONCE:
                name = pending.pop(0)
                script, env, memory = GROUPS[name]
                running[name] = vm.start(
                    kernel, script, name=name, timeout=TIMEOUT, env=env, memory=memory
                )
            for name, (proc, out, t0) in list(running.items()):
                if proc.poll() is not None or time.monotonic() - t0 > TIMEOUT:
                    runs[name] = vm.wait(proc, out, t0, name=name, timeout=TIMEOUT)
                    del running[name]
            time.sleep(1)
    finally:
        for proc, _, _ in running.values():
            vm.stop(proc)
    yield runs


@pytest.fixture(scope="session")
def failures(guests: dict[str, vm.Run]) -> vm.Run:
    return _finished(guests["failures"])


@pytest.fixture(scope="session")
def e2e(guests: dict[str, vm.Run]) -> vm.Run:
    return _finished(guests["e2e"])


def _finished(run: vm.Run) -> vm.Run:
    if run.rc != 0:
        raise vm.GuestError(f"the guest's script failed\n{run.describe()}")
    return run
