"""Two sim devices in one air never collide: each started without an id gets its own name,
MAC, AP name and store (issue: both advertised the same AP name)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from wifiprov.sim.air import Air


def test_claim_device_takes_the_first_free_id_and_frees_it_with_the_process(
    tmp_path: Path,
) -> None:
    air = Air(tmp_path)
    first, fd1 = air.claim_device()
    second, fd2 = air.claim_device()
    assert (first, second) == ("device", "device-2")
    os.close(fd1)  # the first device ends: its id is free again
    again, fd3 = air.claim_device()
    assert again == "device"
    os.close(fd2)
    os.close(fd3)


def test_two_sim_devices_started_alike_advertise_different_aps(tmp_path: Path) -> None:
    air = Air(tmp_path / "air")
    argv = [
        sys.executable, "-m", "wifiprov", "device", "--radio", "sim", "--air", str(air.directory),
        "--template-id", "TMPLtwins01", "--template-name", "Lamp", "--host", "127.0.0.1",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        while len(air.aps()) < 2:
            for p in procs:
                assert p.poll() is None, p.communicate()[1]
            assert time.monotonic() < deadline, [ap.ssid for ap in air.aps()]
            time.sleep(0.1)
        aps = air.aps()
        assert sorted(ap.device for ap in aps) == ["device", "device-2"]
        assert aps[0].ssid != aps[1].ssid and aps[0].bssid != aps[1].bssid
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    assert sorted(ap.device for ap in air.aps()) == []  # both closed their AP on SIGTERM
