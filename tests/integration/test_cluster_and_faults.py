"""Several cloud processes on one PostgreSQL with NATS; the database going away mid-run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import select, update

from tests.conftest import PASSWORD, start_cloud, stop_cloud, with_owner
from tests.integration.support import (
    CPP_INFO,
    RawDevice,
    free_port,
    online_device,
    provisioning_token,
    template,
    until,
    wait_http,
    with_template,
)
from wifiprov.cloud import accounts
from wifiprov.cloud.bus import DEVICE_LOGINS
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import devices, pin_values
from wifiprov.cloud.settings import CloudSettings
from wifiprov.wire.blynk import Command, Status

NATS = os.environ.get("WIFIPROV_TEST_NATS", "nats://127.0.0.1:4222")


async def test_two_nodes_route_writes_over_nats(pg_db: str) -> None:
    db = Database(pg_db)
    owner = await accounts.create_user(db, "owner@example.com", PASSWORD)
    org_id = await accounts.create_org(db, "Acme", owner)
    await db.close()
    nodes = []
    try:
        for name in ("a", "b"):
            http, gw = free_port(), free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wifiprov.cli",
                    "cloud",
                    "--db",
                    pg_db,
                    "--bus",
                    NATS,
                    "--http",
                    f"127.0.0.1:{http}",
                    "--gateway",
                    f"127.0.0.1:{gw}",
                    "--node-id",
                    f"node-{name}",
                    "--public-host",
                    "cloud.test",
                ],
                stderr=subprocess.PIPE,
            )
            nodes.append((proc, f"http://127.0.0.1:{http}", ("127.0.0.1", gw)))
        for proc, url, _ in nodes:
            await wait_http(url, lambda p=proc: p.poll() is not None)
        (_, api_a, _), (_, _, gateway_b) = nodes
        async with httpx.AsyncClient(base_url=api_a, timeout=30) as api:
            token = (
                await api.post(
                    "/api/auth/sign-in", json={"email": "owner@example.com", "password": PASSWORD}
                )
            ).json()["token"]
            api.headers["Authorization"] = f"Bearer {token}"
            tmpl = (await api.post(f"/api/orgs/{org_id}/templates", json={"name": "T"})).json()
            request = (await api.post(f"/api/templates/{tmpl['id']}/provisioning")).json()
            # The provisioner long-polls node A; the device claims through node B.
            poll = asyncio.create_task(api.get(f"/api/provisioning/{request['id']}?wait=20"))
            device = await RawDevice.connect(gateway_b)
            assert await device.login(request["token"]) == Status.OK
            claim = (await poll).json()
            assert claim["status"] == "claimed"
            device_id = claim["device_id"]

            async def online() -> bool:
                return bool((await api.get(f"/api/devices/{device_id}")).json()["online"])

            await until(online, 10)
            reply = await api.put(f"/api/devices/{device_id}/pins/1", json={"value": "from A"})
            # Delivered: node B, holding the connection, acknowledged it over NATS.
            assert reply.json()["delivered"] is True and reply.json()["node"] == "node-b"
            frame = await device.recv()
            assert frame is not None and frame.command == Command.HARDWARE
            assert frame.body == b"vw\x001\x00from A"
            # The database says online on a node that is gone: no node acknowledges it.
            db = Database(pg_db)
            async with db.begin() as conn:
                await conn.execute(
                    update(devices).where(devices.c.id == device_id).values(online_node="node-gone")
                )
            await db.close()
            device.close()

            async def gone() -> bool:
                reply = await api.put(f"/api/devices/{device_id}/pins/2", json={"value": "x"})
                return reply.json()["delivery"] == "offline"

            await until(gone, 10)
            assert (await api.post(f"/api/devices/{device_id}/reconfigure")).status_code == 409
            device = await RawDevice.connect(gateway_b)
            assert await device.login(request["token"]) == Status.OK
            # A second login on node A replaces the connection held by node B.
            again = await RawDevice.connect(nodes[0][2])
            assert await again.login(request["token"]) == Status.OK
            assert await device.wait_closed(10)
            again.close()
    finally:
        for proc, _, _ in nodes:
            proc.terminate()
        for proc, _, _ in nodes:
            proc.wait(10)


class CuttableProxy:
    """A TCP proxy in front of PostgreSQL that a test can cut (drop everything) and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        self.links.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_database_outage_gives_19_or_close_never_9(pg_db: str, tmp_path: object) -> None:
    proxy = CuttableProxy(("127.0.0.1", 5432))
    await proxy.start()
    name = pg_db.rsplit("/", 1)[1]
    settings = CloudSettings(
        db_url=f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}",
        http=("127.0.0.1", 0),
        gateway=("127.0.0.1", 0),
        public_host="cloud.test",
        login_timeout=5,
        flush_interval=0.05,
    )
    cloud, task = await start_cloud(settings)
    try:
        rc = await with_owner(cloud)
        template_id = await template(rc)
        request = await provisioning_token(rc, template_id)
        live = await RawDevice.connect(rc.gateway)
        assert await live.login(request["token"]) == Status.OK
        # The firmware reports its template; the claim is decided with it.
        await live.send(Command.INTERNAL, 2, *with_template(CPP_INFO, template_id))
        assert (await live.recv()).status == Status.OK  # type: ignore[union-attr]

        await proxy.cut()
        for _ in range(3):
            dev = await RawDevice.connect(rc.gateway)
            status = await dev.login(request["token"])
            assert status in (Status.SERVER_EXCEPTION, None), status  # 19 or a close, never 9
            dev.close()
        async with rc.client(rc.owner_token) as api:
            assert (await api.get("/api/devices")).status_code == 503
        # The connected device is unaffected: failed logins never replaced it.
        await live.send(Command.PING, 2)
        assert (await live.recv()).status == Status.OK  # type: ignore[union-attr]
        await proxy.start()

        async def recovered() -> bool:
            dev = await RawDevice.connect(rc.gateway)
            status = await dev.login(request["token"])
            dev.close()
            assert status != Status.INVALID_TOKEN
            return status == Status.OK

        await until(recovered, 20)
    finally:
        await stop_cloud(cloud, task)
        if proxy.server is not None:
            proxy.server.close()


