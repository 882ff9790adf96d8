"""``wifiprov bench``: load generators for wifiprov's own services."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(help="Load generators (benchmarks) for wifiprov's services.",
                        no_args_is_help=True, add_completion=False)
# Wide enough for the table when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True)


class DbKind(StrEnum):
    sqlite = "sqlite"
    postgres = "postgres"


@bench_app.callback()
def bench() -> None:
    """Load generators (benchmarks) for wifiprov's services."""


def _mqtt_bench(devices: int, ingest_devices: int, seconds: float, concurrency: int,
                batch: int, mosquitto: str | None, json_file: Path | None,
                workers: int) -> None:
    import asyncio
    import json

    from wifiprov.bench.mqtt import MqttBenchConfig, run

    if not 1 <= devices <= 250_000 or not 1 <= ingest_devices <= devices:
        _fail("--devices must be within 1..250000 and --ingest-devices at most --devices")
    cfg = MqttBenchConfig(devices=devices, ingest_devices=ingest_devices, ingest_seconds=seconds,
                          concurrency=concurrency, batch=batch, mosquitto=mosquitto,
                          workers=max(1, min(workers, 16)))
    results = asyncio.run(run(cfg, lambda text: err.print(f"[dim]bench:[/] {text}")))
    text = json.dumps(results, indent=2)
    if json_file is not None:
        json_file.write_text(text + "\n")
    print(text)


