"""Presence the API can be trusted on: `wifiprov cloud` as a real process, stopped by SIGTERM or
SIGINT (devices written offline, exit 0) or killed (the next start of the same node clears it)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.integration.support import RawDevice, free_port, until, wait_http
from wifiprov.cloud import accounts, templates
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import devices
from wifiprov.cloud.tokens import TokenHasher, new_token
from wifiprov.wire.blynk import Status


async def _seed(path: Path) -> str:
    """A database with one device; its token."""
    db = Database(str(path))
    try:
        await db.migrate()
        hasher = await TokenHasher.load(db)
        user = await accounts.create_user(db, "owner@example.com", PASSWORD)
        org = await accounts.create_org(db, "Acme", user)
        who = await accounts.authenticate(
            db, hasher, await accounts.sign_in(db, hasher, "owner@example.com", PASSWORD)
        )
        template = await templates.create_template(db, who, org, "Lamp")
        token = new_token()
        async with db.begin() as conn:
            await conn.execute(
                devices.insert().values(
                    org_id=org,
                    template_id=template["id"],
                    name="Lamp",
                    token_hash=hasher(token),
                    token_last4=token[-4:],
                    created_at=0.0,
                    info="{}",
                )
            )
        return token
    finally:
        await db.close()


async def _online_node(path: Path) -> str | None:
    db = Database(str(path))
    try:
        async with db.begin() as conn:
            return await conn.scalar(select(devices.c.online_node))  # type: ignore[no-any-return]
    finally:
        await db.close()


class CloudProcess:
    def __init__(self, db: Path, http: int, gateway: int) -> None:
        self.db, self.http, self.gateway = db, http, gateway
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
