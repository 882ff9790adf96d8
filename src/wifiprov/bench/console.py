"""The console's device list under load (``wifiprov bench console``, issue 13, Performance).

The bench makes a fresh SQLite cloud (``devices`` devices in one organization, populated directly
in the database as the gateway bench does; the first ``flapping`` of them, by id, under a template
of their own), starts a real ``wifiprov cloud`` process, creates a console session for the bench
user (a session row, as ``accounts.sign_in`` makes one, set as the session cookie) and drives
Debian's headless Chromium through Playwright (as tests/browser/portal.py launches it):

1. **first paint**: ``/devices`` loaded ``loads`` times, each in a fresh browser context (cold
   cache), at 1280x800: the Paint Timing API's ``first-contentful-paint`` and the navigation
   timing (time to the first byte of the HTML, DOMContentLoaded, load). The median is the figure.
2. **transferred size**: the decoded (uncompressed) bodies of the navigation and every resource the
   page loaded (Resource Timing ``decodedBodySize``; the open event stream is not counted), and
   what went over the wire (``transferSize``).
3. **presence**: the ``flapping`` devices log in over TCP (Blynk ``HW_LOGIN``), ``/devices`` is
   opened filtered to their template (its first page: the list shows ``PER_PAGE`` devices, there
   is no larger page size), a MutationObserver in the page records every status badge change with
   its device id and the time (``performance.timeOrigin + performance.now()``); the bench then
   closes and reopens the devices' connections at ``flap_rate`` changes a second (over all the
   flapping devices, round robin in a shuffled order) for ``flap_seconds``, stamping each change
   (``time.time()`` just before the connection is closed, or before it is opened for a login).
   The page's clock is put on the bench's by round trips (the offset of the shortest of 20,
   before and after). Each change of a device shown on the page is matched to the first later
   badge change of that device to the same state; the latencies' median and p99 are the figures.
   All flapping devices' events reach the page (the stream carries the organization's presence);
   only the shown ones change the DOM.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wifiprov.bench.gateway import (
    GatewayProcess,
    cpu_seconds,
    ms,
    percentile,
    populate,
)
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command

FLAP_TEMPLATE = "TMPLbenchflap"
TARGET_FIRST_PAINT_MS = 1000.0
TARGET_PRESENCE_MEDIAN_MS = 1000.0
TARGET_SIZE_BYTES = 150 * 1024
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
# Debian's chromium, launched as tests/browser/portal.py does (Playwright's browsers are never
# downloaded).
CHROMIUM = os.environ.get("WIFIPROV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]

# In the page: every status badge change, with its device id and the time (epoch ms).
WATCH = """() => {
  window.__marks = [];
  const list = document.querySelector('.device-list');
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const r of records) {
      const badge = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (!badge || !badge.matches('[data-status]')) continue;
      const li = badge.closest('[data-device-id]');
      if (li) window.__marks.push([Number(li.dataset.deviceId),
                                   badge.textContent === 'Online', now]);
    }
  }).observe(list, {subtree: true, childList: true, characterData: true});
  window.__watching = true;
}"""

TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const res = performance.getEntriesByType('resource');
  return {
    fcp: fcp ? fcp.startTime : null,
    ttfb: nav.responseStart, html_done: nav.responseEnd,
    dom_content_loaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
    html_bytes: nav.decodedBodySize, html_wire: nav.transferSize,
    resources: res.map(r => [r.name, r.decodedBodySize, r.transferSize]),
    rows: document.querySelectorAll('[data-device-id]').length,
  };
}"""


@dataclass
class ConsoleConfig:
    devices: int = 10_000
    flapping: int = 1_000
    loads: int = 5
    flap_rate: float = 200.0  # presence changes a second, over all flapping devices
    flap_seconds: float = 30.0
    settle_seconds: float = 3.0  # after the last change, for the page to catch up