@bench_app.command("gateway")
def gateway(
    db: Annotated[DbKind, typer.Option(help="database of the cloud under test (created fresh, "
                                            "removed afterwards)")] = DbKind.sqlite,
    pg_url: Annotated[str, typer.Option(help="PostgreSQL server (loopback only); the bench "
                                             "creates and drops its own database there")]
    = "postgresql://postgres@127.0.0.1:5432",
    devices: Annotated[int, typer.Option(help="devices for hold and relogin")] = 10_000,
    ingest_devices: Annotated[int, typer.Option(help="devices sending data in ingest")] = 1_000,
    claims: Annotated[int, typer.Option(help="first logins with provisioning tokens")] = 1_000,
    hold_seconds: Annotated[float, typer.Option(help="how long hold keeps devices connected")]
    = 30.0,
    ingest_seconds: Annotated[float, typer.Option(help="how long ingest sends")] = 10.0,
    workers: Annotated[int, typer.Option(help="generator processes")] = 2,
    concurrency: Annotated[int, typer.Option(help="logins in flight per generator process")]
    = 500,
    scenarios: Annotated[str, typer.Option(help="comma-separated subset of "
                                                "hold,relogin,claim,ingest,storm (storm: "
                                                "--devices drop at once and reconnect "
                                                "within --storm-spread; on request only)")]
    = "hold,relogin,claim,ingest",
    storm_spread: Annotated[float, typer.Option(help="storm: seconds over which every device "
                                                     "reconnects")] = 1.0,
    tls: Annotated[bool, typer.Option("--tls", help="devices connect over TLS (a throw-away CA "
                                                    "made with trustme)")] = False,
    uvloop: Annotated[bool, typer.Option("--uvloop", help="run the generator processes on "
                                                          "uvloop (if installed): less of the "
                                                          "shared CPU goes to the generator")]
    = False,
    ingest_batch: Annotated[int, typer.Option(help="HARDWARE frames per write in ingest")] = 50,
    ingest_window: Annotated[int, typer.Option(help="unanswered batches per connection")] = 2,
    json_file: Annotated[Path | None, typer.Option("--json", help="write every figure to FILE")]
    = None,
    gateway_log: Annotated[Path | None, typer.Option(help="keep the gateway's log here")] = None,
    profile: Annotated[Path | None, typer.Option(help="record the gateway with py-spy during "
                                                      "each scenario into DIR")] = None,
    protocol: Annotated[str, typer.Option(help="blynk (the Blynk protocol) or mqtt (Blynk's "
                                               "MQTT API, with the same load against "
                                               "--mosquitto in the same run)")] = "blynk",
    mosquitto: Annotated[str, typer.Option(help="the Mosquitto server --protocol mqtt compares "
                                                "with ('' for none)")] = "127.0.0.1:1883",
    nodes: Annotated[int, typer.Option(help="storm: gateway processes (cloud nodes on one "
                                            "PostgreSQL database and NATS), devices spread "
                                            "over them in turn")] = 1,
    nats: Annotated[str, typer.Option(help="--nodes: the NATS server the nodes share")]
    = "nats://127.0.0.1:4222",
) -> None:
    """Start a cloud on a fresh database and load its device gateway over loopback TCP."""
    if protocol == "mqtt":
        _mqtt_bench(devices, ingest_devices, ingest_seconds, concurrency, ingest_batch,
                    mosquitto or None, json_file, workers)
        return
    if protocol != "blynk":
        _fail(f"unknown protocol {protocol!r}: choose blynk or mqtt")
    from wifiprov.bench.gateway import SCENARIOS, Bench, BenchConfig, write_json

    chosen = tuple(s.strip() for s in scenarios.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown or not chosen:
        _fail(f"unknown scenario(s) {', '.join(unknown) or '(none)'}; choose from "
              f"{','.join(SCENARIOS)}")
    for name, value, lo, hi in (
        ("--devices", devices, 1, 250_000), ("--ingest-devices", ingest_devices, 1, 250_000),
        ("--claims", claims, 1, 250_000), ("--workers", workers, 1, 64),
        ("--concurrency", concurrency, 1, 10_000), ("--ingest-batch", ingest_batch, 1, 1000),
        ("--ingest-window", ingest_window, 1, 100),
    ):
        if not lo <= value <= hi:
            _fail(f"{name} must be within {lo}..{hi}")
    if not 1 <= hold_seconds <= 3600 or not 1 <= ingest_seconds <= 600:
        _fail("--hold-seconds must be within 1..3600 and --ingest-seconds within 1..600")
    if uvloop:
        try:
            import uvloop as _uvloop  # noqa: F401
        except ImportError:
            _fail("--uvloop needs the uvloop package", "pip install uvloop")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if not 0.1 <= storm_spread <= 600:
        _fail("--storm-spread must be within 0.1..600 seconds")
    if not 1 <= nodes <= 8:
        _fail("--nodes must be within 1..8")
    if nodes > 1 and (chosen != ("storm",) or db.value != "postgres"):
        _fail("--nodes above 1 runs the storm scenario on PostgreSQL only",
              "add --scenarios storm --db postgres")
    # the most sockets one process holds: a gateway node its share, a generator its share
    biggest = max(devices if {"hold", "relogin", "storm"} & set(chosen) else 0,
                  ingest_devices if "ingest" in chosen else 0,
                  claims if "claim" in chosen else 0)
    biggest = max(-(-biggest // nodes), -(-biggest // workers))
    if biggest + 200 > hard and os.geteuid() == 0:
        # root may lift the hard limit (up to fs.nr_open); the gateway and workers inherit it
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (biggest + 1000, biggest + 1000))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if biggest + 200 > hard:
        _fail(f"{biggest} connections need more open files than the hard limit {hard} allows "
              "one process", "raise it (ulimit -Hn), use fewer devices, or spread them over "
              "more --nodes (storm) and --workers")
    cfg = BenchConfig(
        db=db.value, pg_url=pg_url, devices=devices, ingest_devices=ingest_devices,
        claims=claims, hold_seconds=hold_seconds, ingest_seconds=ingest_seconds,
        workers=workers, concurrency=concurrency, scenarios=chosen, tls=tls, uvloop=uvloop,
        ingest_batch=ingest_batch, ingest_window=ingest_window, gateway_log=gateway_log,
        profile_dir=profile, storm_spread=storm_spread, nodes=nodes, nats_url=nats,
    )
    # Ctrl-C and kill both end the run in order (gateway, workers, database), even when the
    # shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    bench_run = Bench(cfg, say=lambda text: err.print(f"[dim]bench:[/] {text}", soft_wrap=True))
    interrupted = False
    try:
        report = bench_run.run()
    except KeyboardInterrupt:
        interrupted = True
        report = bench_run.report
        report["errors"].append("interrupted")
    console.print(render(report))
    _print_profiles(report)
    problems = [f"{name}: {p}" for name, r in report["scenarios"].items()
                for p in r.get("problems", [])]
    for line in report["errors"] + problems:
        err.print(f"[bold red]problem:[/] {line}")
    if json_file is not None:
        write_json(report, json_file)
        err.print(f"figures written to {json_file}")
    if interrupted:
        raise typer.Exit(130)
    if report["errors"] or problems:
        raise typer.Exit(1)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _fail(message: str, todo: str = "") -> None:
    err.print(f"[bold red]error:[/] {message}")
    if todo:
        err.print(f"  {todo}")
    raise typer.Exit(2)


# --- output ---------------------------------------------------------------------------------------

def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _cpu(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    db = "in gateway" if c["database_s"] is None else f"{c['database_s']:.1f} s"
    util = c.get("gateway_util") or 0.0
    main = c.get("gateway_main_thread_s")
    threads = ""
    if main is not None and c["gateway_s"] - main > 0.05 * max(c["gateway_s"], 0.1):
        threads = f", {main:.1f} s in its event loop thread"
    text = (f"gateway {c['gateway_s']:.1f} s ({util * 100:.0f}% of a core{threads}), generator "
            f"{c['generator_s']:.1f} s, database {db}; {c['wall_s']:.1f} s wall")
    if c["other_s"] > 0.1 * max(c["wall_s"], 1):
        text += f"; [yellow]other processes {c['other_s']:.1f} s[/]"
    if c.get("steal_s", 0) > 0.1 * max(c["wall_s"], 1):
        text += f"; [yellow]hypervisor steal {c['steal_s']:.1f} s[/]"
    return text


def _mark(met: bool | None) -> str:
    if met is None:
        return " (n/a at this scale)"
    return " [green]met[/]" if met else " [red]not met[/]"


def _latency(r: dict[str, Any]) -> str:
    return f"p50 {_n(r['p50_ms'], 1)} ms, p99 {_n(r['p99_ms'], 1)} ms, max {_n(r['max_ms'], 1)} ms"


def render(report: dict[str, Any]) -> Table:
    from wifiprov.bench.gateway import TARGETS

    cfg = report["config"]
    env = report["environment"]
    source = env.get("source", {})
    title = (f"wifiprov gateway bench: {cfg['db']}{' + TLS' if cfg['tls'] else ''}, "
             f"{cfg['workers']} generator processes{' (uvloop)' if cfg.get('uvloop') else ''}, "
             f"{env['cpus']} CPUs; cloud source "
             f"{source.get('sha256', '?')} (changed {source.get('newest_change', '?')})")
    table = Table(title=title, show_lines=False)
    table.add_column("Scenario", style="bold")
    table.add_column("Measure")
    table.add_column("Value")
    table.add_column("Target")
    for name, r in report["scenarios"].items():
        if "error" in r or "cpu" not in r:
            error = str(r.get("error", "incomplete")).splitlines()
            table.add_row(name, "error", error[0] if error else "", "")
            table.add_section()
            continue
        if name == "hold":
            lg = r["login"]
            table.add_row(name, "devices held", f"{_n(r['alive_at_end'])} of {_n(r['devices'])} "
                          f"answer after {r['hold_seconds']:g} s; {r['closed_by_server']} closed "
                          "by the gateway", TARGETS["hold"] + _mark(r.get("target_met")))
            table.add_row("", "handshake (login + info)",
                          f"{_n(lg['ok'])} ok, {lg['failed']} failed, {_n(lg['per_s'])}/s; "
                          + _latency(lg), "")
            table.add_row("", "heartbeat pings",
                          f"{_n(r['ping_replies'])} of {_n(r['pings'])} answered; p50 "
                          f"{_n(r['ping_p50_ms'], 1)} ms, p99 {_n(r['ping_p99_ms'], 1)} ms, "
                          f"max {_n(r['ping_max_ms'], 1)} ms", "")
            table.add_row("", "online in database", _n(r["online_in_db"]), "")
            mib = [None if v is None else v / 1024 for v in
                   (r["rss_before_kib"], r["rss_logged_in_kib"], r["rss_holding_max_kib"])]
            table.add_row("", "gateway RSS",
                          f"{_n(mib[0], 1)} MiB before, {_n(mib[1], 1)} MiB logged in, "
                          f"{_n(mib[2], 1)} MiB max holding; "
                          f"{_n(r['rss_per_connection_kib'], 1)} KiB per connection", "")
            table.add_row("", "CPU, logging in", _cpu(r["cpu_login"]), "")
            table.add_row("", "CPU, holding", _cpu(r["cpu_hold"]), "")
        elif name in ("relogin", "claim"):
            what = "re-logins" if name == "relogin" else "claims (first logins)"
            table.add_row(name, what, f"{_n(r['ok'])} of {_n(r['attempts'])} in "
                          f"{_n(r['seconds'], 2)} s = [bold]{_n(r['per_s'])}/s[/]",
                          TARGETS[name] + _mark(r.get("target_met")) if name in TARGETS else "")
            until = "200" if name == "relogin" else "the info answered: claimed"
            table.add_row("", f"latency (connect to {until})", _latency(r), "")
            if r["failed"]:
                table.add_row("", "failures", str(r["failures"]), "")
            if name == "claim":
                table.add_row("", "claimed in database", _n(r["claimed_in_db"]), "")
            table.add_row("", "CPU", _cpu(r["cpu"]), "")
        elif name == "storm":
            table.add_row(name, "devices back after an outage",
                          f"{_n(r['back'])} of {_n(r['connected_before'])} dropped at once, all "
                          f"back [bold]{_n(r['all_back_after_s'], 2)} s[/] after the outage "
                          f"(reconnects spread over {r['spread_seconds']:g} s)",
                          TARGETS["storm"])
            table.add_row("", "latency (connect to 200)", _latency(r), "")
            nodes = r.get("nodes", 1)
            table.add_row("", "gateway RSS" + (f" (largest of {nodes} nodes)" if nodes > 1 else ""),
                          f"{_n((r['rss_connected_kib'] or 0) / 1024, 1)} MiB connected, "
                          f"peak {_n((r['rss_peak_kib'] or 0) / 1024, 1)} MiB", "")
            if r["failed"]:
                table.add_row("", "failed attempts (retried after 1-3 s)", str(r["failures"]),
                              "")
            table.add_row("", "online in database", _n(r["online_in_db"]), "")
            table.add_row("", "CPU", _cpu(r["cpu"]), "")
        elif name == "ingest":
            table.add_row(name, "vw messages",
                          f"{_n(r['messages'])} from {_n(r['connections'])} devices in "
                          f"{_n(r['seconds'], 2)} s = [bold]{_n(r['messages_per_s'])}/s[/]",
                          TARGETS["ingest"] + _mark(r.get("target_met")))
            table.add_row("", "pipelining", f"{r['batch']} frames + 1 PING per write, "
                          f"{r['window']} writes in flight per connection; {r['pings']:,} "
                          f"PINGs, {r['errors']} errors, {r['lost']} lost", "")
            db = r["db"]
            table.add_row("", "stored pin values",
                          f"{_n(db['values_matching'])} of {_n(db['values_expected'])} last "
                          f"values in pin_values ({_n(db['devices_with_rows'])} devices)", "")
            table.add_row("", "CPU", _cpu(r["cpu"]), "")
            if r.get("bare"):
                table.add_row("", "same run, bare frame server",
                              f"{_n(r['bare']['messages_per_s'])}/s (its CPU "
                              f"{_n(r['bare']['cpu_s'], 1)} s): the gateway is "
                              f"[bold]{_n(r['ratio_to_bare_pct'], 1)} %[/] of it",
                              TARGETS["ingest_ratio"] + _mark(r.get("ratio_target_met")))
        table.add_section()
    setup = report.get("setup", {})
    if setup:
        table.add_row("setup", "populate / gateway start",
                      f"{setup.get('populate_s', '-')} s / {setup.get('gateway_start_s', '-')} s",
                      "")
    return table


def _print_profiles(report: dict[str, Any]) -> None:
    for name, r in report["scenarios"].items():
        profile = r.get("profile")
        if not profile or not profile.get("samples"):
            continue
        table = Table(title=f"gateway profile, {name}: {profile['samples']} samples in "
                      f"{profile['file']}")
        table.add_column("%", justify="right")
        table.add_column("innermost function")
        table.add_column("%", justify="right")
        table.add_column("innermost package")
        own, packages = profile["own"], profile["packages"]
        for i in range(min(max(len(own), len(packages)), 12)):
            a = own[i] if i < len(own) else ["", ""]
            b = packages[i] if i < len(packages) else ["", ""]
            table.add_row(str(a[1]), str(a[0]), str(b[1]), str(b[0]))
        console.print(table)


@bench_app.command("console")
def console_bench(
    devices: int = typer.Option(10_000, help="devices in the organization (first paint, size)"),
    flapping: int = typer.Option(1_000, help="devices logging in and out (presence)"),
    loads: int = typer.Option(5, help="loads of /devices for first paint (median)"),
    flap_rate: float = typer.Option(200.0, help="presence changes a second, all devices"),
    flap_seconds: float = typer.Option(30.0, help="how long the devices flap"),
    json_file: Path | None = typer.Option(None, "--json", help="also write the figures here"),
) -> None:
    """The console's device list in headless Chromium: first paint, page weight, presence
    latency with devices flapping."""
    from wifiprov.bench.console import ConsoleConfig, run

    if not 1 <= flapping <= devices <= 250_000 or not 1 <= loads <= 100:
        _fail("need 1 <= --flapping <= --devices <= 250000 and --loads within 1..100")
    if not 0.1 <= flap_rate <= 5000 or not 1 <= flap_seconds <= 3600:
        _fail("--flap-rate must be within 0.1..5000 and --flap-seconds within 1..3600")
    cfg = ConsoleConfig(devices=devices, flapping=flapping, loads=loads, flap_rate=flap_rate,
                        flap_seconds=flap_seconds)
    figures = run(cfg, say=lambda text: err.print(f"[dim]bench:[/] {text}", soft_wrap=True))
    fp, pr, met = figures["first_paint"], figures["presence"], figures["met"]
    lat = pr["latency"]

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"first contentful paint   median {fp['fcp']['median_ms']} ms of {loads} loads "
          f"(HTML first byte {fp['ttfb']['median_ms']} ms)  target <= 1000 ms: "
          f"{mark(met['first_paint'])}")
    print(f"presence to the page     median {lat['median_ms']} ms, p99 {lat['p99_ms']} ms "
          f"({lat['n']} changes, {pr['missed']} missed)  target median <= 1000 ms: "
          f"{mark(met['presence'])}")
    print(f"/devices size            {fp['size']['decoded_bytes']:,} bytes uncompressed  "
          f"target <= 153,600: {mark(met['size'])}")
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=1))


