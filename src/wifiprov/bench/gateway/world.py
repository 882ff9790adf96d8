"""What the bench runs against: a fresh database filled with devices and provisioning tokens,
the `wifiprov cloud` process under test (optionally with throw-away TLS files), and the
database checks made after each scenario."""


from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wifiprov.bench.gateway.config import TEMPLATE_ID, BenchError
from wifiprov.bench.gateway.metrics import die_with_parent


@dataclass
class Population:
    url: str
    tokens: list[str]
    device_ids: list[int]
    claim_tokens: list[str]
    org_id: int
    seconds: float


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def check_loopback_url(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BenchError(f"the bench only talks to loopback addresses, not '{host}'")


async def create_pg_database(base: str) -> tuple[str, str]:
    import asyncpg  # type: ignore[import-untyped]

    name = f"wifiprov_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(base.rstrip("/") + "/postgres", timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"{base.rstrip('/')}/{name}"


async def drop_pg_database(base: str, name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(base.rstrip("/") + "/postgres", timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def populate(url: str, count: int, claims: int) -> Population:
    """Schema, one user/org/template, ``count`` devices and ``claims`` provisioning tokens."""
    from sqlalchemy import select

    from wifiprov.cloud import accounts
    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import devices, provisioning_requests, templates
    from wifiprov.cloud.tokens import TokenHasher, new_token

    started = time.monotonic()
    db = Database(url)
    try:
        await db.migrate()
        hasher = await TokenHasher.load(db)
        user_id = await accounts.create_user(db, "bench@example.com", secrets.token_urlsafe(16))
        org_id = await accounts.create_org(db, "Bench", user_id, "Bench")
        now = time.time()
        async with db.begin() as conn:
            await conn.execute(templates.insert().values(
                id=TEMPLATE_ID, org_id=org_id, name="Bench", firmware_type=TEMPLATE_ID,
                created_at=now,
            ))
        tokens = [new_token() for _ in range(count)]
        rows = [
            {"org_id": org_id, "template_id": TEMPLATE_ID, "name": f"bench {i}",
             "token_hash": hasher(t), "token_last4": t[-4:], "created_at": now,
             "created_by": user_id, "info": "{}"}
            for i, t in enumerate(tokens)
        ]
        for chunk in _chunks(rows, 2000):
            async with db.begin() as conn:
                await conn.execute(devices.insert(), list(chunk))
        claim_tokens = [new_token() for _ in range(claims)]
        rows = [
            {"org_id": org_id, "template_id": TEMPLATE_ID, "user_id": user_id,
             "token_hash": hasher(t), "token_last4": t[-4:], "created_at": now,
             "expires_at": now + 24 * 3600}
            for t in claim_tokens
        ]
        for chunk in _chunks(rows, 2000):
            async with db.begin() as conn:
                await conn.execute(provisioning_requests.insert(), list(chunk))
        async with db.begin() as conn:
            by_name = {
                r.name: r.id
                for r in await conn.execute(
                    select(devices.c.id, devices.c.name).where(devices.c.org_id == org_id)
                )
            }
        ids = [int(by_name[f"bench {i}"]) for i in range(count)]
    finally:
        await db.close()
    return Population(url, tokens, ids, claim_tokens, org_id, time.monotonic() - started)


async def count_online(url: str, device_ids: Sequence[int]) -> int:
    from sqlalchemy import func, select

    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import devices

    db = Database(url)
    total = 0
    try:
        async with db.begin() as conn:
            for chunk in _chunks(device_ids, 500):
                total += int(await conn.scalar(
                    select(func.count()).select_from(devices).where(
                        devices.c.id.in_(list(chunk)), devices.c.online_node.is_not(None)
                    )
                ) or 0)
    finally:
        await db.close()
    return total


async def online_by_node(url: str) -> dict[str, int]:
    """How many devices each node holds, as the database says (presence)."""
    from sqlalchemy import func, select

    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import devices

    db = Database(url)
    try:
        async with db.begin() as conn:
            rows = await conn.execute(
                select(devices.c.online_node, func.count())
                .where(devices.c.online_node.is_not(None))
                .group_by(devices.c.online_node)
            )
            return {str(node): int(n) for node, n in rows}
    finally:
        await db.close()


async def count_claimed(url: str) -> int:
    from sqlalchemy import func, select

    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import provisioning_requests as req

    db = Database(url)
    try:
        async with db.begin() as conn:
            return int(await conn.scalar(
                select(func.count()).select_from(req).where(
                    req.c.claimed_at.is_not(None), req.c.device_id.is_not(None)
                )
            ) or 0)
    finally:
        await db.close()


def _pin_value(stored: str | None) -> list[str] | None:
    """A stored pin value as its list of strings: a JSON list (current schema) or, as the first
    schema had it, the values joined by NUL."""
    if stored is None:
        return None
    if stored.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(stored)
            if isinstance(value, list):
                return [str(v) for v in value]
    return stored.split("\0")


async def check_pins(
    url: str, expected: dict[int, list[str | None]], timeout: float
) -> dict[str, Any]:
    """Poll pin_values until it holds the last value sent to every (device, pin), or timeout."""
    from sqlalchemy import select

    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import pin_values

    wanted = {
        (device_id, pin): value
        for device_id, values in expected.items()
        for pin, value in enumerate(values)
        if value is not None
    }
    db = Database(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            stored: dict[tuple[int, int], str] = {}
            async with db.begin() as conn:
                for chunk in _chunks(list(expected), 500):
                    rows = await conn.execute(
                        select(pin_values.c.device_id, pin_values.c.pin, pin_values.c.value)
                        .where(pin_values.c.device_id.in_(list(chunk)))
                    )
                    stored.update({(r.device_id, r.pin): r.value for r in rows})
            wrong = [(k, v) for k, v in wanted.items() if _pin_value(stored.get(k)) != [v]]
            if not wrong or time.monotonic() > deadline:
                return {
                    "devices_with_rows": len({d for d, _ in stored}),
                    "rows": len(stored),
                    "values_expected": len(wanted),
                    "values_matching": len(wanted) - len(wrong),
                    "mismatch_examples": [
                        {"device_id": d, "pin": p, "sent_last": v, "stored": stored.get((d, p))}
                        for (d, p), v in wrong[:3]
                    ],
                }
            await asyncio.sleep(0.5)
    finally:
        await db.close()


# --- the gateway process --------------------------------------------------------------------------

def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> TlsFiles:
        try:
            import trustme
        except ImportError as exc:
            raise BenchError("--tls needs the 'trustme' package (pip install trustme)") from exc
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        files = cls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
        ca.cert_pem.write_to_path(str(files.ca))
        issued.private_key_pem.write_to_path(str(files.key))
        files.cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
        return files


class GatewayProcess:
    """``python -m wifiprov.cli cloud`` on free ports, its output in a log file."""

    def __init__(self, db_url: str, log_path: Path, tls: TlsFiles | None,
                 bus: str | None = None, node_id: str | None = None) -> None:
        self.db_url, self.log_path, self.tls = db_url, log_path, tls
        self.bus, self.node_id = bus, node_id  # a node of a cluster (NATS)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port("0.0.0.0")
        self.http_port = free_port("127.0.0.1")
        self.tls_port = free_port("0.0.0.0") if tls else None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def device_port(self) -> int:
        return self.tls_port if self.tls_port is not None else self.port

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "wifiprov.cli", "cloud", "--db", self.db_url,
            "--http", f"127.0.0.1:{self.http_port}", "--gateway", f"0.0.0.0:{self.port}",
        ]
        if self.bus is not None:
            cmd += ["--bus", self.bus, "--node-id", self.node_id or f"bench-{self.port}"]
        if self.tls is not None:
            cmd += ["--gateway-tls", f"0.0.0.0:{self.tls_port}",
                    "--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        with open(self.log_path, "ab") as log:
            # Its own session: a Ctrl-C reaches only the bench, which then stops it in order.
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"the gateway exited with code {self.proc.returncode}; its log "
                             f"ends with:\n{self.tail()}")

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        ports = [self.port, self.http_port] + ([self.tls_port] if self.tls_port else [])
        while True:
            self.check()
            if all(_accepts(p) for p in ports if p is not None):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise BenchError(f"the gateway did not accept connections within {timeout:.0f} s;"
                                 f" its log ends with:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # the cloud closes its connections and database
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
