"""``wifiprov bench device``: the device agent in AP mode on the sim radio.

Measures, for one agent process started the way a user starts it (``wifiprov device``):
AP-ready time (process start to its AP and portal published in the air), idle RSS and CPU, and
``/board_info.json`` latency over loopback with a new TCP connection per request.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wifiprov.sim.air import Air

TICK = os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _get(host: str, port: int, path: str) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 192.168.4.1\r\nConnection: close\r\n\r\n"
                     .encode())
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def run(requests: int = 2000, idle_seconds: float = 10.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wifiprov-bench-device-") as tmp:
        air = Air(Path(tmp) / "air")
        air.add_network("Home", "password123")
        feed = air.changes()
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "wifiprov", "device", "--radio", "sim", "--air",
             str(air.directory), "--device-id", "bench", "--template-id", "TMPLbench001",
             "--template-name", "Bench", "--store", str(Path(tmp) / "store.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            import asyncio

            async def ap_ready() -> tuple[str, int]:
                async with asyncio.timeout(30):
                    while True:
                        aps = [ap for ap in air.aps() if ap.portal is not None]
                        if aps:
                            return aps[0].portal  # type: ignore[return-value]
                        await feed.wait()

            host, port = asyncio.run(ap_ready())
            ready_s = time.monotonic() - started
            feed.close()
            time.sleep(1.0)  # let start-up work settle before measuring idle
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(idle_seconds)
            idle_cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            idle_rss = _rss_kib(proc.pid)
            latencies = []
            for _ in range(requests):
                t = time.perf_counter()
                reply = _get(host, port, "/board_info.json")
                latencies.append(time.perf_counter() - t)
                if not reply.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected reply: {reply[:80]!r}")
            latencies.sort()
            rss_after = _rss_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
            air.close()
    return {
        "ap_ready_s": round(ready_s, 3),
        "idle_rss_kib": idle_rss,
        "idle_cpu_percent": round(idle_cpu * 100, 2),
        "board_info_requests": requests,
        "board_info_median_ms": round(statistics.median(latencies) * 1000, 3),
        "board_info_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
        "rss_after_requests_kib": rss_after,
    }
