"""Presence the API can be trusted on: `wifiprov cloud` as a real process, stopped by SIGTERM or
SIGINT (devices written offline, exit 0) or killed (the next start of the same node clears it,
and another node does once the killed one's lease lapses); leases in-process (cloud/leases.py)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.integration.support import RawDevice, free_port, seed_devices, until, wait_http
from wifiprov.cloud.bus import DEVICE_PRESENCE, Message, make_bus
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import devices, nodes
from wifiprov.cloud.leases import NodeLease
from wifiprov.wire.blynk import Status


async def _seed(path: Path | str) -> str:
    """A database with one device; its token."""
    (token,) = (await seed_devices(str(path), 1)).values()
    return token


async def _online_node(path: Path | str) -> str | None:
    db = Database(str(path))
    try:
        async with db.begin() as conn:
            return await conn.scalar(select(devices.c.online_node))  # type: ignore[no-any-return]
    finally:
        await db.close()


class CloudProcess:
    def __init__(self, db: Path | str, http: int, gateway: int, *extra: str) -> None:
        self.db, self.http, self.gateway, self.extra = db, http, gateway, extra
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wifiprov.cli",
            "cloud",
            "--db",
            str(self.db),
            "--http",
            f"127.0.0.1:{self.http}",
            "--gateway",
            f"127.0.0.1:{self.gateway}",
            "--public-host",
            "cloud.test",
            *self.extra,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        proc = self.proc
        await wait_http(f"http://127.0.0.1:{self.http}", lambda: proc.returncode is not None)

    async def stop(self, sig: int) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(sig)
        _, err = await asyncio.wait_for(self.proc.communicate(), 20)
        return self.proc.returncode or 0, err.decode()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


@pytest.fixture
async def seeded(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "cloud.sqlite3"
    return path, await _seed(path)


async def _long_poll(http: int) -> asyncio.Task[httpx.Response]:
    """A provisioner waiting on a provisioning token (a long poll of up to 60 s)."""
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}", timeout=90)
    sign_in = {"email": "owner@example.com", "password": PASSWORD}
    token = (await api.post("/api/auth/sign-in", json=sign_in)).json()["token"]
    api.headers["Authorization"] = f"Bearer {token}"
    template = (await api.get("/api/orgs/1/templates")).json()[0]["id"]
    request = (await api.post(f"/api/templates/{template}/provisioning")).json()

    async def poll() -> httpx.Response:
        try:
            return await api.get(f"/api/provisioning/{request['id']}", params={"wait": 60})
        finally:
            await api.aclose()

    task = asyncio.create_task(poll())
    await asyncio.sleep(0.3)  # the poll is waiting in the cloud
    return task


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_stopped_cloud_writes_its_devices_offline_and_exits_0(
    seeded: tuple[Path, str], sig: int
) -> None:
    path, token = seeded
    cloud = CloudProcess(path, free_port(), free_port())
    await cloud.start()
    try:
        device = await RawDevice.connect(("127.0.0.1", cloud.gateway))
        assert await device.login(token) == Status.OK

        async def online() -> bool:
            return await _online_node(path) is not None

        await until(online, 10)
        poll = await _long_poll(cloud.http)
        started = asyncio.get_running_loop().time()
        code, err = await cloud.stop(sig)  # not held up by the long poll
        assert code == 0, err
        assert asyncio.get_running_loop().time() - started < 10
        assert await _online_node(path) is None
        assert await device.wait_closed()
        poll.cancel()
    finally:
        cloud.kill()


async def test_a_killed_nodes_presence_is_cleared_by_its_next_start(
    seeded: tuple[Path, str],
) -> None:
    path, token = seeded
    http, gateway = free_port(), free_port()
    cloud = CloudProcess(path, http, gateway)
    await cloud.start()
    try:
        device = await RawDevice.connect(("127.0.0.1", gateway))
        assert await device.login(token) == Status.OK

        async def online() -> bool:
            return await _online_node(path) is not None

        await until(online, 10)
        node = await _online_node(path)
        code, _ = await cloud.stop(signal.SIGKILL)
        assert code == -signal.SIGKILL
        device.close()
        assert await _online_node(path) == node  # left behind by the killed run
        again = CloudProcess(path, http, gateway)
        await again.start()  # the same node (same host and gateway port)
        try:
            assert await _online_node(path) is None
        finally:
            assert (await again.stop(signal.SIGTERM))[0] == 0
    finally:
        cloud.kill()


async def test_a_killed_nodes_devices_go_offline_when_its_lease_lapses(db_url: str) -> None:
    """Node a is SIGKILLed holding a device and never comes back: node b, on the same database,
    marks the device offline once a's lease (1 s here) has lapsed, and its API says so."""
    token = await _seed(db_url)
    a = CloudProcess(db_url, free_port(), free_port(), "--lease", "1", "--node-id", "node-a")
    b = CloudProcess(db_url, free_port(), free_port(), "--lease", "1", "--node-id", "node-b")
    await a.start()
    await b.start()
    try:
        device = await RawDevice.connect(("127.0.0.1", a.gateway))
        assert await device.login(token) == Status.OK

        async def on_a() -> bool:
            return await _online_node(db_url) == "node-a"

        await until(on_a, 10)
        assert (await a.stop(signal.SIGKILL))[0] == -signal.SIGKILL
        device.close()

        async def offline() -> bool:
            return await _online_node(db_url) is None

        await until(offline, 20)  # lease + one sweep (~1.3 s); the bound is for a loaded machine
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{b.http}") as api:
            sign_in = {"email": "owner@example.com", "password": PASSWORD}
            bearer = (await api.post("/api/auth/sign-in", json=sign_in)).json()["token"]
            listed = (
                await api.get("/api/devices", headers={"Authorization": f"Bearer {bearer}"})
            ).json()
        assert [d["online"] for d in listed] == [False]
        db = Database(db_url)
        try:
            async with db.begin() as conn:
                left = set((await conn.execute(select(nodes.c.node_id))).scalars())
        finally:
            await db.close()
        assert left == {"node-b"}  # a's lease is gone with its devices' presence
        assert (await b.stop(signal.SIGTERM))[0] == 0
        db = Database(db_url)
        try:
            async with db.begin() as conn:
                assert (await conn.execute(select(nodes.c.node_id))).first() is None  # given back
        finally:
            await db.close()
    finally:
        a.kill()
        b.kill()


