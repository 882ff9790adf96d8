"""Driving the device's setup page in headless Chromium (Playwright, Debian's chromium).

Used in-process by the loopback tests and by ``driver.py``, which runs inside the phone's network
namespace. Chromium is Debian's (``/usr/bin/chromium``); Playwright's own browsers are never
downloaded. Missing pieces raise ``BrowserMissing`` with what to install.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHROMIUM = os.environ.get("WIFIPROV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {  # a phone-sized viewport
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
STEPS = ("send", "wifi", "cloud", "done")

# Records what the page shows over time: every step's class and every status text, so a test can
# see the progress even when a step lasts a millisecond.
_WATCH = """() => {
  if (window.__seen) return;
  window.__seen = [];
  const snap = () => {
    const steps = {};
    for (const li of document.querySelectorAll('#steps li')) steps[li.id] = li.className;
    const status = document.getElementById('status');
    const entry = JSON.stringify({steps, status: status.hidden ? '' : status.textContent});
    if (window.__seen[window.__seen.length - 1] !== entry) window.__seen.push(entry);
  };
  new MutationObserver(snap).observe(document.body,
    {subtree: true, attributes: true, childList: true, characterData: true});
  snap();
}"""

_FINISHED = """() => {
  const s = document.getElementById('status');
  return !s.hidden && (s.classList.contains('good') ||
    (s.classList.contains('bad') && !document.getElementById('fields').disabled));
}"""


class BrowserMissing(RuntimeError):
    pass


def check_browser() -> None:
    """Raise ``BrowserMissing`` unless Playwright and Debian's chromium are both here."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        raise BrowserMissing(
            f"the Python package 'playwright' is missing ({exc}): run `make install` "
            "(it is in the [test] extra); do not run `playwright install`"
        ) from exc
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        raise BrowserMissing(
            f"chromium is missing at {CHROMIUM}: `apt-get install chromium` (Debian's package; "
            "the browser tests never download Playwright's browsers)"
        )


@asynccontextmanager
async def chromium(extra_args: Sequence[str] = ()) -> AsyncIterator[Any]:
    """A headless Debian chromium under Playwright, closed on the way out whatever happens."""
    check_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def phone_tab(browser: Any) -> PortalPage:
    """A new tab in a phone-sized window."""
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return PortalPage(page)


@dataclass
class Result:
    """What the page ended with after Connect."""

    outcome: str  # "done", "failed", or "timeout"
    status: str  # the status box's text
    steps: dict[str, str]  # step -> class ("ok", "active", "bad", "")
    history: list[dict[str, Any]] = field(default_factory=list)
    form_enabled: bool = False

    def was(self, step: str, how: str) -> bool:
        return any(h["steps"].get(f"step-{step}") == how for h in self.history)


class PortalPage:
    """One phone's browser tab on the setup page."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))

    def config_requests(self) -> list[dict[str, list[str]]]:
        """The query of every /config the page sent, parsed (values as text)."""
        found = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.path == "/config":
                found.append(parse_qs(parts.query, keep_blank_values=True))
        return found

    async def open(self, url: str, timeout: float = 15) -> str:
        """Load ``url`` (following redirects); the URL the page ended on."""
        await self.page.goto(url, timeout=timeout * 1000, wait_until="load")
        await self.page.evaluate(_WATCH)
        return str(self.page.url)

    async def title(self) -> str:
        return str(await self.page.inner_text("h1"))

    async def is_portal(self) -> bool:
        return bool(await self.page.locator("form#setup").count())

    async def networks(self) -> list[dict[str, str]]:
        """The network list as shown: each option's label, name and kind."""
        return list(
            await self.page.eval_on_selector_all(
                "#ssid option",
                "opts => opts.map(o => ({label: o.textContent, name: o.getAttribute('data-name'),"
                " kind: o.getAttribute('data-kind'), other: o.getAttribute('data-other')}))",
            )
        )

    async def choose(self, name: str) -> None:
        """Pick the listed network named ``name`` (its SSID, as text)."""
        index = await self.page.eval_on_selector(
            "#ssid",
            "(s, name) => [...s.options].findIndex(o => o.getAttribute('data-name') === name)",
            name,
        )
        assert index >= 0, f"{name!r} is not in the list {await self.networks()}"
        await self.page.select_option("#ssid", index=index)

    async def choose_other(self, ssid: str, enterprise: bool = False) -> None:
        last = await self.page.locator("#ssid option").count() - 1
        await self.page.select_option("#ssid", index=last)
        await self.page.fill("#ssidManual", ssid)
        if enterprise:
            await self.page.check("#other-ent")

    async def fill(self, **fields: str) -> None:
        """Fill fields by id: ``pass``, ``identity``, ``blynk``, ``host``, ``port``; ``eap`` is a
        choice."""
        for name, value in fields.items():
            if name == "eap":
                await self.page.select_option("#eap", value=value)
                continue
            if name in ("host", "port"):
                await self.page.evaluate("() => { document.getElementById('advanced').open = 1 }")
            await self.page.fill(f"#{name}", value)

    async def visible(self, selector: str) -> bool:
        return bool(await self.page.is_visible(selector))

    async def message(self, field_id: str) -> str:
        return str(await self.page.text_content(f"#{field_id}-msg") or "")

    async def status(self) -> str:
        box = self.page.locator("#status")
        return str(await box.text_content() or "") if await box.is_visible() else ""

    async def submit(self) -> None:
        await self.page.click("#connect")

    async def result(self, timeout: float = 60) -> Result:
        """Wait (at most ``timeout`` seconds) for done, or for a failure with the form back."""
        outcome = "timeout"
        try:
            await self.page.wait_for_function(_FINISHED, timeout=timeout * 1000)
            good = await self.page.eval_on_selector("#status", "s => s.classList.contains('good')")
            outcome = "done" if good else "failed"
        except Exception as exc:  # playwright's TimeoutError
            if "Timeout" not in type(exc).__name__:
                raise
        steps = await self.page.eval_on_selector_all(
            "#steps li", "lis => Object.fromEntries(lis.map(li => [li.id, li.className]))"
        )
        history = [json.loads(h) for h in await self.page.evaluate("() => window.__seen || []")]
        enabled = not await self.page.eval_on_selector("#fields", "f => f.disabled")
        return Result(
            outcome=outcome,
            status=await self.status(),
            steps={k.removeprefix("step-"): v for k, v in steps.items()},
            history=history,
            form_enabled=enabled,
        )

    async def overflows(self) -> bool:
        """True when the page is wider than the phone's screen (sideways scrolling)."""
        return bool(
            await self.page.evaluate(
                "() => document.documentElement.scrollWidth > window.innerWidth + 1"
            )
        )

    async def screenshot(self, path: Path | str | None) -> None:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=str(path), full_page=True)
