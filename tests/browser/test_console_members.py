"""The console's Members page in headless Chromium against a real `wifiprov cloud` process, on
SQLite and PostgreSQL, at 390x844 and 1280x800: invite (the server's error next to the field,
the invite link shown and copied), the link opened in the invited person's own browser to set a
password and sign in (once only), change role ("can add devices" follows), remove with a
confirmation naming the member (their open session stops working at once), and a viewer without
invite, role or remove controls. axe-core passes on every page visited."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.console_support import SIZES, checked, clipboard, go, invite, join, person
from tests.browser.portal import chromium
from tests.browser.test_console_pages import console, sign_up  # noqa: F401 (console: a fixture)

MEMBER = "installer@example.com"


def row(page: Any, email: str) -> Any:
    return page.get_by_role("list", name="Members").get_by_role("listitem", name=email)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_invite_join_change_role_and_remove(console: str, size: dict[str, Any]) -> None:  # noqa: F811
    async with chromium() as browser:
        owner = await person(browser, size)
        await sign_up(owner, console, "owner@example.com", "Plant Co")
        await go(owner, "Members", "Members")
        me = row(owner, "owner@example.com")
        await me.get_by_text("(you)").wait_for()
        await me.get_by_text("can add devices", exact=True).wait_for()

        # the server's validation, next to the field (the form has novalidate)
        await owner.get_by_label("Their e-mail").fill("not an address")
        await owner.get_by_role("button", name="Invite", exact=True).click()
        email = owner.get_by_label("Their e-mail")
        await owner.get_by_text("Enter an e-mail address, like someone@example.com.").wait_for()
        assert await email.get_attribute("aria-invalid") == "true"
        assert "Enter an e-mail address" in await email.evaluate(
            "e => document.getElementById(e.getAttribute('aria-describedby').split(' ')[0])"
            ".textContent"
        )
        await checked(owner)

        link = await invite(owner, MEMBER, "installer")
        assert link.startswith(console + "/invite/")
        await owner.get_by_text("it is not sent for you").wait_for()
        await owner.get_by_role("button", name="Copy the link").click()
        await owner.get_by_role("status").filter(has_text="Copied: the link.").wait_for()
        assert (await clipboard(owner)).strip() == link

        # the invited person, in their own browser: password, then signed in
        member = await person(browser, size)
        await member.goto(link)
        await member.get_by_label("Password", exact=True).fill("short")
        await member.get_by_label("Password again").fill("short")
        await member.get_by_role("button", name="Set password and sign in").click()
        await member.get_by_text("Use at least 8 characters.").wait_for()
        assert await member.get_by_label("Password", exact=True).get_attribute("aria-invalid")
        await checked(member)
        await join(member, link, MEMBER, "Plant Co")
        await checked(member)
        await go(member, "Templates", "Templates")

        # the link works once
        stranger = await person(browser, size)
        await stranger.goto(link)
        await stranger.get_by_role("heading", name="This invitation does not work").wait_for()
        await checked(stranger)

        # change role: installer → operator, who cannot add devices
        await go(owner, "Members", "Members")
        invited = row(owner, MEMBER)
        await invited.locator(".member-head").get_by_text("installer", exact=True).wait_for()
        await invited.get_by_text("can add devices", exact=True).wait_for()
        await owner.get_by_label(f"Role of {MEMBER}", exact=True).select_option("operator")
        await owner.get_by_role("button", name=f"Change role of {MEMBER}").click()
        await owner.get_by_role("status").filter(has_text="Role changed.").wait_for()
        await checked(owner)
        invited = row(owner, MEMBER)
        await invited.locator(".member-head").get_by_text("operator", exact=True).wait_for()
        await invited.get_by_text("cannot add devices", exact=True).wait_for()
        assert await owner.get_by_label(f"Role of {MEMBER}", exact=True).input_value() == "operator"

        # remove: a confirmation naming the member; Cancel keeps them
        await owner.get_by_role("link", name=f"Remove {MEMBER}").click()
        await owner.get_by_role("heading", name=f"Remove {MEMBER}?").wait_for()
        await owner.get_by_text("signed out of the console and the API at once").wait_for()
        await checked(owner)
        await owner.get_by_role("link", name="Cancel").click()
        await owner.get_by_role("heading", name="Members", exact=True).wait_for()
        await row(owner, MEMBER).wait_for()
        await owner.get_by_role("link", name=f"Remove {MEMBER}").click()
        await owner.get_by_role("button", name=f"Remove {MEMBER}").click()
        await owner.get_by_role("status").filter(has_text="Member removed").wait_for()
        await checked(owner)
        assert await row(owner, MEMBER).count() == 0

        # the removed member's open page: the next click is sent to sign in
        await (
            member.get_by_role("navigation", name="Console")
            .get_by_role("link", name="Members")
            .click()
        )
        await member.get_by_role("button", name="Sign in").wait_for()
        assert member.url.startswith(console + "/sign-in")
        await checked(member)
        await member.goto(console + "/templates")
        assert member.url.startswith(console + "/sign-in")


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_a_viewer_sees_no_member_controls(console: str, size: dict[str, Any]) -> None:  # noqa: F811
    async with chromium() as browser:
        owner = await person(browser, size)
        await sign_up(owner, console, "owner@example.com", "Plant Co")
        await go(owner, "Members", "Members")
        link = await invite(owner, "viewer@example.com", "viewer")

        viewer = await person(browser, size)
        await join(viewer, link, "viewer@example.com", "Plant Co")
        await go(viewer, "Members", "Members")
        await row(viewer, "owner@example.com").get_by_text("owner", exact=True).wait_for()
        mine = row(viewer, "viewer@example.com")
        await mine.get_by_text("(you)").wait_for()
        await mine.get_by_text("cannot add devices", exact=True).wait_for()
        for name in ("Invite", "Change role", "Save organization"):
            assert await viewer.get_by_role("button", name=name).count() == 0, name
        assert await viewer.get_by_role("button", name="Change role of", exact=False).count() == 0
        assert await viewer.get_by_role("link", name="Remove", exact=False).count() == 0
        assert await viewer.get_by_role("combobox").count() == 0  # no role or invite selects
        assert await viewer.get_by_label("Their e-mail").count() == 0
        assert await viewer.get_by_label("Hotspot prefix").count() == 0
        await viewer.get_by_text("Blynk", exact=True).wait_for()  # the prefix, read only
        # the server refuses the manager's pages anyway
        await viewer.goto(f"{console}/members/invite-link?email=viewer%40example.com")
        assert await viewer.locator("#invite-link").count() == 0
