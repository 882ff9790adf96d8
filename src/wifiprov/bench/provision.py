"""``wifiprov bench provision``: how long a whole provisioning takes, and many at once.

A cloud process (SQLite), a "device farm" process running N device agents on the sim air with
zero radio delays, and the provisioner flow in this process with a saved session. Measures the
time from the provisioner's first request to the rename acknowledged (split per step), the cold
start of `wifiprov provision` (process start to its first request), and N devices provisioned
concurrently (devices/s and the slowest device).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx

from wifiprov.bench.gateway.metrics import cpu_seconds
from wifiprov.provisioner.client import CloudClient, CloudRequestFailed
from wifiprov.provisioner.flow import Choices, Event, Provisioner, ProvisioningFailed
from wifiprov.provisioner.wifi.sim import SimPhoneWifi
from wifiprov.sim.air import Air
from wifiprov.wire import naming

HOME, HOME_PASSWORD = "Bench WiFi", "bench password"
FARM_SIZE = 250  # device agents per farm process in the many-at-once phase
PASSWORD = "bench owner password"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_agent: ContextVar[str] = ContextVar("agent", default="-")


class _AgentName(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.agent = _agent.get()
        return True


async def _named(run: Coroutine[Any, Any, None], name: str) -> None:
    _agent.set(name)  # this task's context, and so its child tasks' too
    await run


def _mac(i: int) -> str:
    return f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def distinct_devices(count: int) -> list[int]:
    """The first ``count`` device numbers whose names differ. A device's name ends in a
    4-character code of its MAC (CRC-32 in base 24: ~330,000 codes), so among 1,000 MACs two
    share a name about every other time, and a phone cannot tell which of two APs of one name
    it joins (one device gets both configurations, the other none): as on a real factory line,
    where such a pair must not be in setup mode side by side."""
    seen: set[str] = set()
    chosen: list[int] = []
    i = 0
    while len(chosen) < count:
        code = naming.chip_code(naming.mac_chip_id(_mac(i)))
        if code not in seen:
            seen.add(code)
            chosen.append(i)
        i += 1
    return chosen


async def farm(air_dir: str, numbers: list[int], template_id: str) -> None:
    """Run a device agent for each of ``numbers`` in this process until SIGTERM."""
    from wifiprov.device import machine as sm
    from wifiprov.device.agent import Agent, AgentConfig
    from wifiprov.device.radio.sim import SimRadio
    from wifiprov.device.store import ConfigStore

    # Warnings and the agents' state changes, each line with its agent's name, to the farm's
    # log (kept with the bench's files): where to look when a device fails.
    handler = logging.StreamHandler()
    handler.addFilter(_AgentName())
    handler.setFormatter(logging.Formatter("%(asctime)s %(agent)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    air = Air(air_dir)
    store_dir = Path(air_dir) / "stores"
    store_dir.mkdir(exist_ok=True)
    agents = []
    for i in numbers:
        radio = SimRadio(air, f"dev-{i}", mac=_mac(i))
        config = AgentConfig(
            template_id=template_id, template_name="Bench", machine=sm.Settings(ap_linger=0.5)
        )
        agents.append(Agent(config, radio, ConfigStore(store_dir / f"dev-{i}.json")))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runs = [_named(a.run(), f"dev-{i}") for i, a in zip(numbers, agents, strict=True)]
    tasks = [asyncio.create_task(run) for run in runs]
    await stop.wait()
    for a in agents:
        a.stop()
    await asyncio.gather(*tasks, return_exceptions=True)


def _spawn(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "wifiprov", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


async def _wait_aps(
    air: Air, count: int, known: frozenset[str] = frozenset(), timeout: float = 120
) -> list[str]:
    """Wait until ``count`` access points not in ``known`` are up with their portals."""
    feed = air.changes(("aps", None))
    try:
        async with asyncio.timeout(timeout):
            while len(aps := [a for a in air.aps() if a.portal and a.ssid not in known]) < count:
                await feed.wait()
    finally:
        feed.close()
    return sorted(a.ssid for a in aps)


async def run(runs: int = 20, concurrent: int = 200) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="wifiprov-bench-provision-"))
    logs = tmp / "logs"  # each process's stderr: what to read when a device fails
    logs.mkdir()
    env = {**os.environ, "WIFIPROV_CONFIG_DIR": str(tmp / "config")}
    (tmp / "password").write_text(PASSWORD + "\n")
    (tmp / "wifi").write_text(HOME_PASSWORD + "\n")
    http, gw = _free_port(), _free_port()
    url = f"http://127.0.0.1:{http}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wifiprov",
            "cloud",
            "init",
            "--db",
            str(tmp / "cloud.db"),
            "--email",
            "bench@example.com",
            "--password-file",
            str(tmp / "password"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    procs = [
        _spawn(
            "cloud",
            "--db",
            str(tmp / "cloud.db"),
            "--http",
            f"127.0.0.1:{http}",
            "--gateway",
            f"127.0.0.1:{gw}",
            "--public-host",
            "127.0.0.1",
            env=env,
            log=logs / "cloud.log",
        )
    ]
    air = Air(tmp / "air")
    air.add_network(HOME, HOME_PASSWORD)
    try:
        async with httpx.AsyncClient(timeout=5) as probe, asyncio.timeout(30):
            while True:
                try:
                    if (await probe.get(url + "/api/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "wifiprov",
                "login",
                "--cloud",
                url,
                "--email",
                "bench@example.com",
                "--password-file",
                str(tmp / "password"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        token = json.loads((tmp / "config" / "session.json").read_text())["token"]
        async with CloudClient(url, token) as client:
            template = await client.call("POST", "/api/orgs/1/templates", json={"name": "Bench"})
            tid = template["id"]
            result: dict[str, Any] = {}

            # 1. one at a time: runs devices, provisioned in turn
            # every device of the run named differently (distinct_devices says why)
            numbers = distinct_devices(runs + 1 + concurrent)
            procs.append(_spawn_farm(air, numbers[:runs], tid, env, logs / "farm-runs.log"))
            aps = await _wait_aps(air, runs)
            totals, steps = [], []
            for i, ap in enumerate(aps):
                events: list[Event] = []
                flow = Provisioner(client, SimPhoneWifi(air, f"phone-seq-{i}"), events.append)
                started = time.perf_counter()
                await flow.run(
                    Choices(
                        template=tid, device=ap, ssid=HOME, password=HOME_PASSWORD, name=f"Seq {i}"
                    )
                )
                totals.append(time.perf_counter() - started)
                steps.append({e.step: e.elapsed for e in events})
            result["sequential"] = {
                "runs": runs,
                "median_s": round(statistics.median(totals), 3),
                "p90_s": round(sorted(totals)[int(runs * 0.9) - 1], 3),
                "max_s": round(max(totals), 3),
                "median_elapsed_at_step_s": {
                    step: round(statistics.median(s[step] for s in steps if step in s), 3)
                    for step in steps[0]
                },
            }
            # 2. cold start of the CLI: process start to its first request
            procs.append(
                _spawn_farm(air, numbers[runs : runs + 1], tid, env, logs / "farm-cold.log")
            )
            (cold_ap,) = await _wait_aps(air, 1, frozenset(aps))
            spawn = time.perf_counter()
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "wifiprov",
                "provision",
                "--json",
                "--air",
                str(air.directory),
                "--template",
                tid,
                "--device",
                cold_ap,
                "--ssid",
                HOME,
                "--password-file",
                str(tmp / "wifi"),
                "--name",
                "Cold",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert cli.stdout is not None
            first = json.loads(await cli.stdout.readline())
            first_at = time.perf_counter() - spawn
            await cli.wait()
            result["cold_start_s"] = round(first_at - first["elapsed"], 3)
            result["cold_total_s"] = round(time.perf_counter() - spawn, 3)

            # 3. many at once: the devices in farms of FARM_SIZE agents (one process each, as
            # devices are separate machines), the phones in this process
            farms = [
                _spawn_farm(
                    air,
                    numbers[runs + 1 + k : runs + 1 + k + FARM_SIZE],
                    tid,
                    env,
                    logs / f"farm-{k // FARM_SIZE + 1}.log",
                )
                for k in range(0, concurrent, FARM_SIZE)
            ]
            procs += farms
            fresh = await _wait_aps(
                air, concurrent, frozenset([*aps, cold_ap]), timeout=120 + concurrent / 5
            )

            par_steps: list[dict[str, float]] = []
            failures: dict[str, int] = {}
            failed_devices: list[str] = []

            async def one(i: int, ap: str) -> float | None:
                # Each phone has its own client, as real phones do (one client shared by 200
                # flows spends its time in httpx's pool, not in provisioning).
                events: list[Event] = []
                async with CloudClient(url, token) as phone_client:
                    flow = Provisioner(
                        phone_client,
                        SimPhoneWifi(air, f"phone-par-{i}"),
                        events.append,
                        online_timeout=120,
                    )
                    t = time.perf_counter()
                    try:
                        await flow.run(
                            Choices(
                                template=tid,
                                device=ap,
                                ssid=HOME,
                                password=HOME_PASSWORD,
                                name=f"Par {i}",
                            )
                        )
                    except (ProvisioningFailed, CloudRequestFailed) as exc:  # counted, not fatal
                        reason = str(exc)[:120]
                        failures[reason] = failures.get(reason, 0) + 1
                        failed_devices.append(ap)
                        return None
                par_steps.append({e.step: e.elapsed for e in events})
                return time.perf_counter() - t

            names = {procs[0].pid: "cloud", os.getpid(): "phones (the bench process)"}
            names.update({p.pid: f"device farm {n}" for n, p in enumerate(farms, 1)})
            cpu_before = {pid: cpu_seconds(pid) or 0.0 for pid in names}
            started = time.perf_counter()
            outcome = await asyncio.gather(*(one(i, ap) for i, ap in enumerate(fresh)))
            wall = time.perf_counter() - started
            # cores each process used over the run: one near a whole core bounds the run
            cpu = {
                name: round(((cpu_seconds(pid) or 0.0) - cpu_before[pid]) / wall, 2)
                for pid, name in names.items()
            }
            times = [t for t in outcome if t is not None]
            online = sum(1 for d in await client.devices() if d["name"].startswith("Par "))
            result["concurrent"] = {
                "devices": len(fresh),
                "farms": len(farms),
                "wall_s": round(wall, 2),
                "devices_per_s": round(len(times) / wall, 1),
                "slowest_s": round(max(times), 2) if times else None,
                "median_s": round(statistics.median(times), 2) if times else None,
                "named_in_cloud": online,
                "failed": failures,
                "failed_devices": failed_devices[:20],  # their APs, to find in the farms' logs
                "logs": str(logs),
                "cores_used": cpu,
                "busiest_process": max(cpu, key=lambda name: cpu[name]),
                "median_elapsed_at_step_s": {
                    step: round(statistics.median(s[step] for s in par_steps if step in s), 3)
                    for step in par_steps[0]
                }
                if par_steps
                else {},
            }
            return result
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        air.close()


def _spawn_farm(
    air: Air, numbers: list[int], tid: str, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    code = (
        "import asyncio, sys; from wifiprov.bench.provision import farm; "
        "numbers = [int(n) for n in sys.argv[2].split(',')]; "
        "asyncio.run(farm(sys.argv[1], numbers, sys.argv[3]))"
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, str(air.directory), ",".join(map(str, numbers)), tid],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
