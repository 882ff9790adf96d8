"""Process figures from /proc: CPU seconds (per process, per thread, PostgreSQL's), RSS, the
machine's load; percentiles."""


from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
from collections.abc import Sequence
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no orphans after a kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()  # fields from 3 (state) on


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """utime + stime (+ cutime + cstime: reaped children) of a process, all threads."""
    f = _stat(pid)
    if f is None:
        return None
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (the main thread's id is the pid)."""
    found: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


def rss_kib(pid: int, field: str = "VmRSS") -> int | None:
    """A process's resident memory now (``VmHWM``: its peak so far), KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every process whose comm starts with "postgres" (including reaped
    children, so backends that exit are still counted through the postmaster)."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                comm = f.read()
        except OSError:
            continue
        if comm.startswith("postgres"):
            value = cpu_seconds(int(entry.name), children=True)
            if value is not None:
                found[int(entry.name)] = value
    return found


def machine_seconds() -> tuple[float, float, float]:
    """CPU seconds of the whole machine: (processes, interrupts, steal). Interrupt time is mostly
    loopback networking done in softirq; steal is what the hypervisor gave to other guests."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
    return (user + nice + system) / CLK_TCK, (irq + softirq) / CLK_TCK, steal / CLK_TCK


@dataclass
class CpuSnapshot:
    at: float
    gateway: float
    gateway_main: float  # the gateway's main thread (its event loop)
    workers: float
    bench: float
    machine: tuple[float, float, float]
    postgres: dict[int, float] | None


def cpu_delta(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, float | None]:
    wall = b.at - a.at
    database = None
    if a.postgres is not None and b.postgres is not None:
        # A backend that exited in between shows up in the postmaster's cutime with its whole
        # life, so what it had used before ``a`` is taken off again.
        database = sum(v - a.postgres.get(p, 0.0) for p, v in b.postgres.items()) - sum(
            v for p, v in a.postgres.items() if p not in b.postgres
        )
    gateway, generator, bench = b.gateway - a.gateway, b.workers - a.workers, b.bench - a.bench
    processes, interrupts, steal = (y - x for x, y in zip(a.machine, b.machine, strict=True))
    other = processes - gateway - generator - bench - (database or 0.0)
    return {
        "wall_s": round(wall, 3),
        "gateway_s": round(gateway, 2),
        "gateway_main_thread_s": round(b.gateway_main - a.gateway_main, 2),
        "generator_s": round(generator, 2),
        "database_s": None if database is None else round(database, 2),
        "bench_s": round(bench, 2),
        "machine_s": round(processes + interrupts + steal, 2),
        "other_s": round(max(other, 0.0), 2),  # other processes on the machine: interference
        "interrupts_s": round(interrupts, 2),
        "steal_s": round(steal, 2),
        "gateway_util": round(gateway / wall, 3) if wall > 0 else None,
    }


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]