@bench_app.command("device")
def device(
    requests: int = typer.Option(2000, help="/board_info.json requests, a new connection each"),
    idle_seconds: float = typer.Option(10.0, help="how long to measure idle CPU"),
    json_file: Path | None = typer.Option(None, "--json", help="also write the figures here"),
) -> None:
    """The device agent in AP mode (sim radio): AP-ready time, idle RSS/CPU, board info latency."""
    from wifiprov.bench.device import run

    figures = run(requests=requests, idle_seconds=idle_seconds)
    targets = {
        "ap_ready_s": ("AP ready after start", "s", 1.0),
        "idle_rss_kib": ("idle RSS", "KiB", 35 * 1024),
        "idle_cpu_percent": ("idle CPU", "% of a core", 1.0),
        "board_info_median_ms": ("/board_info.json median", "ms", 1.0),
        "board_info_p99_ms": ("/board_info.json p99", "ms", 5.0),
    }
    for key, (label, unit, limit) in targets.items():
        value = figures[key]
        mark = "met" if value <= limit else "NOT met"
        print(f"{label:26} {value:>10} {unit:12} (target <= {limit}: {mark})")
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=1))


@bench_app.command("provision")
def provision(
    runs: int = typer.Option(20, help="provisionings one after another"),
    concurrent: int = typer.Option(200, help="devices provisioned at the same time"),
    json_file: Path | None = typer.Option(None, "--json", help="also write the figures here"),
) -> None:
    """Whole provisionings on the sim air: per-step split, cold start, and many at once."""
    import asyncio

    from wifiprov.bench.provision import run

    figures = asyncio.run(run(runs=runs, concurrent=concurrent))
    print(json.dumps(figures, indent=1))
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=1))