def _stats(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    return {"n": len(values), "median_ms": ms(percentile(values, 0.5)),
            "p99_ms": ms(percentile(values, 0.99)),
            "max_ms": ms(values[-1]) if values else None,
            "min_ms": ms(values[0]) if values else None}


async def _prepare(url: str, cfg: ConsoleConfig) -> tuple[Any, str]:
    """Population, the flapping devices' template, and a console session's token."""
    from sqlalchemy import select, update

    from wifiprov.cloud.db import Database
    from wifiprov.cloud.db.schema import devices, sessions, templates, users
    from wifiprov.cloud.tokens import TokenHasher, last4, new_token

    population = await populate(url, cfg.devices, 0)
    db = Database(url)
    try:
        hasher = await TokenHasher.load(db)
        flap_ids = sorted(population.device_ids)[: cfg.flapping]
        now = time.time()
        async with db.begin() as conn:
            await conn.execute(templates.insert().values(
                id=FLAP_TEMPLATE, org_id=population.org_id, name="Flapping",
                firmware_type=FLAP_TEMPLATE, created_at=now))
            for i in range(0, len(flap_ids), 500):
                await conn.execute(update(devices).where(
                    devices.c.id.in_(flap_ids[i:i + 500])).values(template_id=FLAP_TEMPLATE))
            user_id = await conn.scalar(
                select(users.c.id).where(users.c.email == "bench@example.com"))
            token = new_token()  # a session, as accounts.sign_in makes one after the password
            await conn.execute(sessions.insert().values(
                user_id=user_id, token_hash=hasher(token), token_last4=last4(token),
                created_at=now, last_used_at=now))
    finally:
        await db.close()
    return population, token


class Flapper:
    """A device that logs in and out over TCP; every change stamped with ``time.time()``."""

    def __init__(self, device_id: int, token: str, port: int) -> None:
        self.device_id, self.token, self.port = device_id, token.encode(), port
        self.writer: asyncio.StreamWriter | None = None
        self.drain: asyncio.Task[None] | None = None
        self.busy = False
        self.changes: list[tuple[bool, float]] = []
        self.failures = 0

    async def login(self, record: bool = True) -> bool:
        self.busy = True
        try:
            started = time.time()
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(blynk.encode(Command.HW_LOGIN, 1, self.token))
            await writer.drain()
            frames = blynk.Decoder(65535).feed(await asyncio.wait_for(reader.read(64), 30))
            if not frames or frames[0].status != 200:
                writer.close()
                self.failures += 1
                return False
            self.writer = writer
            self.drain = asyncio.ensure_future(self._drain(reader))
            if record:
                self.changes.append((True, started))
            return True
        except (OSError, TimeoutError):
            self.failures += 1
            return False
        finally:
            self.busy = False

    async def _drain(self, reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(4096):
                pass
        except OSError:
            pass

    def logout(self, record: bool = True) -> None:
        if self.writer is None:
            return
        if record:
            self.changes.append((False, time.time()))
        self.writer.close()
        self.writer = None

    async def toggle(self) -> None:
        if self.busy:
            return
        if self.writer is None:
            await self.login()
        else:
            self.logout()


async def _clock_offset(page: Any) -> dict[str, float]:
    """Page epoch ms minus bench ``time.time()`` (s), from the shortest of 20 round trips."""
    best: tuple[float, float] | None = None
    for _ in range(20):
        t0 = time.time()
        page_ms = await page.evaluate("performance.timeOrigin + performance.now()")
        t1 = time.time()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, page_ms / 1000 - (t0 + t1) / 2)
    assert best is not None
    return {"round_trip_ms": round(best[0] * 1000, 3), "offset_s": best[1]}


def _match(flappers: list[Flapper], marks: list[list[Any]], offset: float,
           since: float) -> tuple[list[float], int]:
    """Latency of each shown device's change (from ``since``) to its badge change; missed."""
    seen: dict[int, list[tuple[bool, float]]] = {}
    for device_id, online, at_ms in marks:
        seen.setdefault(int(device_id), []).append((bool(online), at_ms / 1000 - offset))
    latencies: list[float] = []
    missed = 0
    for f in flappers:
        changes = seen.get(f.device_id, [])
        j = 0
        for online, at in f.changes:
            if at < since:
                continue
            while j < len(changes) and not (changes[j][0] == online and changes[j][1] >= at):
                j += 1
            if j == len(changes):
                missed += 1
                continue
            latencies.append(changes[j][1] - at)
            j += 1
    return latencies, missed


async def _main(cfg: ConsoleConfig, tmp: Path, say: Callable[[str], None]) -> dict[str, Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise RuntimeError("the bench needs Playwright: pip install -e '.[test]'") from exc

    from wifiprov.cloud.console.pages.devices import PER_PAGE
    from wifiprov.cloud.console.sessions import SESSION_COOKIE

    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        raise RuntimeError(f"chromium is missing at {CHROMIUM}: apt-get install chromium")
    report: dict[str, Any] = {"config": asdict(cfg), "targets": {
        "first_paint_median_ms": TARGET_FIRST_PAINT_MS,
        "presence_median_ms": TARGET_PRESENCE_MEDIAN_MS,
        "devices_page_bytes": TARGET_SIZE_BYTES}}
    report["environment"] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    url = str(tmp / "cloud.sqlite3")
    say(f"populating a fresh SQLite database with {cfg.devices:,} devices "
        f"({cfg.flapping:,} of them under the template {FLAP_TEMPLATE})")
    started = time.monotonic()
    population, token = await _prepare(url, cfg)
    report["populate_s"] = round(time.monotonic() - started, 2)
    gw = GatewayProcess(url, tmp / "cloud.log", None)
    gw.start()
    try:
        ready = await asyncio.to_thread(gw.wait_ready, 60)
        say(f"cloud started in {ready:.1f} s (pid {gw.pid}); populated in "
            f"{report['populate_s']} s")
        origin = f"http://127.0.0.1:{gw.http_port}"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                               timeout=60_000)
            try:
                report["first_paint"] = await _first_paint(browser, origin, token, cfg, say,
                                                           SESSION_COOKIE)
                gw.check()
                report["presence"] = await _presence(browser, origin, token, cfg, say, gw,
                                                     population, PER_PAGE, SESSION_COOKIE)
                gw.check()
            finally:
                await browser.close()
    finally:
        gw.stop()
    report["environment"]["load_after"] = os.getloadavg()
    fp, pr = report["first_paint"], report["presence"]
    report["met"] = {
        "first_paint": fp["fcp"]["median_ms"] is not None
        and fp["fcp"]["median_ms"] <= TARGET_FIRST_PAINT_MS,
        "presence": pr["latency"]["median_ms"] is not None
        and pr["latency"]["median_ms"] <= TARGET_PRESENCE_MEDIAN_MS,
        "size": fp["size"]["decoded_bytes"] <= TARGET_SIZE_BYTES,
    }
    return report


async def _context(browser: Any, origin: str, token: str, cookie: str) -> Any:
    context = await browser.new_context(**DESKTOP)
    await context.add_cookies([{"name": cookie, "value": token, "url": origin}])
    return context


async def _first_paint(browser: Any, origin: str, token: str, cfg: ConsoleConfig,
                       say: Callable[[str], None], cookie: str) -> dict[str, Any]:
    loads: list[dict[str, Any]] = []
    for i in range(cfg.loads):
        context = await _context(browser, origin, token, cookie)  # a cold cache each time
        page = await context.new_page()
        page.set_default_timeout(30_000)
        await page.goto(origin + "/devices", wait_until="load")
        await page.wait_for_function(
            "() => performance.getEntriesByName('first-contentful-paint').length > 0")
        await asyncio.sleep(0.3)  # the stream's request starts; nothing else is counted late
        t = await page.evaluate(TIMINGS)
        await context.close()
        if "/sign-in" in page.url or not t["rows"]:
            raise RuntimeError(f"/devices did not show the device list (at {page.url})")
        loads.append(t)
        say(f"load {i + 1}/{cfg.loads}: first contentful paint {t['fcp']:.0f} ms (HTML first "
            f"byte {t['ttfb']:.0f} ms, last byte {t['html_done']:.0f} ms, load "
            f"{t['load']:.0f} ms), {t['rows']} rows")
    last = loads[-1]
    counted = [r for r in last["resources"] if not r[0].endswith("/devices/events")]
    size = {
        "html_bytes": last["html_bytes"],
        "decoded_bytes": last["html_bytes"] + sum(r[1] for r in counted),
        "transferred_bytes": last["html_wire"] + sum(r[2] for r in counted),
        "resources": {r[0].removeprefix(origin): r[1] for r in counted},
    }
    say(f"/devices weighs {size['decoded_bytes']:,} bytes uncompressed (HTML "
        f"{size['html_bytes']:,}), {size['transferred_bytes']:,} bytes transferred")

    def pick(key: str) -> dict[str, Any]:
        return _stats([t[key] / 1000 for t in loads])

    return {"fcp": pick("fcp"), "ttfb": pick("ttfb"), "html_done": pick("html_done"),
            "dom_content_loaded": pick("dom_content_loaded"), "load": pick("load"),
            "rows": last["rows"], "size": size,
            "loads_ms": [round(t["fcp"], 1) for t in loads]}


async def _presence(browser: Any, origin: str, token: str, cfg: ConsoleConfig,
                    say: Callable[[str], None], gw: GatewayProcess, population: Any,
                    per_page: int, cookie: str) -> dict[str, Any]:
    by_id = dict(zip(population.device_ids, population.tokens, strict=True))
    flap_ids = sorted(population.device_ids)[: cfg.flapping]
    flappers = [Flapper(i, by_id[i], gw.port) for i in flap_ids]
    say(f"logging in {len(flappers):,} devices")
    gate = asyncio.Semaphore(100)

    async def first_login(f: Flapper) -> bool:
        async with gate:
            return await f.login(record=False)

    ok = sum(await asyncio.gather(*(first_login(f) for f in flappers)))
    if ok != len(flappers):
        raise RuntimeError(f"only {ok} of {len(flappers)} devices logged in")
    await asyncio.sleep(2.0)  # presence is written behind: the page loads them online
    context = await _context(browser, origin, token, cookie)
    page = await context.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"{origin}/devices?template={FLAP_TEMPLATE}", wait_until="load")
    await page.locator("[data-live]").filter(has_text="live").wait_for()
    shown = {int(x) for x in await page.eval_on_selector_all(
        "[data-device-id]", "els => els.map(e => e.dataset.deviceId)")}
    await page.evaluate(WATCH)
    before = await _clock_offset(page)
    say(f"/devices?template={FLAP_TEMPLATE} open: {len(shown)} of {len(flappers):,} flapping "
        f"devices shown ({per_page} a page, no larger page size); clock offset by a "
        f"{before['round_trip_ms']} ms round trip")
    say(f"flapping: {cfg.flap_rate:g} changes/s for {cfg.flap_seconds:g} s")
    order = flappers[:]
    random.shuffle(order)
    cpu0, wall0 = cpu_seconds(gw.pid), time.monotonic()
    since = time.time()
    tasks: set[asyncio.Task[None]] = set()
    period = 1.0 / cfg.flap_rate
    next_at = time.monotonic()
    end = next_at + cfg.flap_seconds
    n = 0
    last_say = next_at
    while next_at < end:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(order[n % len(order)].toggle())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        next_at += period
        if time.monotonic() - last_say >= 5:
            last_say = time.monotonic()
            marks = await page.evaluate("window.__marks.length")
            say(f"  {n:,} changes sent, {marks:,} badge changes seen in the page")
    if tasks:
        await asyncio.gather(*tasks)
    sent_s = time.monotonic() - wall0
    await asyncio.sleep(cfg.settle_seconds)
    cpu1, wall1 = cpu_seconds(gw.pid), time.monotonic()
    still = await page.evaluate("window.__watching === true")
    marks = await page.evaluate("window.__marks")
    after = await _clock_offset(page)
    await context.close()
    for f in flappers:
        f.logout(record=False)
    shown_flappers = [f for f in flappers if f.device_id in shown]
    latencies, missed = _match(shown_flappers, marks, (before["offset_s"] + after["offset_s"]) / 2,
                               since)
    changes = sum(1 for f in flappers for _, at in f.changes if at >= since)
    shown_changes = sum(1 for f in shown_flappers for _, at in f.changes if at >= since)
    latency = _stats(latencies)
    say(f"presence to page: median {latency['median_ms']} ms, p99 {latency['p99_ms']} ms, "
        f"max {latency['max_ms']} ms over {latency['n']:,} changes of shown devices "
        f"({missed} not seen in the page)")
    cloud_cpu = None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2)
    return {
        "flapping": len(flappers), "shown": len(shown), "per_page": per_page,
        "changes": changes, "changes_per_s": round(changes / sent_s, 1),
        "shown_changes": shown_changes, "badge_changes": len(marks), "missed": missed,
        "login_failures": sum(f.failures for f in flappers),
        "page_reloaded": not still, "latency": latency,
        "clock": {"before": before, "after": after,
                  "drift_ms": round((after["offset_s"] - before["offset_s"]) * 1000, 3)},
        "cloud_cpu_s": cloud_cpu, "wall_s": round(wall1 - wall0, 2),
        "cloud_util": None if cloud_cpu is None else round(cloud_cpu / (wall1 - wall0), 3),
    }


def run(cfg: ConsoleConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wifiprov-bench-") as tmp:
        return asyncio.run(_main(cfg, Path(tmp), say))


