"""``wifiprov provision`` without ``--wifi`` (issue 12 item 2): NetworkManager on the system bus
with a WiFi device → ``nm``, said as the first thing; a bus without NetworkManager → explained,
``--wifi joined`` offered. The real CLI as a process, on the mock's private system bus."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.integration.support import free_port
from tests.nm.conftest import NmMock


async def provision(tmp_path: Path, bus: str) -> tuple[int, list[dict[str, Any]]]:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    cloud = f"http://127.0.0.1:{free_port()}"  # nobody there: the run stops after choosing
    (config / "session.json").write_text(json.dumps({"cloud": cloud, "token": "t", "email": "e"}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wifiprov",
        "provision",
        "--json",
        "--template",
        "Lamp",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "WIFIPROV_CONFIG_DIR": str(config), "DBUS_SYSTEM_BUS_ADDRESS": bus},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, [json.loads(line) for line in out.decode().splitlines()]


async def test_networkmanager_present_means_nm(nm: NmMock, system_bus: str, tmp_path: Path) -> None:
    code, events = await provision(tmp_path, system_bus)
    assert events[0]["step"] == "wifi" and events[0]["wifi"] == "nm", events
    assert "NetworkManager answers" in events[0]["message"]
    assert code == 1 and "cannot reach the cloud" in events[-1]["message"]  # then, the cloud


async def test_a_bus_without_networkmanager_is_explained(system_bus: str, tmp_path: Path) -> None:
    code, events = await provision(tmp_path, system_bus)
    assert code == 1 and len(events) == 1, events
    assert "NetworkManager is not running" in events[0]["message"]
    assert "--wifi joined" in events[0]["todo"]
