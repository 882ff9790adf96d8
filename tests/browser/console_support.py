"""Helpers the console's templates and members browser tests share (on top of
``test_console_pages.py``'s fixture and helpers): a browser context per person (with the clipboard
granted), the checks every visited page passes, inviting someone and joining through the link."""

from __future__ import annotations

from typing import Any

from tests.browser import axe
from tests.browser.portal import PHONE
from tests.browser.test_console_pages import DESKTOP, NO_SIDEWAYS, PASSWORD, UNNAMED

SIZES = {"phone": PHONE, "desktop": DESKTOP}
CLIPBOARD = ["clipboard-read", "clipboard-write"]


async def person(browser: Any, size: dict[str, Any], clipboard: bool = True) -> Any:
    """A page in a fresh browser context (its own cookies): one person's browser."""
    context = await browser.new_context(**size)
    if clipboard:  # the console is on http://127.0.0.1, a secure context: the clipboard API works
        await context.grant_permissions(CLIPBOARD)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return page


async def checked(page: Any) -> None:
    """The page fits its window, names every visible control, and passes axe-core."""
    assert await page.evaluate(NO_SIDEWAYS), f"sideways scroll on {page.url}"
    assert await page.evaluate(UNNAMED) == [], page.url
    await axe.check(page)


async def clipboard(page: Any) -> str:
    return str(await page.evaluate("() => navigator.clipboard.readText()"))


async def go(page: Any, link: str, heading: str) -> None:
    """Follow the navigation link ``link`` and wait for the page's heading."""
    await page.get_by_role("navigation", name="Console").get_by_role("link", name=link).click()
    await page.get_by_role("heading", name=heading, exact=True).wait_for()
    await checked(page)


async def invite(page: Any, email: str, role: str) -> str:
    """On the Members page: invite ``email`` as ``role``; returns the invite link shown."""
    await page.get_by_label("Their e-mail").fill(email)
    await page.get_by_label("Role", exact=True).select_option(role)
    await page.get_by_role("button", name="Invite", exact=True).click()
    await page.get_by_role("heading", name=f"{email} is a member").wait_for()
    await checked(page)
    link = (await page.locator("#invite-link").text_content()).strip()
    assert "/invite/" in link
    return str(link)


async def join(page: Any, link: str, email: str, org: str) -> None:
    """Open an invite link (in the invited person's own context), choose the password, and land
    signed in on the console's home page."""
    await page.goto(link)
    await page.get_by_role("heading", name=f"Join {org}").wait_for()
    await page.get_by_text(f"You were invited as {email}").wait_for()
    await checked(page)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_role("button", name="Set password and sign in").click()
    await page.get_by_role("heading", name=org).wait_for()
    await page.get_by_role("button", name=f"Sign out {email}").wait_for()
