"""The bench itself: sets the world up, runs each scenario over the worker pool and judges it."""


from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wifiprov.bench.gateway.bare import BareServer
from wifiprov.bench.gateway.config import (
    DRAIN_TIMEOUT,
    FINAL_PING_TIMEOUT,
    GATEWAY_START_TIMEOUT,
    TARGET_CLAIM_P99_MS,
    TARGET_CLAIMS,
    TARGET_HOLD,
    TARGET_INGEST,
    TARGET_INGEST_RATIO_PCT,
    TARGET_RELOGIN,
    BenchConfig,
    BenchError,
)
from wifiprov.bench.gateway.load import WorkerPool, merge_logins
from wifiprov.bench.gateway.metrics import (
    CpuSnapshot,
    _loadavg,
    cpu_delta,
    cpu_seconds,
    die_with_parent,
    machine_seconds,
    ms,
    percentile,
    postgres_cpu,
    raise_nofile,
    rss_kib,
    thread_cpu_seconds,
)
from wifiprov.bench.gateway.report import headline, source_fingerprint, summarize_profile
from wifiprov.bench.gateway.world import (
    GatewayProcess,
    Population,
    TlsFiles,
    check_loopback_url,
    check_pins,
    count_claimed,
    count_online,
    create_pg_database,
    drop_pg_database,
    online_by_node,
    populate,
)


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
        self.gateway: GatewayProcess | None = None  # the first (or only) node
        self.nodes: list[GatewayProcess] = []
        self.pool: WorkerPool | None = None
        self.pop: Population | None = None

    # --- measuring ---
    def snap(self) -> CpuSnapshot:
        assert self.nodes and self.pool is not None
        pids = [node.pid for node in self.nodes]
        return CpuSnapshot(
            at=time.monotonic(),
            gateway=sum(cpu_seconds(pid) or 0.0 for pid in pids),
            gateway_main=sum(thread_cpu_seconds(pid).get(pid, 0.0) for pid in pids),
            workers=sum(cpu_seconds(pid) or 0.0 for pid in self.pool.pids),
            bench=time.process_time(),
            machine=machine_seconds(),
            postgres=postgres_cpu() if self.cfg.db == "postgres" else None,
        )

    def settle(self, limit: float = 30.0) -> float:
        """Wait until the gateway is idle (< 5% of a core over half a second)."""
        assert self.nodes

        def used() -> float | None:
            seconds = [cpu_seconds(node.pid) for node in self.nodes]
            return None if None in seconds else sum(s or 0.0 for s in seconds)

        started = time.monotonic()
        prev, t = used(), time.monotonic()
        while time.monotonic() - started < limit:
            time.sleep(0.5)
            self.check_nodes()
            cur, now = used(), time.monotonic()
            if cur is not None and prev is not None and (cur - prev) / (now - t) < 0.05:
                break
            prev, t = cur, now
        return time.monotonic() - started

    def check_nodes(self) -> None:
        for node in self.nodes:
            node.check()

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
            bus = cfg.nats_url if cfg.nodes > 1 else None
            for i in range(cfg.nodes):
                path = log_path if i == 0 else log_path.with_name(f"{log_path.stem}-{i}.log")
                self.nodes.append(GatewayProcess(url, path, tls, bus, f"bench-{i}"))
            self.gateway = self.nodes[0]
            for node in self.nodes:
                node.start()
            started = max(node.wait_ready(GATEWAY_START_TIMEOUT) for node in self.nodes)
            self.report["setup"].update(
                gateway_start_s=round(started, 2), gateway_pid=self.gateway.pid,
                gateway_port=self.gateway.device_port, tls=cfg.tls,
                gateway_rss_kib_at_start=rss_kib(self.gateway.pid), nodes=cfg.nodes,
            )
            for node in self.nodes:
                self.say(f"gateway pid {node.pid} on port {node.device_port}"
                         f"{' (TLS)' if tls else ''}; log: {node.log_path}")
            self.pool = WorkerPool(cfg.workers, "127.0.0.1",
                                   [node.device_port for node in self.nodes],
                                   str(tls.ca) if tls else None, self.check_nodes, cfg.uvloop)
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
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
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

    def scenario_storm(self, result: dict[str, Any]) -> None:
        """Every device connected, then an outage: all connections drop at once and every device
        reconnects within ``storm_spread`` seconds. Time until all are back, the gateway's peak
        RSS, and failures (logins are throttled only after failed ones: none here)."""
        cfg, gw, pool, pop = self.cfg, self.gateway, self.pool, self.pop
        assert gw is not None and pool is not None and pop is not None
        n = cfg.devices
        items = list(enumerate(pop.tokens[:n]))
        profiler = self.profile_start("storm")
        pool.run("storm", {"concurrency": cfg.concurrency}, items)
        before = merge_logins(pool.collect("logged_in", 180 + n / 20))
        rss_connected = [rss_kib(node.pid) for node in self.nodes]
        s0 = self.snap()
        start = time.monotonic() + 0.5
        pool.go({"start": start, "spread": cfg.storm_spread})
        parts = pool.collect("done", 180 + n / 20)
        s1 = self.snap()
        self.profile_stop(profiler, result)
        peaks = [rss_kib(node.pid, "VmHWM") for node in self.nodes]
        # presence is written behind (every 0.2 s): give the last logins' a moment to land
        deadline = time.monotonic() + 5
        while True:
            online_in_db = asyncio.run(count_online(pop.url, pop.device_ids[:n]))
            if online_in_db >= n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        by_node = asyncio.run(online_by_node(pop.url))
        pool.go()
        pool.collect("closed", 60)
        back = merge_logins(parts)
        last = max((p["last"] for p in parts), default=0.0)
        result.update(
            devices=n,
            connected_before=before["ok"],
            spread_seconds=cfg.storm_spread,
            back=back["ok"],
            failed=back["failed"],
            failures=back["failures"],
            all_back_after_s=round(last - start, 3) if back["ok"] else None,
            p50_ms=back["p50_ms"],
            p99_ms=back["p99_ms"],
            max_ms=back["max_ms"],
            nodes=len(self.nodes),
            online_by_node=by_node,
            rss_connected_kib=max((r or 0 for r in rss_connected), default=None),
            rss_peak_kib=max((p or 0 for p in peaks), default=None),  # the largest process's
            rss_peak_kib_per_node=peaks,
            online_in_db=online_in_db,
            cpu=cpu_delta(s0, s1),
        )
        problems = []
        if before["ok"] < n:
            problems.append(f"only {before['ok']} of {n} connected before the storm")
        if back["ok"] < before["ok"]:
            problems.append(f"{before['ok'] - back['ok']} devices not back: {back['failures']}")
        if online_in_db < back["ok"]:
            problems.append(f"only {online_in_db} devices online in the database")
        result["problems"] = problems
        result["target_met"] = None  # a figure to report, no target

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
        if cfg.ingest_ratio:
            self._ingest_against_bare(result, items, params)

    def _ingest_against_bare(
        self, result: dict[str, Any], items: list[tuple[int, str]], params: dict[str, Any]
    ) -> None:
        """The same ingest, same generator, against a bare frame-parsing server: the gateway's
        rate as a share of what framing alone allows on this machine in this run."""
        cfg = self.cfg
        self.say("ingest against a bare frame server (same load) ...")
        bare = BareServer()
        pool = WorkerPool(cfg.workers, "127.0.0.1", [bare.port], None, bare.check, cfg.uvloop)
        try:
            pool.run("ingest", params, items)
            pool.collect("logged_in", 180 + len(items) / 20)
            cpu0 = cpu_seconds(bare.pid)
            start = time.monotonic() + 0.3
            pool.go({"start": start, "seconds": cfg.ingest_seconds})
            parts = pool.collect("done", cfg.ingest_seconds + DRAIN_TIMEOUT + 60)
            cpu1 = cpu_seconds(bare.pid)
            pool.go()
            pool.collect("closed", 60)
        finally:
            pool.stop()
            bare.stop()
        last_reply = max(p["last_reply"] for p in parts)
        messages = sum(p["messages"] for p in parts)
        wall = last_reply - start if last_reply > start else None
        bare_rate = None if wall is None else round(messages / wall, 1)
        ours = result.get("messages_per_s")
        ratio = round(100 * ours / bare_rate, 1) if ours and bare_rate else None
        result["bare"] = {
            "messages": messages,
            "messages_per_s": bare_rate,
            "cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2),
        }
        result["ratio_to_bare_pct"] = ratio
        result["ratio_target_met"] = (
            ratio >= TARGET_INGEST_RATIO_PCT if ratio is not None and len(items) >= 1000 else None
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
