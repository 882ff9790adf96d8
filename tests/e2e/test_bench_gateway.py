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