@bench_app.command("sign-in")
def sign_in(
    attackers: int = typer.Option(100, help="clients sending bad sign-ins back to back"),
    seconds: float = typer.Option(20.0, help="length of the baseline and of the flood"),
    devices: int = typer.Option(50, help="devices whose logins are probed"),
    obey: bool = typer.Option(False, "--obey-retry-after",
                              help="attackers wait as a 429's Retry-After says (1 s without)"),
    json_file: Path | None = typer.Option(None, "--json", help="also write the figures here"),
) -> None:
    """A sign-in flood: the API's and device logins' latency alone and under bad sign-ins."""
    from wifiprov.bench.sign_in import run

    figures = run(attackers=attackers, seconds=seconds, devices=devices, obey=obey,
                  progress=lambda line: err.print(line))
    for probe in ("health", "device_login"):
        a, b = figures["baseline"][probe], figures["flood"][probe]
        print(f"{probe:13} p50 {a['p50_ms']:>7} -> {b['p50_ms']:>7} ms   p99 {a['p99_ms']:>7} -> "
              f"{b['p99_ms']:>7} ms   max {a['max_ms']:>7} -> {b['max_ms']:>7} ms   "
              f"(p99 x{figures['p99_ratio_flood_to_baseline'][probe]})")
    print(f"sign-ins      {figures['sign_ins']}")
    print(f"target: p99 < {figures['target_p99_ms']} ms under the flood: "
          f"{'met' if figures['met'] else 'NOT met'}")
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=1))
