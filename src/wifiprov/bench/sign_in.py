"""Sign-in flood (``wifiprov bench sign-in``): do bad sign-ins slow down everybody else?

The bench makes a fresh SQLite database (one user, ``devices`` devices), starts a real
``wifiprov cloud`` process, and measures two probes for ``seconds`` each, first alone
(baseline), then while ``attackers`` clients each send bad sign-ins back to back (flood):

- the API: ``GET /api/health`` every 20 ms on a kept-alive connection;
- device logins: every 50 ms a new TCP connection, ``HW_LOGIN`` with a device token, the answer.

The attackers run in their own process, so their work does not delay the probes' own loop;
half of them use the bench user's e-mail with wrong passwords, half unknown e-mails. The figures
are the probes' p50 / p99 / max per phase, their ratio flood / baseline, and what the sign-ins
were answered (401 wrong password, 429 refused while the hashing queue is full or the account
backs off). With ``obey`` the attackers wait as a 429's Retry-After says (a well-behaved client);
without, they retry at once (an attacker), and the flood is then mostly cheap 429s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wifiprov.bench.gateway import GatewayProcess, ms, percentile, populate
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command

HEALTH_PERIOD = 0.02
LOGIN_PERIOD = 0.05
TARGET_P99_MS = 50.0


async def _health_probe(url: str, until: float, out: list[float]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        while time.monotonic() < until:
            started = time.perf_counter()
            reply = await api.get("/api/health")
            out.append(time.perf_counter() - started)
            reply.raise_for_status()
            await asyncio.sleep(HEALTH_PERIOD)


async def _login_probe(port: int, tokens: list[str], until: float, out: list[float]) -> None:
    i = 0
    while time.monotonic() < until:
        token = tokens[i % len(tokens)]
        i += 1
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(blynk.encode(Command.HW_LOGIN, 1, token))
        await writer.drain()
        frames = blynk.Decoder(65535).feed(await reader.read(64))
        out.append(time.perf_counter() - started)
        writer.close()
        if not frames or frames[0].status != 200:
            raise RuntimeError(f"a device login was not accepted: {frames}")
        await asyncio.sleep(LOGIN_PERIOD)


def _attack(url: str, attackers: int, email: str, seconds: float, obey: bool, result: Any) -> None:
    """In its own process: ``attackers`` clients sending bad sign-ins back to back (with
    ``obey``, each waits as long as a 429's Retry-After says, 1 s without one)."""

    async def main() -> None:
        import httpx

        answers: Counter[int] = Counter()
        took: list[float] = []
        until = time.monotonic() + seconds

        async def one(i: int) -> None:
            async with httpx.AsyncClient(base_url=url, timeout=60) as api:
                while time.monotonic() < until:
                    target = email if i % 2 == 0 else f"nobody{i}@example.com"
                    started = time.perf_counter()
                    reply = await api.post(
                        "/api/auth/sign-in",
                        json={"email": target, "password": secrets.token_hex(8)},
                    )
                    took.append(time.perf_counter() - started)
                    answers[reply.status_code] += 1
                    if obey and reply.status_code == 429:  # (never past the end of the run)
                        wait = float(reply.headers.get("Retry-After", 1))
                        await asyncio.sleep(max(0.0, min(wait, until - time.monotonic())))

        await asyncio.gather(*(one(i) for i in range(attackers)))
        took.sort()
        result.put({"answers": dict(answers), "p50_ms": ms(percentile(took, 0.5)),
                    "p99_ms": ms(percentile(took, 0.99))})

    asyncio.run(main())


def _summary(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    return {"n": len(values), "p50_ms": ms(percentile(values, 0.5)),
            "p99_ms": ms(percentile(values, 0.99)), "max_ms": ms(values[-1] if values else None)}


async def _phase(gw: GatewayProcess, tokens: list[str], seconds: float) -> dict[str, Any]:
    health: list[float] = []
    logins: list[float] = []
    until = time.monotonic() + seconds
    await asyncio.gather(
        _health_probe(f"http://127.0.0.1:{gw.http_port}", until, health),
        _login_probe(gw.port, tokens, until, logins),
    )
    return {"health": _summary(health), "device_login": _summary(logins)}


def run(attackers: int = 100, seconds: float = 20.0, devices: int = 50, obey: bool = False,
        progress: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wifiprov-bench-") as tmp:
        url = str(Path(tmp) / "cloud.sqlite3")
        progress(f"populating a fresh SQLite database with {devices} devices")
        population = asyncio.run(populate(url, devices, 0))
        gw = GatewayProcess(url, Path(tmp) / "cloud.log", None)
        gw.start()
        try:
            progress(f"cloud started in {gw.wait_ready(60):.1f} s (pid {gw.pid})")
            progress(f"baseline: probing the API and device logins for {seconds:.0f} s")
            baseline = asyncio.run(_phase(gw, population.tokens, seconds))
            progress(f"  health p99 {baseline['health']['p99_ms']} ms, device login p99 "
                     f"{baseline['device_login']['p99_ms']} ms")
            progress(f"flood: {attackers} concurrent bad sign-ins for {seconds:.0f} s, probing")
            ctx = multiprocessing.get_context("spawn")
            result = ctx.Queue()
            attack = ctx.Process(target=_attack, args=(
                f"http://127.0.0.1:{gw.http_port}", attackers, "bench@example.com",
                seconds + 2, obey, result))
            attack.start()
            time.sleep(1.0)  # the attackers are at full speed before the probes start
            flood = asyncio.run(_phase(gw, population.tokens, seconds))
            sign_ins = result.get(timeout=120)
            attack.join(30)
            gw.check()
            progress(f"  health p99 {flood['health']['p99_ms']} ms, device login p99 "
                     f"{flood['device_login']['p99_ms']} ms, sign-ins answered "
                     f"{sign_ins['answers']}")
        finally:
            gw.stop()
    ratios = {
        probe: round(flood[probe]["p99_ms"] / baseline[probe]["p99_ms"], 2)
        for probe in ("health", "device_login")
    }
    met = all(flood[p]["p99_ms"] < TARGET_P99_MS for p in ("health", "device_login"))
    return {"attackers": attackers, "seconds": seconds, "obey_retry_after": obey,
            "baseline": baseline, "flood": flood, "sign_ins": sign_ins,
            "p99_ratio_flood_to_baseline": ratios, "target_p99_ms": TARGET_P99_MS, "met": met}
