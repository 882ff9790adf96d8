"""The browser tier on loopback: a real cloud process (`wifiprov cloud`, as the e2e tests start it),
a real device agent process (`wifiprov device --radio sim`) with a home network in the sim air, and
headless Chromium in a phone-sized window. Chromium's host resolver sends every name (the setup
link's 192.168.4.1, the operating systems' probe hosts) to the device's portal, keeping the Host
header, as the device's DNS does on its access point."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.browser.portal import BrowserMissing, PortalPage, check_browser, chromium, phone_tab
from tests.e2e.test_provision_cli import PYTHON, World, start_world, stop_world
from tests.integration.support import free_port
from tests.netns import netlab
from wifiprov.device.store import ConfigStore, StoredConfig


@dataclass
class Device:
    name: str
    ap: str  # its access point's name, the page's title
    port: int  # its portal, on 127.0.0.1
    store: Path
    log: Path
    proc: asyncio.subprocess.Process
    log_file: IO[bytes]

    def stored(self) -> StoredConfig:
        return ConfigStore(self.store).load().config

    def log_text(self) -> str:
        self.log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]


class Lab:
    """A cloud, the sim air, devices, and a browser pointed at one device's portal."""

    def __init__(self, world: World, shots: Path) -> None:
        self.world = world
        self.shots = shots
        self.devices: list[Device] = []

    @property
    def air(self) -> Any:
        return self.world.air

    async def device(self, name: str = "lamp-1", *extra: str) -> Device:
        """Start `wifiprov device --radio sim`; returns once its AP is open and its portal listens
        (on a fixed port, so it comes back at the same address when the AP reopens)."""
        world = self.world
        port = free_port()
        log = world.tmp / f"{name}.log"
        log_file = log.open("wb")
        feed = world.air.changes()
        proc = await asyncio.create_subprocess_exec(
            *PYTHON,
            "device",
            "--radio",
            "sim",
            "--air",
            str(world.air.directory),
            "--device-id",
            name,
            "--template-id",
            world.template_id,
            "--template-name",
            "Lamp",
            "--store",
            str(world.tmp / f"{name}.json"),
            "--portal",
            f"127.0.0.1:{port}",
            "-v",
            *extra,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            env=world.env,
        )
        world.processes.append(proc)
        device = Device(name, "", port, world.tmp / f"{name}.json", log, proc, log_file)
        self.devices.append(device)
        try:
            async with asyncio.timeout(30):
                while (ap := world.air.ap(name)) is None or ap.portal is None:
                    assert proc.returncode is None, f"the device exited:\n{device.log_text()}"
                    await feed.wait()
        finally:
            feed.close()
        device.ap = ap.ssid
        return device

    async def setup_link(self) -> str:
        """A provisioning token's setup link, as the cloud gives it to a user."""
        template = self.world.template_id
        reply = await self.world.api("POST", f"/api/templates/{template}/provisioning")
        link = str(reply["setup_link"])
        assert link.startswith("http://192.168.4.1/?token="), reply
        return link

    async def online_devices(self, timeout: float = 20) -> list[dict[str, Any]]:
        """The cloud's devices, once at least one is online (presence is written behind)."""
        async with asyncio.timeout(timeout):
            while True:
                devices = await self.world.api("GET", "/api/devices")
                if any(d["online"] for d in devices):
                    return list(devices)
                await asyncio.sleep(0.2)

    @asynccontextmanager
    async def browser(self, device: Device) -> AsyncIterator[PortalPage]:
        """A phone's browser whose every name resolves to ``device``'s portal."""
        rules = f"--host-resolver-rules=MAP * 127.0.0.1:{device.port}"
        async with chromium([rules]) as browser:
            yield await phone_tab(browser)


@pytest.fixture(autouse=True)
def _need_a_browser() -> None:
    try:
        check_browser()
    except BrowserMissing as exc:
        pytest.fail(f"the browser tests need Chromium and Playwright: {exc}", pytrace=False)


@pytest.fixture
def shots(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where screenshots go: $WIFIPROV_SCREENSHOTS/<test>, or the test's temporary folder."""
    base = os.environ.get("WIFIPROV_SCREENSHOTS")
    name = request.node.name.replace("[", "-").replace("]", "")
    return Path(base) / name if base else tmp_path / "shots"


@pytest.fixture
async def lab(tmp_path: Path, shots: Path) -> AsyncIterator[Lab]:
    async with _lab(tmp_path, shots) as made:
        yield made


@pytest.fixture
async def db_lab(tmp_path: Path, shots: Path, db_url: str) -> AsyncIterator[Lab]:
    """The same lab, once on SQLite and once on PostgreSQL (the ``db_url`` fixture)."""
    async with _lab(tmp_path, shots, db=db_url) as made:
        yield made


@contextlib.asynccontextmanager
async def _lab(tmp_path: Path, shots: Path, db: str | None = None) -> AsyncIterator[Lab]:
    world = await start_world(tmp_path, db=db)
    lab = Lab(world, shots)
    try:
        yield lab
    finally:
        await stop_world(world)
        for device in lab.devices:
            device.log_file.close()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[netlab.Lab]:
    """Device, phone and cloud namespaces (tests/netns/netlab.py), removed even on failure."""
    try:
        with netlab.lab(tmp_path / "net") as lab:
            yield lab
    except netlab.LabError as exc:
        pytest.fail(f"the network namespaces could not be built or removed: {exc}", pytrace=False)
