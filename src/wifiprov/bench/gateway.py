"""Load generator for the device gateway (``wifiprov bench gateway``).

The bench builds a fresh database (a SQLite file in a temporary directory, or a new PostgreSQL
database that it drops again), fills it with devices and provisioning tokens, starts a real
``wifiprov cloud`` process and drives it from ``workers`` generator processes over raw TCP
(optionally TLS). Every connection is bound to its own source address in 127.0.0.0/8, so
ephemeral ports never run out. Scenarios, each bounded in count and time:

- ``hold``: log ``devices`` in (login + info message announcing h-beat 10), each pinging every
  10 s from its login on; keep them for ``hold_seconds`` after the last login, then check that
  every one still answers; gateway RSS before and while holding.
- ``relogin``: a burst of ``devices`` logins of existing devices (the connections stay open until
  the burst is over, as after a gateway restart); logins/s and latency.
- ``claim``: ``claims`` first logins with provisioning tokens; claims/s and latency.
- ``ingest``: ``ingest_devices`` devices pipelining ``HARDWARE vw`` writes for ``ingest_seconds``;
  every batch ends with a PING whose reply proves the batch was consumed (at most ``window``
  batches are in flight per connection), and messages/s counts from the start until the last
  reply. The stored pin values are checked against the last values sent.

For every scenario the CPU time of the gateway, of the generator workers and of PostgreSQL
(every process whose comm starts with "postgres") is read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import math
import multiprocessing
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status

SCENARIOS = ("hold", "relogin", "claim", "ingest")
# What each scenario is held against (from the gateway's requirements).
TARGETS = {
    "hold": "10,000 devices held",
    "relogin": ">= 3,000 logins/s",
    "claim": ">= 3,000/s PostgreSQL, 1,500/s SQLite; p99 <= 1 s",
    "ingest": ">= 50,000 msgs/s from 1,000 devices",
}
TARGET_HOLD, TARGET_RELOGIN, TARGET_INGEST = 10_000, 3_000.0, 50_000.0
# claims/s (connect to the info answered: the claim committed) and their p99, per database
TARGET_CLAIMS = {"postgres": 3_000.0, "sqlite": 1_500.0}
TARGET_CLAIM_P99_MS = 1_000.0

HEARTBEAT = 10  # the h-beat the bench devices announce, so the hold period sees real heartbeats
PING_TICK = 0.1  # resolution of the heartbeat timer
TEMPLATE_ID = "TMPLbench001"
INFO_BODY = blynk.join_args([
    "mcu", "0.1.0", "fw-type", TEMPLATE_ID, "build", '"Nov 24 2026 10:00:00"', "blynk", "1.4.0",
    "h-beat", HEARTBEAT, "buff-in", 256, "dev", "bench", "tmpl", TEMPLATE_ID,
])
PINS = 4  # ingest writes V0..V3 in turn
HARDWARE, PING = int(Command.HARDWARE), int(Command.PING)

OP_TIMEOUT = 30.0  # one connect + login (+ info)
GO_TIMEOUT = 900.0  # a worker waiting for the next step from the bench
DRAIN_TIMEOUT = 60.0  # ingest: from the end of the sending period to the last PING reply
FINAL_PING_TIMEOUT = 20.0
GATEWAY_START_TIMEOUT = 60.0
IP_BIND_ADDRESS_NO_PORT = 24  # <linux/in.h>: pick the port at connect(), not at bind()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


class BenchError(Exception):
    """The bench could not go on (gateway died, a worker failed, a phase timed out)."""


@dataclass
class BenchConfig:
    db: str = "sqlite"  # or "postgres"
    pg_url: str = "postgresql://postgres@127.0.0.1:5432"
    devices: int = 10_000
    ingest_devices: int = 1_000
    claims: int = 1_000
    hold_seconds: float = 30.0
    ingest_seconds: float = 10.0
    workers: int = 2
    concurrency: int = 500  # logins in flight per worker
    scenarios: tuple[str, ...] = SCENARIOS
    tls: bool = False
    uvloop: bool = False  # generator workers on uvloop (lighter on a machine they share)
    ingest_batch: int = 50  # HARDWARE frames per write (each write ends with a PING)
    ingest_window: int = 2  # batches in flight per connection
    gateway_log: Path | None = None
    profile_dir: Path | None = None

    @property
    def population(self) -> int:
        n = self.devices if {"hold", "relogin"} & set(self.scenarios) else 0
        return max(n, self.ingest_devices if "ingest" in self.scenarios else 0)

    @property
    def provisioning(self) -> int:
        return self.claims if "claim" in self.scenarios else 0


# --- processes: limits, /proc figures -------------------------------------------------------------

def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no orphans after a kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()  # fields from 3 (state) on


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """utime + stime (+ cutime + cstime: reaped children) of a process, all threads."""
    f = _stat(pid)
    if f is None:
        return None
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (the main thread's id is the pid)."""
    found: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every process whose comm starts with "postgres" (including reaped
    children, so backends that exit are still counted through the postmaster)."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                comm = f.read()
        except OSError:
            continue
        if comm.startswith("postgres"):
            value = cpu_seconds(int(entry.name), children=True)
            if value is not None:
                found[int(entry.name)] = value
    return found


