"""Test support: a raw Blynk device (real TCP, every byte visible), cloud set-up helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import RunningCloud
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Frame

CPP_INFO = [
    "mcu",
    "0.1.0",
    "fw-type",
    "TMPLxxxx",
    "build",
    "Apr 25 2026 10:00:00",
    "blynk",
    "1.4.0",
    "h-beat",
    "40",
    "buff-in",
    "256",
    "dev",
    "ESP32",
    "tmpl",
    "TMPLxxxx",
]


class RawDevice:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = blynk.Decoder(65535)
        self.frames: list[Frame] = []

    @classmethod
    async def connect(
        cls, address: tuple[str, int], source: str | None = None, rcvbuf: int | None = None
    ) -> RawDevice:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # a small receive buffer makes a device that stops reading back up quickly
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, address)
        reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf or 2**16)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, command: int, msg_id: int, *args: Any) -> None:
        await self.send_raw(blynk.encode(command, msg_id, *args))

    async def recv(self, timeout: float = 5.0) -> Frame | None:
        """The next frame, or None when the server closed the connection."""
        async with asyncio.timeout(timeout):
            while not self.frames:
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    async def read_raw(self, n: int, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            return await self.reader.readexactly(n)

    async def login(self, token: str, command: int = Command.HW_LOGIN) -> int | None:
        await self.send(command, 1, token)
        frame = await self.recv()
        return None if frame is None else frame.status

    async def wait_closed(self, timeout: float = 5.0) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except (TimeoutError, ConnectionError):
            return False

    def close(self) -> None:
        self.writer.close()


async def template(rc: RunningCloud, token: str | None = None, name: str = "Thermostat") -> str:
    async with rc.client(token or rc.owner_token) as api:
        reply = await api.post(f"/api/orgs/{rc.org_id}/templates", json={"name": name})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])


async def provisioning_token(rc: RunningCloud, template_id: str) -> dict[str, Any]:
    async with rc.client(rc.owner_token) as api:
        reply = await api.post(f"/api/templates/{template_id}/provisioning")
        assert reply.status_code == 201, reply.text
        return dict(reply.json())


async def online_device(
    rc: RunningCloud, info: list[str] | None = None, rcvbuf: int | None = None
) -> tuple[int, str, RawDevice]:
    """A claimed device, logged in with the current C++ handshake; (device id, token, device).
    Its info reports the token's template (``tmpl``, ``fw-type``), as the firmware of a device
    built for that template does (a claim by another template's firmware is refused)."""
    template_id = await template(rc)
    request = await provisioning_token(rc, template_id)
    device = await RawDevice.connect(rc.gateway, rcvbuf=rcvbuf)
    assert await device.login(request["token"]) == 200
    await device.send(Command.INTERNAL, 2, *with_template(info or CPP_INFO, template_id))
    reply = await device.recv()
    assert reply is not None and reply.status == 200
    async with rc.client(rc.owner_token) as api:
        status = (await api.get(f"/api/provisioning/{request['id']}")).json()
    assert status["status"] == "claimed"
    return int(status["device_id"]), request["token"], device


def with_template(info: list[str], template_id: str) -> list[str]:
    """An info message whose ``tmpl`` and ``fw-type`` say ``template_id``."""
    out = list(info)
    for i in range(0, len(out) - 1, 2):
        if out[i] in ("tmpl", "fw-type"):
            out[i + 1] = template_id
    return out


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Wait for an async predicate to become true (state written behind, e.g. presence)."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(url: str, exited: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until a cloud process answers /api/health; fail at once if it exits instead."""
    async with httpx.AsyncClient() as client, asyncio.timeout(timeout):
        while True:
            assert not exited(), f"the cloud process exited before serving {url}"
            try:
                if (await client.get(url + "/api/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)


async def seed_devices(url: str, count: int) -> dict[int, str]:
    """A database (migrated if new) with an owner (owner@example.com), an organization, a
    template and ``count`` claimed devices, without a cloud running; their tokens by device id."""
    from sqlalchemy import select

    from tests.conftest import PASSWORD
    from wifiprov.cloud import accounts, templates
    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import devices
    from wifiprov.cloud.tokens import TokenHasher, new_token

    db = Database(url)
    try:
        await db.migrate()
        hasher = await TokenHasher.load(db)
        owner = await accounts.create_user(db, "owner@example.com", PASSWORD)
        org = await accounts.create_org(db, "Acme", owner)
        who = await accounts.authenticate(
            db, hasher, await accounts.sign_in(db, hasher, "owner@example.com", PASSWORD)
        )
        template = await templates.create_template(db, who, org, "Lamp")
        tokens = [new_token() for _ in range(count)]
        rows: list[dict[str, Any]] = [
            {
                "org_id": org,
                "template_id": template["id"],
                "name": f"Lamp {i}",
                "token_hash": hasher(token),
                "token_last4": token[-4:],
                "created_at": 0.0,
                "info": "{}",
            }
            for i, token in enumerate(tokens)
        ]
        async with db.begin() as conn:
            await conn.execute(devices.insert(), rows)
            ids = dict((await conn.execute(select(devices.c.token_hash, devices.c.id))).all())
        return {ids[hasher(token)]: token for token in tokens}
    finally:
        await db.close()


def server_certificate(folder: Path) -> Any:
    """A throw-away CA (trustme), its certificate in ``folder``/ca.pem, and there a server key
    and certificate chain for localhost and 127.0.0.1 (server.pem, for ``--cert``/``--key``)."""
    import trustme

    ca = trustme.CA()
    chain = ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem
    chain.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return ca
