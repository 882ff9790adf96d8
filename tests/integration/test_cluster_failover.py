"""Three `wifiprov cloud` nodes on one PostgreSQL database and NATS, 3,000 devices spread over
them; one node is SIGKILLed: its devices reconnect to the others, and presence, pin writes and
reconfigure follow them, with no device lost and none connected twice. Then a node cut off from
the database: the others mark its devices offline when its lease lapses, and it takes them back
when it returns."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.conftest import PASSWORD
from tests.integration.fleet import Fleet
from tests.integration.support import free_port, seed_devices, until, wait_http
from tests.integration.test_cluster_and_faults import CuttableProxy
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import devices

NATS = os.environ.get("WIFIPROV_TEST_NATS", "nats://127.0.0.1:4222")
DEVICES = 3000
LEASE = 2.0


class Node:
    def __init__(self, name: str, db_url: str) -> None:
        self.name = f"node-{name}"
        self.db_url = db_url
        self.http = free_port()
        self.gateway = ("127.0.0.1", free_port())
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wifiprov.cli",
                "cloud",
                "--db",
                self.db_url,
                "--bus",
                NATS,
                "--http",
                f"127.0.0.1:{self.http}",
                "--gateway",
                f"127.0.0.1:{self.gateway[1]}",
                "--node-id",
                self.name,
                "--lease",
                str(LEASE),
                "--public-host",
                "cloud.test",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        proc = self.proc
        assert proc is not None
        await wait_http(f"http://127.0.0.1:{self.http}", lambda: proc.poll() is not None)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def _presence(url: str) -> Counter[str | None]:
    db = Database(url)
    try:
        async with db.begin() as conn:
            rows = await conn.execute(
                select(devices.c.online_node, func.count()).group_by(devices.c.online_node)
            )
            return Counter({node: int(n) for node, n in rows.all()})
    finally:
        await db.close()


async def _api(node: Node) -> httpx.AsyncClient:
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http}", timeout=30)
    sign_in = {"email": "owner@example.com", "password": PASSWORD}
    api.headers["Authorization"] = (
        f"Bearer {(await api.post('/api/auth/sign-in', json=sign_in)).json()['token']}"
    )
    return api


async def test_three_nodes_lose_one_and_keep_every_device(pg_db: str) -> None:
    tokens = await seed_devices(pg_db, DEVICES)
    nodes = [Node(name, pg_db) for name in "abc"]
    fleet: Fleet | None = None
    try:
        for node in nodes:
            node.start()
        await asyncio.gather(*(node.ready() for node in nodes))
        fleet = Fleet(tokens, [node.gateway for node in nodes])
        fleet.start()
        await fleet.all_online(120)

        async def spread() -> bool:
            held = await _presence(pg_db)
            return held[None] == 0 and all(held[n.name] == DEVICES // 3 for n in nodes)

        await until(spread, 30)
        moved = fleet.on(0)
        assert len(moved) == DEVICES // 3
        killed_at = time.monotonic()
        nodes[0].stop(signal.SIGKILL)

        async def back() -> bool:
            return all(d.online.is_set() and d.at != 0 for d in moved)

        await until(back, 120)
        devices_back = time.monotonic() - killed_at

        async def presence_moved() -> bool:
            held = await _presence(pg_db)
            return held[None] == 0 and held["node-a"] == 0 and sum(held.values()) == DEVICES

        await until(presence_moved, 60)
        presence_back = time.monotonic() - killed_at
        print(
            f"\n{len(moved)} devices of the killed node back on the others after "
            f"{devices_back:.2f} s (presence right after {presence_back:.2f} s)"
        )
        assert all(d.live == 1 for d in fleet.devices)  # none lost, none connected twice
        moved_ids = {d.device_id for d in moved}
        stayed = [d for d in fleet.devices if d.device_id not in moved_ids]
        assert all(d.logins == 1 for d in stayed)  # the others were not disturbed
        held = await _presence(pg_db)
        gateways = {1: "node-b", 2: "node-c"}
        api = await _api(nodes[1])
        try:
            # Pin writes and reconfigure made on node b reach each device where it is now.
            for device in moved[:20]:
                reply = (
                    await api.put(f"/api/devices/{device.device_id}/pins/7", json={"value": "hi"})
                ).json()
                assert reply["delivered"] is True, reply
                assert reply["node"] == gateways[device.at], reply
                reply = (await api.post(f"/api/devices/{device.device_id}/reconfigure")).json()
                assert reply["delivered"] is True, reply
            for device in moved[:20]:

                async def arrived(device: Any = device) -> bool:
                    kinds = [(at, f.command, f.body) for at, f in device.received]
                    return (device.at, 20, b"vw\x007\x00hi") in kinds and any(
                        at == device.at and command == 17 for at, command, _ in kinds
                    )

                await until(arrived, 10)
        finally:
            await api.aclose()
        assert held["node-b"] + held["node-c"] == DEVICES
    finally:
        if fleet is not None:
            await fleet.close()
        for node in nodes:
            node.stop()


async def test_a_node_cut_off_from_the_database_loses_and_regains_its_devices(
    pg_db: str,
) -> None:
    tokens = await seed_devices(pg_db, 30)
    host, port = pg_db.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
    proxy = CuttableProxy((host, int(port)))
    await proxy.start()
    cut_url = pg_db.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    a, b = Node("a", cut_url), Node("b", pg_db)
    fleet: Fleet | None = None
    try:
        a.start()
        b.start()
        await asyncio.gather(a.ready(), b.ready())
        fleet = Fleet(tokens, [a.gateway])  # every device on a
        fleet.start()
        await fleet.all_online(60)

        async def on_a() -> bool:
            return (await _presence(pg_db))["node-a"] == 30

        await until(on_a, 30)
        await proxy.cut()  # a keeps its connections but cannot renew its lease

        async def offline() -> bool:
            return (await _presence(pg_db))[None] == 30

        await until(offline, 30)  # b swept them: lease + 1 s
        assert all(d.live == 1 for d in fleet.devices)  # the devices did not notice
        await proxy.start()  # a reaches the database again, renews, and takes them back
        await until(on_a, 30)
    finally:
        if fleet is not None:
            await fleet.close()
        a.stop()
        b.stop()
        await proxy.cut()