def machine_seconds() -> tuple[float, float, float]:
    """CPU seconds of the whole machine: (processes, interrupts, steal). Interrupt time is mostly
    loopback networking done in softirq; steal is what the hypervisor gave to other guests."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
    return (user + nice + system) / CLK_TCK, (irq + softirq) / CLK_TCK, steal / CLK_TCK


@dataclass
class CpuSnapshot:
    at: float
    gateway: float
    gateway_main: float  # the gateway's main thread (its event loop)
    workers: float
    bench: float
    machine: tuple[float, float, float]
    postgres: dict[int, float] | None


def cpu_delta(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, float | None]:
    wall = b.at - a.at
    database = None
    if a.postgres is not None and b.postgres is not None:
        # A backend that exited in between shows up in the postmaster's cutime with its whole
        # life, so what it had used before ``a`` is taken off again.
        database = sum(v - a.postgres.get(p, 0.0) for p, v in b.postgres.items()) - sum(
            v for p, v in a.postgres.items() if p not in b.postgres
        )
    gateway, generator, bench = b.gateway - a.gateway, b.workers - a.workers, b.bench - a.bench
    processes, interrupts, steal = (y - x for x, y in zip(a.machine, b.machine, strict=True))
    other = processes - gateway - generator - bench - (database or 0.0)
    return {
        "wall_s": round(wall, 3),
        "gateway_s": round(gateway, 2),
        "gateway_main_thread_s": round(b.gateway_main - a.gateway_main, 2),
        "generator_s": round(generator, 2),
        "database_s": None if database is None else round(database, 2),
        "bench_s": round(bench, 2),
        "machine_s": round(processes + interrupts + steal, 2),
        "other_s": round(max(other, 0.0), 2),  # other processes on the machine: interference
        "interrupts_s": round(interrupts, 2),
        "steal_s": round(steal, 2),
        "gateway_util": round(gateway / wall, 3) if wall > 0 else None,
    }


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def source_address(scenario_no: int, n: int) -> str:
    """The n-th connection's own loopback source address (never 127.0.0.x)."""
    block, rest = divmod(n, 250 * 250)
    return f"127.{16 + scenario_no * 8 + block}.{rest // 250}.{rest % 250 + 1}"


# --- the database ---------------------------------------------------------------------------------

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

    def __init__(self, db_url: str, log_path: Path, tls: TlsFiles | None) -> None:
        self.db_url, self.log_path, self.tls = db_url, log_path, tls
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


# --- generator workers (each in its own process) --------------------------------------------------

class ConnectionClosed(Exception):
    pass


class Client(asyncio.Protocol):
    """One simulated device: a raw connection speaking the Blynk device protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, token: bytes) -> None:
        self.loop = loop
        self.token = token
        self.transport: asyncio.Transport | None = None
        self.decoder = blynk.Decoder()
        self.waiters: dict[int, asyncio.Future[tuple[int, float]]] = {}
        self.msg_id = 0
        self.closing = self.lost = self.server_closed = False
        self.unexpected = 0  # frames from the server that were not responses
        self.ingest: Ingest | None = None
        self.m = 0  # ingest: HARDWARE messages sent
        self.outstanding = 0  # ingest: batches whose PING is unanswered
        self.finished = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except blynk.ProtocolError:
            self.unexpected += 1
            if self.transport is not None:
                self.transport.abort()
            return
        now = time.monotonic()
        for frame in frames:
            if frame.command != Command.RESPONSE:
                self.unexpected += 1
            elif self.ingest is not None:
                self.ingest.on_response(self, frame.status)
            else:
                fut = self.waiters.pop(frame.msg_id, None)
                if fut is not None and not fut.done():
                    fut.set_result((frame.status, now))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.closing:
            self.server_closed = True
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed())
        self.waiters.clear()
        if self.ingest is not None:
            self.ingest.finish(self)

    def request(self, command: int, body: bytes = b"") -> asyncio.Future[tuple[int, float]]:
        """Send a frame; the future gets (status, arrival time) of its RESPONSE."""
        fut: asyncio.Future[tuple[int, float]] = self.loop.create_future()
        if self.lost or self.transport is None:
            fut.set_exception(ConnectionClosed())
            return fut
        self.msg_id = self.msg_id % blynk.MAX_MSG_ID + 1
        self.waiters[self.msg_id] = fut
        self.transport.write(blynk.HEADER.pack(command, self.msg_id, len(body)) + body)
        return fut

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.lost:
            self.transport.close()


class LoginStats:
    def __init__(self) -> None:
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self.first = math.inf
        self.last = 0.0
        self.latencies: list[float] = []

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "failures": dict(self.failures), "first": self.first,
                "last": self.last, "latencies": self.latencies}


class Ingest:
    """Pipelined HARDWARE writes: each batch of ``batch`` frames ends with a PING; a connection
    sends its next batch when a PING is answered, until ``deadline``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, batch: int, window: int,
                 deadline: float, count: int) -> None:
        self.batch, self.window, self.deadline = batch, window, deadline
        self.messages = self.pings = self.errors = self.lost = 0
        self.last_reply = 0.0
        self.remaining = count
        self.all_done: asyncio.Future[None] = loop.create_future()
        if count == 0:
            self.all_done.set_result(None)

    def start(self, c: Client) -> None:
        c.ingest = self
        for _ in range(self.window):
            self.send_batch(c)

    def send_batch(self, c: Client) -> None:
        pack = blynk.HEADER.pack
        parts = []
        m, mid = c.m, c.msg_id
        for _ in range(self.batch):
            body = b"vw\0%d\0%d" % (m % PINS, m)
            mid = mid % blynk.MAX_MSG_ID + 1
            parts.append(pack(HARDWARE, mid, len(body)))
            parts.append(body)
            m += 1
        mid = mid % blynk.MAX_MSG_ID + 1
        parts.append(pack(PING, mid, 0))
        assert c.transport is not None
        c.transport.write(b"".join(parts))
        self.messages += m - c.m
        self.pings += 1
        c.m, c.msg_id = m, mid
        c.outstanding += 1

    def on_response(self, c: Client, status: int) -> None:
        if status != Status.OK:
            self.errors += 1
        c.outstanding -= 1
        now = time.monotonic()
        if now < self.deadline and not c.lost:
            self.send_batch(c)
        elif c.outstanding <= 0:
            self.last_reply = max(self.last_reply, now)
            self.finish(c)

    def finish(self, c: Client) -> None:
        if c.finished:
            return
        c.finished = True
        if c.lost:
            self.lost += 1
        self.remaining -= 1
        if self.remaining <= 0 and not self.all_done.done():
            self.all_done.set_result(None)

    @staticmethod
    def last_values(c: Client) -> list[str | None]:
        """The last value sent on each pin (what pin_values must hold afterwards)."""
        last = c.m - 1
        values: list[str | None] = []
        for pin in range(PINS):
            m = last - ((last - pin) % PINS)
            values.append(str(m) if m >= 0 else None)
        return values


