"""The load generator: raw Blynk-protocol clients on their own 127.x.y.z source addresses, run
in worker processes that the bench steers scenario by scenario."""


from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import multiprocessing
import os
import random
import signal
import socket
import ssl
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_connections
from typing import Any

from wifiprov.bench.gateway.config import (
    DRAIN_TIMEOUT,
    FINAL_PING_TIMEOUT,
    GO_TIMEOUT,
    HARDWARE,
    HEARTBEAT,
    INFO_BODY,
    IP_BIND_ADDRESS_NO_PORT,
    OP_TIMEOUT,
    PING,
    PING_TICK,
    PINS,
    STORM_ATTEMPTS,
    BenchError,
)
from wifiprov.bench.gateway.metrics import die_with_parent, ms, percentile, raise_nofile
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status


def source_address(scenario_no: int, n: int) -> str:
    """The n-th connection's own loopback source address (never 127.0.0.x)."""
    block, rest = divmod(n, 250 * 250)
    return f"127.{16 + scenario_no * 8 + block}.{rest // 250}.{rest % 250 + 1}"


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
        self.logged_in: asyncio.Future[tuple[int, float]] | None = None

    def connection_made(self, transport: Any) -> None:
        # The login goes out at once, in this callback, as a device's does: with thousands of
        # connects in flight, a step through the event loop could take the generator longer
        # than the gateway's login timeout (5 s).
        self.transport = transport
        self.logged_in = self.request(Command.HW_LOGIN, self.token)

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
    def __init__(self, chan: Connection, index: int, host: str, ports: list[int],
                 ca: str | None) -> None:
        self.chan, self.index, self.host, self.ports = chan, index, host, ports
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
    def port_of(self, n: int) -> int:
        """Device ``n``'s gateway: with several nodes, the devices are spread over them in turn."""
        return self.ports[n % len(self.ports)]

    async def connect(self, c: Client, addr: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((addr, 0))
            await loop.sock_connect(sock, (self.host, port))
            await loop.create_connection(
                lambda: c, sock=sock, ssl=self.ssl,
                server_hostname="localhost" if self.ssl else None,
            )
        except BaseException:
            sock.close()
            raise

    async def login(
        self, c: Client, addr: str, port: int, info: bool, stats: LoginStats, claim: bool = False
    ) -> bool:
        """Connect, log in and (``info``) send the info message. The latency is to the login's
        answer, or with ``claim`` to the info's: a provisioning token's claim is decided with the
        info (its template), and the gateway answers the info once the claim is committed."""
        t0 = time.monotonic()
        stats.first = min(stats.first, t0)
        self.clients.append(c)
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                await self.connect(c, addr, port)
                assert c.logged_in is not None  # sent when the connection was made
                status, t1 = await c.logged_in
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
                if await self.login(
                    c, source_address(scenario_no, n), self.port_of(n), info, stats, claim
                ):
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

    async def run_storm(self, params: dict[str, Any], items: list[tuple[int, str]]) -> None:
        """Log every device in; at the bench's word drop every connection at once, and have
        each device log in again at a random moment of the next ``spread`` seconds. A device
        whose login fails tries again after 1-3 s, as Blynk's libraries reconnect (up to
        ``STORM_ATTEMPTS`` times): the failures are counted, and the time is until the last
        device is back."""
        online, stats = await self.login_many(items, 4, False, params["concurrency"])
        self.send("logged_in", stats.summary())
        go = await self.wait_go()
        start, spread = go["start"], go["spread"]
        self.close_all()  # the outage: every connection gone at once
        again = LoginStats()
        loop = asyncio.get_running_loop()

        async def back(n: int, token: str) -> None:
            await asyncio.sleep(max(0.0, start + random.uniform(0, spread) - time.monotonic()))
            for _ in range(STORM_ATTEMPTS):
                client = Client(loop, token.encode("ascii"))
                if await self.login(client, source_address(5, n), self.port_of(n), False, again):
                    return
                await asyncio.sleep(random.uniform(1.0, 3.0))

        await asyncio.sleep(max(0.0, start - time.monotonic()))
        async with asyncio.timeout(120 + len(online) / 20):
            await asyncio.gather(*(back(n, c.token.decode("ascii")) for n, c in online))
        summary = again.summary()
        summary["dropped"] = len(online)
        summary["devices_back"] = again.ok
        self.send("done", summary)
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


def worker_main(chan: Connection, index: int, host: str, ports: list[int], ca: str | None,
                use_uvloop: bool = False) -> None:
    """Entry point of a generator process (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us in order on Ctrl-C
    die_with_parent()
    worker = Worker(chan, index, host, ports, ca)
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        if use_uvloop:
            import uvloop

            uvloop.run(worker.main())
        else:
            asyncio.run(worker.main())


class WorkerPool:
    def __init__(self, count: int, host: str, ports: list[int], ca: str | None,
                 check: Callable[[], None], use_uvloop: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.check = check
        self.procs: list[Any] = []
        self.chans: list[Connection] = []
        for i in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, i, host, ports, ca, use_uvloop),
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
