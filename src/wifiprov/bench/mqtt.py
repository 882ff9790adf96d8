"""``wifiprov bench gateway --protocol mqtt``: the MQTT device API under load, and the same load
against a Mosquitto server in the same run (side by side, as a ratio).

Three scenarios, each against both servers: **hold** (connect every device, MQTT 3.1.1, user
``device`` and its token; CONNACK counted), **relogin** (all of them drop and connect again at
once: logins/s), **ds** (``ingest_devices`` connections each write batches of QoS 0
``ds/Temperature`` publishes, every batch closed by a PINGREQ; a PINGRESP means the server has
read the batch, so messages/s counts what the server took, not what the generator wrote).
The generator is one asyncio process on the wire.mqtt codec; its CPU is reported, as on a
shared machine it may be the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wifiprov.bench.gateway import (
    TEMPLATE_ID,
    _accepts,
    cpu_seconds,
    free_port,
    populate,
)
from wifiprov.wire import mqtt

OP_TIMEOUT = 30.0


@dataclass
class MqttBenchConfig:
    devices: int = 10_000
    ingest_devices: int = 1_000
    ingest_seconds: float = 10.0
    concurrency: int = 500
    batch: int = 50
    mosquitto: str | None = "127.0.0.1:1883"  # None: skip the comparison
    workers: int = 2  # generator processes (each takes a slice of the devices)
    results: dict[str, Any] = field(default_factory=dict)


class Device(asyncio.Protocol):
    """One raw MQTT client."""

    def __init__(self, connect: bytes) -> None:
        self.connect = connect
        self.decoder = mqtt.Decoder(1 << 16)
        self.transport: Any = None
        self.waiter: asyncio.Future[Any] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.connect)

    def data_received(self, data: bytes) -> None:
        for packet in self.decoder.feed(data):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(packet)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def expect(self) -> asyncio.Future[Any]:
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter


async def open_device(port: int, client_id: str, token: str) -> Device:
    loop = asyncio.get_running_loop()
    packet = mqtt.encode_connect(client_id, mqtt.MQTT_311, 60, "device", token.encode())
    device = Device(packet)
    waiter = device.expect()
    await loop.create_connection(lambda: device, "127.0.0.1", port)
    ack = await asyncio.wait_for(waiter, OP_TIMEOUT)
    if not isinstance(ack, mqtt.ConnAck) or ack.code != 0:
        raise ConnectionError(f"CONNECT refused: {ack}")
    return device


async def connect_all(
    port: int, tokens: list[str], concurrency: int, first_id: int = 0
) -> tuple[list[Device], float, int]:
    """(devices, seconds, failures) for connecting every token, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(i: int, token: str) -> Device | None:
        nonlocal failures
        async with gate:
            try:
                # client ids unique across workers: a broker drops a duplicate's older session
                return await open_device(port, f"bench-{first_id + i}", token)
            except (OSError, TimeoutError, ConnectionError):
                failures += 1
                return None

    started = time.perf_counter()
    found = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return [d for d in found if d is not None], time.perf_counter() - started, failures


async def close_all(devices: list[Device]) -> None:
    for d in devices:
        d.transport.write(b"\xe0\x00")
        d.transport.close()
    if devices:
        await asyncio.wait([d.closed for d in devices], timeout=30)


async def ds_load(devices: list[Device], seconds: float, batch: int) -> tuple[int, float]:
    """(messages the server took, seconds)."""
    payload = (
        b"".join(
            mqtt.encode_publish("ds/Temperature", str(20 + i % 10).encode(), mqtt.MQTT_311)
            for i in range(batch)
        )
        + mqtt.PINGREQ
    )
    done = 0
    stop = time.perf_counter() + seconds

    async def run(d: Device) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            waiter = d.expect()
            d.transport.write(payload)
            try:
                await asyncio.wait_for(waiter, OP_TIMEOUT)
            except (TimeoutError, ConnectionError):
                return  # this device is out of the count from here on
            done += batch

    started = time.perf_counter()
    await asyncio.gather(*(run(d) for d in devices))
    return done, time.perf_counter() - started


async def phases(
    port: int, tokens: list[str], ingest: int, cfg: MqttBenchConfig, worker: int
) -> dict[str, Any]:
    """hold, relogin and ds on one generator's slice of the devices."""
    out: dict[str, Any] = {}
    me0 = time.process_time()
    first = worker * len(tokens)
    devices, seconds, failed = await connect_all(port, tokens, cfg.concurrency, first)
    out["hold"] = {"connected": len(devices), "failed": failed, "seconds": seconds}
    await close_all(devices)
    devices, seconds, failed = await connect_all(port, tokens, cfg.concurrency, first)
    out["relogin"] = {"connected": len(devices), "failed": failed, "seconds": seconds}
    count, seconds = await ds_load(devices[:ingest], cfg.ingest_seconds, cfg.batch)
    out["ds"] = {"devices": min(ingest, len(devices)), "messages": count, "seconds": seconds}
    await close_all(devices)
    out["generator_cpu_s"] = time.process_time() - me0
    return out