class Heartbeat:
    """Pings every device ``period`` seconds after its login and then after each ping, as a device
    with nothing else to send does (one queue: logins and pings come in time order)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.queue: deque[tuple[float, Client]] = deque()
        self.phase = "login"
        self.rtts: dict[str, list[float]] = {"login": [], "hold": []}
        self.pings: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.stopped = False

    def add(self, c: Client) -> None:
        self.queue.append((time.monotonic() + self.period, c))

    def done(self, phase: str, t0: float, fut: asyncio.Future[tuple[int, float]]) -> None:
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self.failed[phase] += 1
            return
        status, t1 = fut.result()
        if status == Status.OK:
            self.rtts[phase].append(t1 - t0)
        else:
            self.failed[phase] += 1

    async def run(self) -> None:
        queue = self.queue
        while not self.stopped:
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _, c = queue.popleft()
                if c.lost or c.closing:
                    continue
                c.request(Command.PING).add_done_callback(
                    functools.partial(self.done, self.phase, now)
                )
                self.pings[self.phase] += 1
                queue.append((now + self.period, c))
            await asyncio.sleep(PING_TICK)


class Worker:
    def __init__(self, chan: Connection, index: int, host: str, port: int,
                 ca: str | None) -> None:
        self.chan, self.index, self.host, self.port = chan, index, host, port
        self.ssl: ssl.SSLContext | None = None
        if ca:
            self.ssl = ssl.create_default_context(cafile=ca)
        self.clients: list[Client] = []

    # --- talking to the bench ---
    def send(self, phase: str, data: Any = None) -> None:
        self.chan.send((phase, data))

    async def recv(self, timeout: float | None) -> Any:
        if not self.chan.poll():
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            fd = self.chan.fileno()

            def readable() -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(fd, readable)
            try:
                await asyncio.wait_for(ready, timeout)
            finally:
                loop.remove_reader(fd)
            # uvloop's add_reader leaves the pipe non-blocking; a big message arrives in parts.
            os.set_blocking(fd, True)
        return self.chan.recv()

    async def wait_go(self) -> dict[str, Any]:
        msg = await self.recv(GO_TIMEOUT)
        if msg[0] != "go":
            raise RuntimeError(f"expected 'go' from the bench, got {msg[0]!r}")
        return dict(msg[1])

    async def main(self) -> None:
        self.send("ready", {"pid": os.getpid(), "nofile": raise_nofile()})
        while True:
            msg = await self.recv(None)
            if msg[0] == "quit":
                return
            _, scenario, params, items = msg
            try:
                await getattr(self, f"run_{scenario}")(params, items)
            except Exception:
                self.send("error", traceback.format_exc())
            finally:
                self.close_all()
                await asyncio.sleep(0)

    def close_all(self) -> None:
        for c in self.clients:
            c.close()
        self.clients = []

    # --- logging in ---
    async def connect(self, c: Client, addr: str) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((addr, 0))
            await loop.sock_connect(sock, (self.host, self.port))
            await loop.create_connection(
                lambda: c, sock=sock, ssl=self.ssl,
                server_hostname="localhost" if self.ssl else None,
            )
        except BaseException:
            sock.close()
            raise

    async def login(
        self, c: Client, addr: str, info: bool, stats: LoginStats, claim: bool = False
    ) -> bool:
        """Connect, log in and (``info``) send the info message. The latency is to the login's
        answer, or with ``claim`` to the info's: a provisioning token's claim is decided with the
        info (its template), and the gateway answers the info once the claim is committed."""
        t0 = time.monotonic()
        stats.first = min(stats.first, t0)
        self.clients.append(c)
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                await self.connect(c, addr)
                status, t1 = await c.request(Command.HW_LOGIN, c.token)
                if status != Status.OK:
                    stats.failures[f"login status {status}"] += 1
                    c.close()
                    return False
                if info:
                    status, t_info = await c.request(Command.INTERNAL, INFO_BODY)
                    if claim:
                        t1 = t_info
                    if status != Status.OK:
                        stats.failures[f"info status {status}"] += 1
                        c.close()
                        return False
        except TimeoutError:
            stats.failures["timeout"] += 1
            c.close()
            return False
        except ConnectionClosed:
            stats.failures["closed by the gateway"] += 1
            return False
        except OSError as exc:
            stats.failures[f"connect: {exc.strerror or exc}"] += 1
            c.close()
            return False
        stats.ok += 1
        stats.last = max(stats.last, t1)
        stats.latencies.append(t1 - t0)
        return True

    async def login_many(
        self, items: list[tuple[int, str]], scenario_no: int, info: bool, concurrency: int,
        on_online: Callable[[Client], None] | None = None, claim: bool = False,
    ) -> tuple[list[tuple[int, Client]], LoginStats]:
        loop = asyncio.get_running_loop()
        stats = LoginStats()
        online: list[tuple[int, Client]] = []
        queue = iter(items)

        async def runner() -> None:
            for n, token in queue:
                c = Client(loop, token.encode("ascii"))
                if await self.login(c, source_address(scenario_no, n), info, stats, claim):
                    online.append((n, c))
                    if on_online is not None:
                        on_online(c)

        async with asyncio.timeout(120 + len(items) / 20):
            await asyncio.gather(*(runner() for _ in range(min(concurrency, len(items)))))
        return online, stats

    # --- scenarios ---
    async def run_hold(self, params: dict[str, Any], items: list[tuple[int, str]]) -> None:
        heartbeat = Heartbeat(HEARTBEAT)
        beating = asyncio.create_task(heartbeat.run())
        try:
            online, stats = await self.login_many(
                items, 0, True, params["concurrency"], on_online=heartbeat.add
            )
            self.send("logged_in", stats.summary())
            until = (await self.wait_go())["until"]
            heartbeat.phase = "hold"
            await asyncio.sleep(max(0.0, until - time.monotonic()))
        finally:
            heartbeat.stopped = True
            await beating
        # The end: every device must still be there and answer.
        clients = [c for _, c in online]
        closed_by_server = sum(1 for c in clients if c.server_closed)
        finals = [c.request(Command.PING) for c in clients]
        alive = 0
        if finals:
            done, pending = await asyncio.wait(finals, timeout=FINAL_PING_TIMEOUT)
            for fut in pending:
                fut.cancel()
            for fut in done:
                if fut.exception() is None and fut.result()[0] == Status.OK:
                    alive += 1
        self.send("done", {
            "held": len(clients), "alive": alive, "closed_by_server": closed_by_server,
            "pings": dict(heartbeat.pings), "ping_failed": dict(heartbeat.failed),
            "rtts": heartbeat.rtts, "unexpected": sum(c.unexpected for c in clients),
        })
        await self.wait_go()
        self.close_all()
        self.send("closed")

    async def run_logins(self, params: dict[str, Any], items: list[tuple[int, str]]) -> None:
        claim = params["scenario"] == "claim"  # a claim is done when its info is answered
        online, stats = await self.login_many(
            items, params["scenario_no"], claim, params["concurrency"], claim=claim
        )
        summary = stats.summary()
        summary["closed_by_server"] = sum(1 for _, c in online if c.server_closed)
        self.send("done", summary)
        await self.wait_go()
        self.close_all()
        self.send("closed")

    run_relogin = run_logins
    run_claim = run_logins

    async def run_ingest(self, params: dict[str, Any], items: list[tuple[int, str]]) -> None:
        loop = asyncio.get_running_loop()
        online, stats = await self.login_many(items, 3, False, params["concurrency"])
        self.send("logged_in", stats.summary())
        go = await self.wait_go()
        start, seconds = go["start"], go["seconds"]
        ingest = Ingest(loop, params["batch"], params["window"], start + seconds, len(online))
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        for _, c in online:
            if c.lost:
                ingest.remaining -= 1
                ingest.lost += 1
            else:
                ingest.start(c)
        if ingest.remaining <= 0 and not ingest.all_done.done():
            ingest.all_done.set_result(None)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(ingest.all_done), seconds + DRAIN_TIMEOUT)
        except TimeoutError:
            timed_out = True
        self.send("done", {
            "connections": len(online), "messages": ingest.messages, "pings": ingest.pings,
            "errors": ingest.errors, "lost": ingest.lost, "unfinished": ingest.remaining,
            "timed_out": timed_out, "last_reply": ingest.last_reply,
            "unexpected": sum(c.unexpected for _, c in online),
            "expected": {n: Ingest.last_values(c) for n, c in online if not c.lost},
        })
        await self.wait_go()
        self.close_all()
        self.send("closed")


def worker_main(chan: Connection, index: int, host: str, port: int, ca: str | None,
                use_uvloop: bool = False) -> None:
    """Entry point of a generator process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us in order on Ctrl-C
    die_with_parent()
    worker = Worker(chan, index, host, port, ca)
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        if use_uvloop:
            import uvloop

            uvloop.run(worker.main())
        else:
            asyncio.run(worker.main())