async def test_a_late_login_announcement_does_not_end_a_newer_connection(pg_db: str) -> None:
    """A node announces a login on the bus after answering it; when that message is late (the
    node was busy) and the device has meanwhile logged in here, the newer connection stays."""
    settings = CloudSettings(
        db_url=pg_db,
        http=("127.0.0.1", 0),
        gateway=("127.0.0.1", 0),
        public_host="cloud.test",
        bus_url=NATS,
        node_id="node-here",
    )
    cloud, task = await start_cloud(settings)
    try:
        rc = await with_owner(cloud)
        device_id, _, device = await online_device(rc)
        held = cloud.gateway.sessions[device_id]
        late = {"device_id": device_id, "node": "node-there", "at": held.connected_at - 1}
        await cloud.bus.publish(DEVICE_LOGINS, late)
        assert not await device.wait_closed(1.0)  # the older login elsewhere changes nothing
        newer = {"device_id": device_id, "node": "node-there", "at": held.connected_at + 1}
        await cloud.bus.publish(DEVICE_LOGINS, newer)
        assert await device.wait_closed(5.0)  # a newer login elsewhere replaces this one
    finally:
        await stop_cloud(cloud, task)


async def test_a_node_that_loses_nats_keeps_serving_its_devices_and_says_so(
    pg_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = NATS.removeprefix("nats://").rsplit(":", 1)
    proxy = CuttableProxy((host, int(port)))
    await proxy.start()
    settings = CloudSettings(
        db_url=pg_db,
        http=("127.0.0.1", 0),
        gateway=("127.0.0.1", 0),
        public_host="cloud.test",
        bus_url=f"nats://127.0.0.1:{proxy.port}",
        node_id="node-alone",
    )
    cloud, task = await start_cloud(settings)
    try:
        rc = await with_owner(cloud)
        device_id, _, device = await online_device(rc)
        caplog.set_level("WARNING", logger="wifiprov.bus")
        await proxy.cut()

        async def said_lost() -> bool:
            return "lost the bus" in caplog.text

        await until(said_lost, 10)
        # its own device goes on: heartbeats answered, values stored
        await device.send(Command.HARDWARE, 10, "vw", "3", "still here")
        await device.send(Command.PING, 11)  # answered after the write was taken in
        frame = await device.recv()
        assert frame is not None and frame.status == Status.OK
        await cloud.writer.flush()
        async with cloud.db.begin() as conn:
            stored = await conn.scalar(
                select(pin_values.c.value).where(
                    pin_values.c.device_id == device_id, pin_values.c.pin == 3
                )
            )
        assert stored is not None and "still here" in stored
        # and a device logging in meanwhile is served too (its announcement waits or is dropped)
        _, _, other = await online_device(rc)
        await proxy.start()

        async def said_back() -> bool:
            return "is back" in caplog.text

        await until(said_back, 20)
        device.close()
        other.close()
    finally:
        await stop_cloud(cloud, task)
        await proxy.cut()