async def test_a_lease_sweeps_lapsed_nodes_and_a_node_back_from_a_cut_reclaims_its_own(
    db_url: str,
) -> None:
    await _seed(db_url)  # one device (Lamp)
    db = Database(db_url)
    bus = await make_bus(None)
    heard: list[Message] = []

    async def hear(message: Message) -> None:
        heard.append(message)

    await bus.subscribe(DEVICE_PRESENCE, hear)
    try:
        async with db.begin() as conn:
            device_id = (await conn.execute(select(devices.c.id))).scalar_one()
        held: list[tuple[int, float]] = [(device_id, 1000.0)]
        x = NodeLease(db, bus, "node-x", 5, lambda: held)
        y = NodeLease(db, bus, "node-y", 5)
        await x.renew()
        await y.renew()

        async def set_node(node: str | None) -> None:
            async with db.begin() as conn:
                await conn.execute(devices.update().values(online_node=node, connected_at=1000.0))

        await set_node("node-x")
        assert await y.sweep() == []  # x's lease is current: its device stays online
        async with db.begin() as conn:  # x stops renewing (killed, or cut off) for 5 s
            await conn.execute(
                nodes.update().where(nodes.c.node_id == "node-x").values(lease_until=1.0)
            )
        assert await y.sweep() == [device_id]
        assert await _online_node(db_url) is None
        assert heard and heard[-1]["device_id"] == device_id and heard[-1]["online"] is False
        assert await y.sweep() == []  # once
        await x.renew()  # x is back and still holds the connection: online again, on x
        assert await _online_node(db_url) == "node-x"
        async with db.begin() as conn:  # cut off again; meanwhile the device moved to y
            await conn.execute(
                nodes.update().where(nodes.c.node_id == "node-x").values(lease_until=1.0)
            )
        await y.sweep()
        await set_node("node-y")
        await x.renew()
        assert await _online_node(db_url) == "node-y"  # x does not take it back
    finally:
        await bus.close()
        await db.close()