def _worker(
    port: int, tokens: list[str], ingest: int, cfg: MqttBenchConfig, worker: int
) -> dict[str, Any]:
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    return asyncio.run(phases(port, tokens, ingest, cfg, worker))


async def run_against(
    name: str,
    port: int,
    tokens: list[str],
    cfg: MqttBenchConfig,
    pid: int | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The three phases from ``cfg.workers`` generator processes at once, summed (rates are
    the sum over the slowest worker's time)."""
    import concurrent.futures
    import multiprocessing

    n = cfg.workers
    slices = [tokens[i::n] for i in range(n)]
    ingest = [len(range(i, cfg.ingest_devices, n)) for i in range(n)]
    cpu0 = cpu_seconds(pid) if pid else None
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(n, mp_context=context) as pool:
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _worker, port, slices[i], ingest[i], cfg, i)
                for i in range(n)
            )
        )
    out: dict[str, Any] = {}
    for phase in ("hold", "relogin"):
        connected = sum(p[phase]["connected"] for p in parts)
        seconds = max(p[phase]["seconds"] for p in parts)
        out[phase] = {
            "connected": connected,
            "failed": sum(p[phase]["failed"] for p in parts),
            "seconds": round(seconds, 2),
            "logins_per_s": round(connected / seconds),
        }
        say(f"{name}: {phase} {connected} devices, {connected / seconds:.0f}/s")
    count = sum(p["ds"]["messages"] for p in parts)
    seconds = max(p["ds"]["seconds"] for p in parts)
    out["ds"] = {
        "devices": sum(p["ds"]["devices"] for p in parts),
        "messages": count,
        "seconds": round(seconds, 2),
        "messages_per_s": round(count / seconds),
    }
    say(f"{name}: ds {count / seconds:.0f} messages/s")
    if pid and cpu0 is not None:
        cpu1 = cpu_seconds(pid)
        out["server_cpu_s"] = None if cpu1 is None else round(cpu1 - cpu0, 2)
    out["generator_cpu_s"] = round(sum(p["generator_cpu_s"] for p in parts), 2)
    return out


def mosquitto_pid(port: int) -> int | None:
    """The pid of the Mosquitto listening on ``port`` (for its CPU), if it can be found."""
    found = shutil.which("pgrep")
    if not found:
        return None
    reply = subprocess.run([found, "-x", "mosquitto"], capture_output=True, text=True)
    pids = [int(p) for p in reply.stdout.split()]
    return pids[0] if len(pids) == 1 else None


async def run(cfg: MqttBenchConfig, say: Callable[[str], None]) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="wifiprov-bench-mqtt-") as tmp:
        db = str(Path(tmp) / "cloud.sqlite3")
        population = await populate(db, cfg.devices, 0)
        await _datastream(db)
        http, gw, port = free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1")
        log = open(Path(tmp) / "cloud.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wifiprov.cli",
                "cloud",
                "--db",
                db,
                "--http",
                f"127.0.0.1:{http}",
                "--gateway",
                f"127.0.0.1:{gw}",
                "--mqtt",
                f"127.0.0.1:{port}",
                "--public-host",
                "127.0.0.1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not _accepts(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the cloud did not start; see its log")
                await asyncio.sleep(0.2)
            results = {
                "wifiprov": await run_against(
                    "wifiprov", port, population.tokens, cfg, proc.pid, say
                )
            }
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
            log.close()
        if cfg.mosquitto:
            host, _, mport = cfg.mosquitto.rpartition(":")
            if host not in ("127.0.0.1", "localhost"):
                raise RuntimeError("--mosquitto must be on loopback")
            results["mosquitto"] = await run_against(
                "mosquitto", int(mport), population.tokens, cfg, mosquitto_pid(int(mport)), say
            )
            ratio = {}
            for scenario, key in (
                ("hold", "logins_per_s"),
                ("relogin", "logins_per_s"),
                ("ds", "messages_per_s"),
            ):
                theirs = results["mosquitto"][scenario][key]
                ratio[scenario] = (
                    round(results["wifiprov"][scenario][key] / theirs, 2) if theirs else None
                )
            results["ratio_wifiprov_to_mosquitto"] = ratio
        results["config"] = {
            "devices": cfg.devices,
            "ingest_devices": cfg.ingest_devices,
            "ingest_seconds": cfg.ingest_seconds,
            "batch": cfg.batch,
            "concurrency": cfg.concurrency,
            "workers": cfg.workers,
            "cpus": os.cpu_count(),
        }
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return results


async def _datastream(url: str) -> None:
    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import datastreams

    db = Database(url)
    try:
        async with db.begin() as conn:
            row = {"template_id": TEMPLATE_ID, "name": "Temperature", "pin": 1, "type": "double"}
            await conn.execute(datastreams.insert().values(**row))
    finally:
        await db.close()
