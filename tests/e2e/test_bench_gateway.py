"""`wifiprov bench gateway` runs every scenario end to end at a small scale and finds nothing
wrong: the bench itself is tested, so its figures keep meaning what docs/benchmarks.md says (its
claim scenario once counted logins while claims waited for an info it never sent)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_every_gateway_scenario_runs_clean_at_a_small_scale(tmp_path: Path, db: str) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable, "-m", "wifiprov", "bench", "gateway", "--db", db,
            "--devices", "60", "--claims", "40", "--ingest-devices", "20",
            "--hold-seconds", "1", "--ingest-seconds", "1", "--workers", "1",
            "--scenarios", "hold,relogin,claim,ingest,storm",
            "--json", str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == []
    scenarios = report["scenarios"]
    assert set(scenarios) == {"hold", "relogin", "claim", "ingest", "storm"}
    for name, result in scenarios.items():
        assert result["problems"] == [], (name, result["problems"])
    assert scenarios["hold"]["held"] == scenarios["hold"]["alive_at_end"] == 60
    assert scenarios["relogin"]["ok"] == 60
    assert scenarios["claim"]["ok"] == scenarios["claim"]["claimed_in_db"] == 40
    assert scenarios["ingest"]["messages"] > 0
    assert scenarios["ingest"]["bare"]["messages"] > 0  # the same load against a bare server
    assert scenarios["ingest"]["ratio_to_bare_pct"] > 0
    storm = scenarios["storm"]
    assert storm["connected_before"] == storm["back"] == storm["online_in_db"] == 60
    assert storm["all_back_after_s"] is not None and storm["rss_peak_kib"] > 0


def test_a_storm_spread_over_cluster_nodes(tmp_path: Path) -> None:
    """`--nodes 2`: two cloud nodes on one PostgreSQL database and NATS, the devices spread over
    them in turn (how the bench gets past one process's file limit); every device is back on its
    node and online, half on each."""
    out, log = tmp_path / "bench.json", tmp_path / "gateway.log"
    run = subprocess.run(
        [
            sys.executable, "-m", "wifiprov", "bench", "gateway", "--db", "postgres",
            "--scenarios", "storm", "--devices", "80", "--nodes", "2", "--workers", "2",
            "--gateway-log", str(log), "--json", str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == [] and report["setup"]["nodes"] == 2
    storm = report["scenarios"]["storm"]
    assert storm["problems"] == []
    assert storm["connected_before"] == storm["back"] == storm["online_in_db"] == 80
    assert storm["online_by_node"] == {"bench-0": 40, "bench-1": 40}
    assert len(storm["rss_peak_kib_per_node"]) == 2 and all(storm["rss_peak_kib_per_node"])
    assert log.exists() and (tmp_path / "gateway-1.log").exists()


def test_nodes_need_the_storm_on_postgres() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "wifiprov", "bench", "gateway", "--nodes", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "--nodes above 1 runs the storm scenario on PostgreSQL only" in run.stdout + run.stderr
