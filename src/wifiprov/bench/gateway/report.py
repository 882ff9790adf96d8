"""What a run says: which code was measured, one-line headlines, py-spy profile summaries, the
JSON file."""


from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any


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
    if scenario == "storm":
        return (f"{r['back']}/{r['connected_before']} back after {r['all_back_after_s']} s, "
                f"peak RSS {r['rss_peak_kib']} KiB")
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
