"""`wifiprov bench console` keeps working: at tiny sizes (50 devices, 20 flapping for 3 s) it runs
end to end (a real cloud, Debian's chromium, devices over TCP) and writes every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_console_runs_at_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "console.json"
    done = subprocess.run(
        [sys.executable, "-m", "wifiprov.cli", "bench", "console", "--devices", "50",
         "--flapping", "20", "--loads", "2", "--flap-rate", "10", "--flap-seconds", "3",
         "--json", str(out)],
        capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "first contentful paint" in done.stdout
    assert "presence to the page" in done.stdout
    assert "load 2/2" in done.stderr  # progress lines while it runs
    figures = json.loads(out.read_text())
    first = figures["first_paint"]
    assert first["fcp"]["n"] == 2 and first["fcp"]["median_ms"] > 0
    assert first["rows"] == 50
    assert 0 < first["size"]["html_bytes"] < first["size"]["decoded_bytes"]
    presence = figures["presence"]
    assert presence["shown"] == 20 and presence["login_failures"] == 0
    assert not presence["page_reloaded"]
    assert presence["changes"] >= 20  # 10 a second for 3 s, each of a shown device
    assert presence["latency"]["n"] == presence["shown_changes"] - presence["missed"]
    assert presence["missed"] == 0, presence
    assert presence["latency"]["median_ms"] > 0