class WorkerPool:
    def __init__(self, count: int, host: str, port: int, ca: str | None,
                 check: Callable[[], None], use_uvloop: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.check = check
        self.procs: list[Any] = []
        self.chans: list[Connection] = []
        for i in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, i, host, port, ca, use_uvloop),
                               name=f"wifiprov-bench-{i}", daemon=True)
            proc.start()
            child.close()
            self.procs.append(proc)
            self.chans.append(parent)
        self.ready = self.collect("ready", 60)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def run(self, scenario: str, params: dict[str, Any], items: list[tuple[int, str]]) -> None:
        k = len(self.chans)
        for i, chan in enumerate(self.chans):
            chan.send(("run", scenario, params, items[i::k]))

    def go(self, data: dict[str, Any] | None = None) -> None:
        for chan in self.chans:
            chan.send(("go", data or {}))

    def collect(self, phase: str, timeout: float,
                tick: Callable[[], None] | None = None) -> list[Any]:
        """One ``phase`` message from every worker; ``tick`` runs about once a second."""
        results: list[Any] = [None] * len(self.chans)
        pending = set(range(len(self.chans)))
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + 1.0
        while pending:
            now = time.monotonic()
            if now > deadline:
                raise BenchError(f"generator workers {sorted(pending)} did not finish "
                                 f"'{phase}' within {timeout:.0f} s")
            ready = wait_connections([self.chans[i] for i in pending],
                                     timeout=max(0.0, min(deadline, next_tick) - now))
            for ready_chan in ready:
                i = next(k for k, c in enumerate(self.chans) if c is ready_chan)
                try:
                    msg_phase, data = self.chans[i].recv()
                except (EOFError, OSError):
                    raise BenchError(f"generator worker {i} died "
                                     f"(exit code {self.procs[i].exitcode})") from None
                if msg_phase == "error":
                    raise BenchError(f"generator worker {i} failed:\n{data}")
                if msg_phase != phase:
                    raise BenchError(f"generator worker {i}: expected '{phase}', got "
                                     f"'{msg_phase}'")
                results[i] = data
                pending.discard(i)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + 1.0
                self.check()
                if tick is not None:
                    tick()
        return results

    def stop(self) -> None:
        for chan in self.chans:
            with contextlib.suppress(OSError, ValueError):
                chan.send(("quit",))
        for proc in self.procs:
            proc.join(3)
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)
        for chan in self.chans:
            chan.close()


