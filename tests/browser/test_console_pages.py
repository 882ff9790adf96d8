"""The console's foundation in headless Chromium against a real `wifiprov cloud` process, on
SQLite and on PostgreSQL: first-run sign-up, sign out, sign in wrong and right, the organization
switcher, the cookie's flags, a forged cross-site form, and a phone-sized page that fits."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import axe
from tests.browser.portal import PHONE, chromium
from tests.e2e.test_provision_cli import PYTHON
from tests.integration.support import free_port, wait_http
from wifiprov.cloud import accounts
from wifiprov.cloud.db import Database
from wifiprov.cloud.tokens import TokenHasher

PASSWORD = "console password 1"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
NO_SIDEWAYS = "() => document.documentElement.scrollWidth <= window.innerWidth"
# every visible control has an accessible name (label, aria-label, or its text)
UNNAMED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, button, a')]
  .filter(e => e.offsetParent !== null)
  .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label') ||
                 e.textContent.trim()))
  .map(e => e.outerHTML)"""


@pytest.fixture
async def console(db_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh `wifiprov cloud` (no `cloud init`): its console's URL."""
    http = free_port()
    env = {**os.environ, "WIFIPROV_CONFIG_DIR": str(tmp_path / "config")}
    log = (tmp_path / "cloud.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *PYTHON, "cloud", "--db", db_url, "--http", f"127.0.0.1:{http}",
        "--gateway", f"127.0.0.1:{free_port()}", "--public-host", "127.0.0.1",
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{http}"
    try:
        await wait_http(url, lambda: proc.returncode is not None)
        yield url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
        log.close()


async def tab(browser: Any, size: dict[str, Any]) -> Any:
    context = await browser.new_context(**size)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return page


async def sign_up(page: Any, url: str, email: str, org: str) -> None:
    await page.goto(url + "/")
    assert page.url == url + "/sign-up"
    await page.get_by_label("Your e-mail").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_label("Organization").fill(org)
    await page.get_by_role("button", name="Create and sign in").click()
    await page.get_by_role("heading", name=org).wait_for()


async def test_first_run_sign_out_and_sign_in_on_a_phone(console: str) -> None:
    async with chromium() as browser:
        page = await tab(browser, PHONE)
        await page.goto(console + "/sign-up")
        assert await page.evaluate(NO_SIDEWAYS)
        await page.get_by_label("Your e-mail").fill("not an address")
        await page.get_by_role("button", name="Create and sign in").click()
        email = page.get_by_label("Your e-mail")
        await page.get_by_text("Enter an e-mail address").wait_for()
        await axe.check(page)  # the sign-up page, with an error shown
        assert await email.get_attribute("aria-invalid") == "true"
        assert "Enter an e-mail address" in await email.evaluate(
            "e => document.getElementById(e.getAttribute('aria-describedby').split(' ')[0])"
            ".textContent"
        )
        await sign_up(page, console, "owner@example.com", "First Co")
        assert page.url == console + "/"
        assert await page.evaluate(NO_SIDEWAYS) and await page.evaluate(UNNAMED) == []
        await axe.check(page)  # home
        cookies = {c["name"]: c for c in await page.context.cookies()}
        session = cookies["wifiprov_session"]
        assert session["httpOnly"] and session["sameSite"] == "Lax" and not session["secure"]
        sign_out = page.get_by_role("button", name=re.compile("^Sign out"))
        box = await sign_out.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44  # a touch target

        await sign_out.click()
        await page.get_by_text("You are signed out.").wait_for()
        assert page.url.startswith(console + "/sign-in")
        await page.goto(console + "/")  # signed out: sent to sign in, then back here
        await page.get_by_label("E-mail").fill("owner@example.com")
        await page.get_by_label("Password").fill("wrong password here")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_text("Wrong e-mail or password.").wait_for()
        await axe.check(page)  # the sign-in page, with an error shown
        assert await page.get_by_label("Password").get_attribute("aria-invalid") == "true"
        assert await page.get_by_label("E-mail").input_value() == "owner@example.com"
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("heading", name="First Co").wait_for()
        assert page.url == console + "/"


async def test_switch_organization_and_a_forged_form(console: str, db_url: str) -> None:
    async with chromium() as browser:
        page = await tab(browser, DESKTOP)
        await sign_up(page, console, "owner@example.com", "First Co")
        db = Database(db_url)
        try:
            owner = await _principal(db)  # the signed-up owner
            await accounts.create_org(db, "Second <i>Co</i> 🚀", owner.user_id)
        finally:
            await db.close()
        await page.reload()
        switcher = page.get_by_label("Organization")
        await switcher.select_option(label="Second <i>Co</i> 🚀")  # submits by itself (JS)
        await page.get_by_role("heading", name="Second <i>Co</i> 🚀").wait_for()
        await page.reload()
        await page.get_by_role("heading", name="Second <i>Co</i> 🚀").wait_for()
        assert await page.evaluate(UNNAMED) == []

        # another site's page posting to the console: refused, still signed in
        evil = await page.context.new_page()
        await evil.set_content(
            f'<form method="post" action="{console}/sign-out">'
            '<input name="csrf" value="guess"><button>Go</button></form>'
        )
        await evil.get_by_role("button", name="Go").click()
        await evil.get_by_role("heading", name="This form has expired").wait_for()
        await page.goto(console + "/")
        await page.get_by_role("heading", name="Second <i>Co</i> 🚀").wait_for()


async def _principal(db: Database) -> accounts.Principal:
    hasher = await TokenHasher.load(db)
    token = await accounts.sign_in(db, hasher, "owner@example.com", PASSWORD)
    return await accounts.authenticate(db, hasher, token)
