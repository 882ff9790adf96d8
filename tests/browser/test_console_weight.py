"""Page weight (issue 13, Performance): every console page, signed in as the owner with a template
and a provisioned, online device present, is at most 150 KB transferred uncompressed (HTML, JS,
CSS, images: the decoded bodies of Playwright's finished responses, with the browser's cache off),
and nothing it loads leaves the cloud's origin (no CDN, no external font: a phone on a device's
access point has no internet). Streams (Server-Sent Events) and the Add device long poll still
open when a page is measured are not counted; their requests must be same-origin too."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.browser.conftest import Lab
from tests.browser.portal import chromium
from tests.e2e.test_provision_cli import HOME, PASSWORD

LIMIT = 150 * 1024
SETTLE = 0.5  # seconds after `load` for the page's scripts to make their first requests


class Meter:
    """The bytes and the URLs one tab loads."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.sizes: dict[str, int] = {}
        self._pending: set[asyncio.Task[None]] = set()
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("requestfinished", self._finished)

    def _finished(self, request: Any) -> None:
        task = asyncio.ensure_future(self._count(request))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _count(self, request: Any) -> None:
        response = await request.response()
        try:
            body = await response.body() if response is not None else b""
        except Exception:  # a redirect has no body to read
            body = b""
        key = f"{request.method} {request.url}"
        self.sizes[key] = self.sizes.get(key, 0) + len(body)

    async def total(self) -> int:
        await asyncio.sleep(SETTLE)
        while self._pending:
            await asyncio.gather(*list(self._pending))
        return sum(self.sizes.values())


async def measure(context: Any, origin: str, path: str, click: str = "") -> tuple[int, Meter]:
    """Load ``path`` in a fresh tab (then press the button ``click``, measuring the page it
    leads to); its weight and what it loaded."""
    page = await context.new_page()
    page.set_default_timeout(15_000)
    if click:
        await page.goto(origin + path)
    meter = Meter(page)
    if click:
        await page.get_by_role("button", name=click, exact=True).click()
        await page.wait_for_load_state("load")
    else:
        await page.goto(origin + path)
    weight = await meter.total()
    await page.close()
    return weight, meter


async def test_every_console_page_is_small_and_needs_only_the_cloud(lab: Lab) -> None:
    world = lab.world
    await world.device("lamp-1")
    code, events = await world.provision("--ssid", HOME, "--name", "Kitchen lamp")
    assert code == 0, events
    device_id = events[-1]["device"]["id"]
    origin = world.cloud_url
    template = world.template_id

    weights: dict[str, int] = {}
    meters: dict[str, Meter] = {}
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        await context.route("**/*", lambda route: route.continue_())  # routing turns the cache off
        weights["/sign-in"], meters["/sign-in"] = await measure(context, origin, "/sign-in")

        page = await context.new_page()
        await page.goto(origin + "/sign-in")
        await page.get_by_label("E-mail").fill("owner@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("link", name="Add device").first.wait_for()
        has_devices = bool(
            await page.get_by_role("navigation", name="Console")
            .get_by_role("link", name="Devices")
            .count()
        )
        await page.close()

        paths = ["/", "/templates", f"/templates/{template}", f"/templates/{template}/edit"]
        paths += [f"/templates/{template}/datastreams/new"]
        paths += ["/members", "/add-device"]
        if has_devices:  # the Devices pages, once the console has them
            paths += ["/devices", f"/devices/{device_id}"]
        for path in paths:
            weights[path], meters[path] = await measure(context, origin, path)
        # the setup link page (POST /add-device), then its result page
        name = "/add-device (setup link)"
        weights[name], meters[name] = await measure(context, origin, "/add-device", click="Lamp")
        request = next(
            m.group(1)
            for u in meters[name].urls
            if (m := re.search(r"/add-device/(\d+)/status", u))
        )
        path = f"/add-device/{request}"
        weights[path], meters[path] = await measure(context, origin, path)

    report = "\n".join(f"{w:>8} B  {p}" for p, w in weights.items())
    print("\nconsole page weights (uncompressed):\n" + report)
    for path, meter in meters.items():
        assert meter.urls, path
        away = [u for u in meter.urls if not (u.startswith(origin + "/") or u.startswith("data:"))]
        assert away == [], f"{path} loads from outside the cloud: {away}"
        assert any(u.endswith(".css") or ".css?" in u for u in meter.urls), (path, meter.urls)
    heavy = {p: w for p, w in weights.items() if w > LIMIT}
    assert heavy == {}, f"over {LIMIT} bytes:\n{report}"