def merge_logins(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Logins of all workers: counts, rate over first connect .. last 200, latency."""
    ok = sum(p["ok"] for p in parts)
    failures: Counter[str] = Counter()
    for p in parts:
        failures.update(p["failures"])
    first = min((p["first"] for p in parts), default=math.inf)
    last = max((p["last"] for p in parts), default=0.0)
    latencies = sorted(x for p in parts for x in p["latencies"])
    wall = last - first if ok and last > first else None
    return {
        "ok": ok,
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "seconds": None if wall is None else round(wall, 3),
        "per_s": None if wall is None else round(ok / wall, 1),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(latencies[-1] if latencies else None),
    }


# --- the bench ------------------------------------------------------------------------------------

class Bench:
    def __init__(self, cfg: BenchConfig, say: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.say = say
        self.report: dict[str, Any] = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "environment": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
                "loadavg_at_start": _loadavg(),
                "source": source_fingerprint(),
            },
            "setup": {},
            "scenarios": {},
            "errors": [],
        }
        self.gateway: GatewayProcess | None = None
        self.pool: WorkerPool | None = None
        self.pop: Population | None = None

    # --- measuring ---
    def snap(self) -> CpuSnapshot:
        assert self.gateway is not None and self.pool is not None
        pid = self.gateway.pid
        return CpuSnapshot(
            at=time.monotonic(),
            gateway=cpu_seconds(pid) or 0.0,
            gateway_main=thread_cpu_seconds(pid).get(pid, 0.0),
            workers=sum(cpu_seconds(pid) or 0.0 for pid in self.pool.pids),
            bench=time.process_time(),
            machine=machine_seconds(),
            postgres=postgres_cpu() if self.cfg.db == "postgres" else None,
        )

    def settle(self, limit: float = 30.0) -> float:
        """Wait until the gateway is idle (< 5% of a core over half a second)."""
        assert self.gateway is not None
        started = time.monotonic()
        prev, t = cpu_seconds(self.gateway.pid), time.monotonic()
        while time.monotonic() - started < limit:
            time.sleep(0.5)
            self.gateway.check()
            cur, now = cpu_seconds(self.gateway.pid), time.monotonic()
            if cur is not None and prev is not None and (cur - prev) / (now - t) < 0.05:
                break
            prev, t = cur, now
        return time.monotonic() - started

    def profile_start(self, name: str) -> tuple[subprocess.Popen[bytes], Path] | None:
        if self.cfg.profile_dir is None:
            return None
        assert self.gateway is not None
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.cfg.profile_dir.mkdir(parents=True, exist_ok=True)
        out = self.cfg.profile_dir / f"gateway-{self.cfg.db}-{name}.txt"
        proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.gateway.pid), "--rate", "100", "--nonblocking",
             "--format", "raw", "--output", str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent,
        )
        return proc, out

    def profile_stop(self, profiler: tuple[subprocess.Popen[bytes], Path] | None,
                     result: dict[str, Any]) -> None:
        if profiler is None:
            return
        proc, out = profiler
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        result["profile"] = summarize_profile(out)

    # --- the run ---
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        tmp = Path(tempfile.mkdtemp(prefix="wifiprov-bench-"))
        pg_name: str | None = None
        try:
            raise_nofile()
            if cfg.db == "postgres":
                check_loopback_url(cfg.pg_url)
                pg_name, url = asyncio.run(create_pg_database(cfg.pg_url))
                self.say(f"created PostgreSQL database {pg_name}")
            else:
                url = str(tmp / "cloud.sqlite3")
            self.say(f"populating: {cfg.population} devices, {cfg.provisioning} provisioning "
                     "tokens")
            self.pop = asyncio.run(populate(url, cfg.population, cfg.provisioning))
            self.report["setup"]["populate_s"] = round(self.pop.seconds, 2)
            tls = TlsFiles.make(tmp) if cfg.tls else None
            log_path = cfg.gateway_log or tmp / "gateway.log"
            self.gateway = GatewayProcess(url, log_path, tls)
            self.gateway.start()
            started = self.gateway.wait_ready(GATEWAY_START_TIMEOUT)
            self.report["setup"].update(
                gateway_start_s=round(started, 2), gateway_pid=self.gateway.pid,
                gateway_port=self.gateway.device_port, tls=cfg.tls,
                gateway_rss_kib_at_start=rss_kib(self.gateway.pid),
            )
            self.say(f"gateway pid {self.gateway.pid} on port {self.gateway.device_port}"
                     f"{' (TLS)' if tls else ''}; log: {log_path}")
            self.pool = WorkerPool(cfg.workers, "127.0.0.1", self.gateway.device_port,
                                   str(tls.ca) if tls else None, self.gateway.check, cfg.uvloop)
            for scenario in cfg.scenarios:
                self.settle()
                self.say(f"scenario {scenario} ...")
                self.report["environment"].setdefault("loadavg", {})[scenario] = _loadavg()
                result: dict[str, Any] = {}
                self.report["scenarios"][scenario] = result
                try:
                    getattr(self, f"scenario_{scenario}")(result)
                except KeyboardInterrupt:
                    result["error"] = "interrupted"
                    raise
                except BenchError as exc:
                    result["error"] = str(exc)
                    self.report["errors"].append(f"{scenario}: {exc}")
                    self.say(f"scenario {scenario} failed: {exc}")
                    break  # the workers or the gateway are in an unknown state
                self.say(f"scenario {scenario}: {headline(scenario, result)}")
        except BenchError as exc:
            self.report["errors"].append(str(exc))
        finally:
            self.cleanup(tmp, pg_name)
        return self.report

    def cleanup(self, tmp: Path, pg_name: str | None) -> None:
        # A second Ctrl-C must not leave a gateway or a database behind.
        with _signals_ignored():
            self._cleanup(tmp, pg_name)

    def _cleanup(self, tmp: Path, pg_name: str | None) -> None:
        with contextlib.suppress(Exception):
            if self.pool is not None:
                self.pool.stop()
        with contextlib.suppress(Exception):
            if self.gateway is not None:
                self.gateway.stop()
        if pg_name is not None:
            try:
                asyncio.run(drop_pg_database(self.cfg.pg_url, pg_name))
                self.say(f"dropped PostgreSQL database {pg_name}")
            except Exception as exc:  # report it, but let the rest of the cleanup happen
                self.report["errors"].append(f"could not drop database {pg_name}: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)

    # --- scenarios ---
    def scenario_hold(self, result: dict[str, Any]) -> None:
        cfg, gw, pool, pop = self.cfg, self.gateway, self.pool, self.pop
        assert gw is not None and pool is not None and pop is not None
        n = cfg.devices
        items = list(enumerate(pop.tokens[:n]))
        rss_before = rss_kib(gw.pid)
        profiler = self.profile_start("hold")
        s0 = self.snap()
        pool.run("hold", {"concurrency": cfg.concurrency}, items)
        logins = merge_logins(pool.collect("logged_in", 180 + n / 20))
        s1 = self.snap()
        rss_logged_in = rss_kib(gw.pid)
        pool.go({"until": time.monotonic() + cfg.hold_seconds})
        samples: list[int] = []

        def sample() -> None:
            value = rss_kib(gw.pid)
            if value is not None:
                samples.append(value)

        done = pool.collect("done", cfg.hold_seconds + FINAL_PING_TIMEOUT + 60, tick=sample)
        s2 = self.snap()
        self.profile_stop(profiler, result)
        online_in_db = asyncio.run(count_online(pop.url, pop.device_ids[:n]))
        pool.go()
        pool.collect("closed", 60)
        rtts = sorted(x for d in done for x in d["rtts"]["hold"])
        rtts_login = sorted(x for d in done for x in d["rtts"]["login"])
        alive = sum(d["alive"] for d in done)
        rss_holding = samples[-1] if samples else rss_kib(gw.pid)
        result.update(
            devices=n,
            login=logins,
            hold_seconds=cfg.hold_seconds,
            held=sum(d["held"] for d in done),
            alive_at_end=alive,
            closed_by_server=sum(d["closed_by_server"] for d in done),
            online_in_db=online_in_db,
            # heartbeat pings while holding (and, separately, while the others logged in)
            pings=sum(d["pings"].get("hold", 0) for d in done),
            ping_replies=len(rtts),
            ping_failed=sum(d["ping_failed"].get("hold", 0) for d in done),
            ping_p50_ms=ms(percentile(rtts, 0.5)),
            ping_p99_ms=ms(percentile(rtts, 0.99)),
            ping_max_ms=ms(rtts[-1] if rtts else None),
            pings_during_login=sum(d["pings"].get("login", 0) for d in done),
            ping_replies_during_login=len(rtts_login),
            ping_p99_ms_during_login=ms(percentile(rtts_login, 0.99)),
            unexpected_frames=sum(d["unexpected"] for d in done),
            rss_before_kib=rss_before,
            rss_logged_in_kib=rss_logged_in,
            rss_holding_kib=rss_holding,
            rss_holding_max_kib=max(samples) if samples else None,
            rss_per_connection_kib=(
                round((rss_holding - rss_before) / alive, 2)
                if alive and rss_holding is not None and rss_before is not None else None
            ),
            cpu_login=cpu_delta(s0, s1),
            cpu_hold=cpu_delta(s1, s2),
            cpu=cpu_delta(s0, s2),
        )
        problems = []
        if alive < n:
            problems.append(f"{n - alive} of {n} devices not connected at the end")
        unanswered = (result["pings"] + result["pings_during_login"] - result["ping_replies"]
                      - result["ping_replies_during_login"])
        if unanswered:
            problems.append(f"{unanswered} heartbeat pings unanswered")
        if online_in_db < alive:
            problems.append(f"only {online_in_db} devices online in the database")
        result["problems"] = problems
        # Below the target's scale the run says nothing about the target.
        result["target_met"] = (alive >= TARGET_HOLD and not problems) if n >= TARGET_HOLD else None

    def _logins(self, result: dict[str, Any], scenario: str, scenario_no: int,
                tokens: list[str]) -> None:
        cfg, pool = self.cfg, self.pool
        assert pool is not None
        items = list(enumerate(tokens))
        profiler = self.profile_start(scenario)
        s0 = self.snap()
        params = {"concurrency": cfg.concurrency, "scenario_no": scenario_no, "scenario": scenario}
        pool.run(scenario, params, items)
        parts = pool.collect("done", 180 + len(items) / 20)
        s1 = self.snap()
        self.profile_stop(profiler, result)
        pool.go()
        pool.collect("closed", 60)
        result.update(merge_logins(parts))
        result["attempts"] = len(items)
        result["closed_by_server"] = sum(p["closed_by_server"] for p in parts)
        result["cpu"] = cpu_delta(s0, s1)
        problems = []
        if result["failed"]:
            problems.append(f"{result['failed']} failed: {result['failures']}")
        if result["closed_by_server"]:
            problems.append(f"{result['closed_by_server']} closed by the gateway after login")
        result["problems"] = problems

    def scenario_relogin(self, result: dict[str, Any]) -> None:
        assert self.pop is not None
        self._logins(result, "relogin", 1, self.pop.tokens[: self.cfg.devices])
        result["target_met"] = (
            (result["per_s"] or 0) >= TARGET_RELOGIN and not result["problems"]
            if self.cfg.devices >= TARGET_RELOGIN else None
        )

    def scenario_claim(self, result: dict[str, Any]) -> None:
        assert self.pop is not None
        self._logins(result, "claim", 2, self.pop.claim_tokens)
        result["claimed_in_db"] = asyncio.run(count_claimed(self.pop.url))
        if result["claimed_in_db"] != result["ok"]:
            result["problems"].append(
                f"{result['claimed_in_db']} claimed in the database, {result['ok']} logins"
            )
        target = TARGET_CLAIMS[self.cfg.db]
        result["target_met"] = (
            (result["per_s"] or 0) >= target
            and (result["p99_ms"] or 0) <= TARGET_CLAIM_P99_MS
            and not result["problems"]
            if len(self.pop.claim_tokens) >= target else None
        )

    def scenario_ingest(self, result: dict[str, Any]) -> None:
        cfg, gw, pool, pop = self.cfg, self.gateway, self.pool, self.pop
        assert gw is not None and pool is not None and pop is not None
        d = cfg.ingest_devices
        items = list(enumerate(pop.tokens[:d]))
        params = {"concurrency": cfg.concurrency, "batch": cfg.ingest_batch,
                  "window": cfg.ingest_window}
        pool.run("ingest", params, items)
        logins = merge_logins(pool.collect("logged_in", 180 + d / 20))
        self.settle(15)  # let presence writes of the logins pass before the clock starts
        profiler = self.profile_start("ingest")
        s0 = self.snap()
        start = time.monotonic() + 0.3
        pool.go({"start": start, "seconds": cfg.ingest_seconds})
        parts = pool.collect("done", cfg.ingest_seconds + DRAIN_TIMEOUT + 60)
        s1 = self.snap()
        self.profile_stop(profiler, result)
        last_reply = max(p["last_reply"] for p in parts)
        messages = sum(p["messages"] for p in parts)
        wall = last_reply - start if last_reply > start else None
        expected: dict[int, list[str | None]] = {}
        for p in parts:
            for n, values in p["expected"].items():
                expected[pop.device_ids[n]] = values
        stored = asyncio.run(check_pins(pop.url, expected, timeout=20))
        pool.go()
        pool.collect("closed", 60)
        result.update(
            devices=d,
            login=logins,
            connections=sum(p["connections"] for p in parts),
            seconds_sending=cfg.ingest_seconds,
            seconds=None if wall is None else round(wall, 3),
            messages=messages,
            pings=sum(p["pings"] for p in parts),
            messages_per_s=None if wall is None else round(messages / wall, 1),
            batch=cfg.ingest_batch,
            window=cfg.ingest_window,
            errors=sum(p["errors"] for p in parts),
            lost=sum(p["lost"] for p in parts),
            unfinished=sum(p["unfinished"] for p in parts),
            unexpected_frames=sum(p["unexpected"] for p in parts),
            db=stored,
            cpu=cpu_delta(s0, s1),
        )
        problems = []
        if result["connections"] < d:
            problems.append(f"only {result['connections']} of {d} devices logged in")
        for key in ("errors", "lost", "unfinished"):
            if result[key]:
                problems.append(f"{result[key]} {key}")
        if stored["values_matching"] < stored["values_expected"]:
            problems.append(f"pin_values holds {stored['values_matching']} of "
                            f"{stored['values_expected']} last values sent")
        result["problems"] = problems
        result["target_met"] = (
            (result["messages_per_s"] or 0) >= TARGET_INGEST and not problems
            if d >= 1000 else None
        )


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def source_fingerprint() -> dict[str, Any]:
    """Which code was measured: a digest of the cloud's and the wire codec's sources, and when
    the newest of them changed (the gateway may be edited between runs)."""
    import hashlib

    import wifiprov

    root = Path(wifiprov.__file__).parent
    files = sorted([*root.glob("cloud/**/*.py"), *root.glob("wire/*.py")])
    digest = hashlib.sha256()
    newest = 0.0
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    return {
        "sha256": digest.hexdigest()[:16],
        "files": len(files),
        "newest_change": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest)),
    }


def _loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def headline(scenario: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return "error"
    if scenario == "hold":
        return (f"{r['alive_at_end']}/{r['devices']} alive after {r['hold_seconds']:g} s, "
                f"RSS {r['rss_per_connection_kib']} KiB/connection")
    if scenario in ("relogin", "claim"):
        return f"{r['ok']}/{r['attempts']} in {r['seconds']} s = {r['per_s']}/s"
    if scenario == "ingest":
        return f"{r['messages']} messages in {r['seconds']} s = {r['messages_per_s']}/s"
    return ""


# Samples in these frames are threads waiting, which py-spy's idle detection can miss.
IDLE_FRAMES = ("_connection_worker_thread (aiosqlite/core.py:59)",)


def _frame_function(frame: str) -> str:
    """``func (path/file.py:123)`` without the line number."""
    head, sep, tail = frame.rpartition(":")
    return head + ")" if sep and tail.rstrip(")").isdigit() else frame


def _frame_package(frame: str) -> str:
    path = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0]
    top = path.split("/")[0] if "/" in path else path
    return top.removesuffix(".py") or "?"


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Where the gateway's samples are, from py-spy's raw (collapsed) output: by function and by
    package of the innermost frame, and wifiprov's functions with what they call ("inclusive";
    stacks run in SQLAlchemy's greenlets are partial, so it undercounts their callers)."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        return {"file": str(path), "error": str(exc)}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames or frames[-1] in IDLE_FRAMES:
            continue
        count = int(count_text)
        total += count
        own[_frame_function(frames[-1])] += count
        packages[_frame_package(frames[-1])] += count
        ours = {_frame_function(f) for f in frames if "(wifiprov/" in f}
        for function in ours - {"main (wifiprov/cli.py)", "cloud (wifiprov/cli.py)",
                                "<module> (wifiprov/cli.py)"}:
            inclusive[function] += count

    def pct(c: Counter[str]) -> list[list[Any]]:
        if not total:
            return []
        return [[name, round(100 * n / total, 1)] for name, n in c.most_common(top)]

    return {"file": str(path), "samples": total, "own": pct(own), "packages": pct(packages),
            "inclusive": pct(inclusive)}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")

