"""Add device from a phone, no app, in headless Chromium at 390x844: a real `wifiprov cloud`
process, a real `wifiprov device --radio sim` process, two browsers on loopback. The console tab
creates the setup link; a second browser plays the phone on the device's access point (every name
resolves to the device's portal, as its DNS does) and opens the link; the console tab, left open,
notices the claim and names the device. Failure variants: a wrong WiFi password (the setup page
says so, the retry works), a refused device and an expired link (the console says so and gives a
new link of the same template)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import axe
from tests.browser.conftest import Lab
from tests.browser.portal import PHONE, chromium
from tests.browser.test_console_pages import NO_SIDEWAYS, UNNAMED
from tests.e2e.test_provision_cli import HOME, HOME_PASSWORD, PASSWORD, start_world, stop_world
from wifiprov.wire.errors import explain

DESKTOP = {"viewport": {"width": 1280, "height": 800}}


async def checked(page: Any) -> None:
    """The page fits its screen, names every control, and passes axe-core."""
    assert await page.evaluate(NO_SIDEWAYS), page.url
    assert await page.evaluate(UNNAMED) == [], page.url
    await axe.check(page)


@asynccontextmanager
async def console_tab(lab: Lab, size: dict[str, Any] | None = None) -> AsyncIterator[Any]:
    """The console in a tab (phone-sized unless ``size``), signed in as the owner."""
    async with chromium() as browser:
        context = await browser.new_context(**(size or PHONE))
        page = await context.new_page()
        page.set_default_timeout(15_000)
        await page.goto(lab.world.cloud_url + "/")
        await page.get_by_label("E-mail").fill("owner@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("link", name="Add device").first.wait_for()
        yield page


async def start_adding(page: Any, shots: Path) -> str:
    """Add device → Lamp: the setup link page; returns the link."""
    await page.get_by_role("link", name="Add device").first.click()
    await page.get_by_role("heading", name="Add device").wait_for()
    await checked(page)
    await page.screenshot(path=str(shots / "1-pick.png"), full_page=True)
    await page.get_by_role("button", name="Lamp").click()
    await page.get_by_role("heading", name="Add a Lamp").wait_for()
    await checked(page)
    await page.screenshot(path=str(shots / "2-link.png"), full_page=True)
    return str(await page.get_by_role("link", name="Open the setup link").get_attribute("href"))


@pytest.mark.parametrize("screen", ["phone", "desktop"])
async def test_the_phone_wizard_end_to_end_with_a_wrong_password_first(
    db_lab: Lab, screen: str
) -> None:
    """The console on a phone (the usual case), or on a laptop that shows the link or its QR
    code while the phone does the rest; the cloud on SQLite and on PostgreSQL."""
    lab = db_lab
    lab.shots.mkdir(parents=True, exist_ok=True)
    device = await lab.device()
    async with console_tab(lab, PHONE if screen == "phone" else DESKTOP) as console:
        link = await start_adding(console, lab.shots)
        # what to join, and the link as a button, a copy field and a QR code
        await console.get_by_text("Settings → WiFi").wait_for()
        assert await console.locator("#ap-name").text_content() == "Blynk Lamp-XXXX"
        assert device.ap.startswith("Blynk Lamp-")
        assert await console.get_by_label("Setup link", exact=True).input_value() == link
        await console.get_by_role("button", name="Copy the link").click()
        await console.get_by_text("Copied.").wait_for()
        await console.get_by_text("Show a QR code").click()
        await console.get_by_role("img", name="QR code of the setup link").wait_for()
        query = parse_qs(urlsplit(link).query)
        result_page = query["next"][0]
        assert result_page.startswith(lab.world.cloud_url + "/add-device/")

        async with lab.browser(device) as phone:  # the phone, joined to the device's AP
            assert await phone.open(link) == link
            await phone.choose(HOME)
            await phone.fill(**{"pass": "not the password"})
            await phone.submit()
            failed = await phone.result(timeout=90)
            assert failed.outcome == "failed", (failed, device.log_text())
            assert explain(722).what in failed.status
            await phone.screenshot(lab.shots / "3-phone-wrong-password.png")
            assert console.url == lab.world.cloud_url + "/add-device"  # still waiting
            await phone.fill(**{"pass": HOME_PASSWORD})  # the retry, same page, same token
            await phone.submit()
            done = await phone.result(timeout=90)
            assert done.outcome == "done", (done, device.log_text())
            assert "rejoin your WiFi" in done.status
            back = phone.page.get_by_role("link", name="Back to your account")
            assert await back.get_attribute("href") == result_page
            await phone.screenshot(lab.shots / "4-phone-done.png")

        # the console tab, left open, noticed the claim: it asks for the device's name
        await console.get_by_role("heading", name="Your Lamp is online").wait_for(timeout=30_000)
        assert console.url == result_page
        await checked(console)
        await console.screenshot(path=str(lab.shots / "5-name.png"), full_page=True)
        await console.get_by_label("Device name").fill("Hall lamp")
        await console.get_by_role("button", name="Save the name").click()
        await console.get_by_role("heading", name="Device added").wait_for()
        await console.get_by_text("“Hall lamp” is in your account and online").wait_for()
        await checked(console)
        await console.screenshot(path=str(lab.shots / "6-added.png"), full_page=True)
    devices = await lab.online_devices()
    assert [(d["name"], d["online"]) for d in devices] == [("Hall lamp", True)]


async def test_a_refused_device_is_explained_and_a_new_link_offered(lab: Lab) -> None:
    lab.shots.mkdir(parents=True, exist_ok=True)
    other = await lab.world.api("POST", "/api/orgs/1/templates", json={"name": "Fan"})
    device = await lab.device("fan-1", "--template-id", other["id"])  # firmware of another kind
    async with console_tab(lab) as console:
        link = await start_adding(console, lab.shots)
        async with lab.browser(device) as phone:
            await phone.open(link)
            await phone.choose(HOME)
            await phone.fill(**{"pass": HOME_PASSWORD})
            await phone.submit()
            await phone.result(timeout=90)  # the device's page says what it can
        await console.get_by_role("heading", name="The device was refused").wait_for(timeout=60_000)
        await console.get_by_text("its firmware is for another template").wait_for()
        await checked(console)
        await console.screenshot(path=str(lab.shots / "refused.png"), full_page=True)
        await console.get_by_role("button", name="New setup link for Lamp").click()
        await console.get_by_role("heading", name="Add a Lamp").wait_for()
        fresh = await console.get_by_role("link", name="Open the setup link").get_attribute("href")
        assert token(fresh) != token(link)


def token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def test_an_expired_link_is_explained_and_a_new_one_made(tmp_path: Path, shots: Path) -> None:
    world = await start_world(tmp_path, "--provisioning-ttl", "3")
    lab = Lab(world, shots)
    lab.shots.mkdir(parents=True, exist_ok=True)
    try:
        async with console_tab(lab) as console:
            link = await start_adding(console, lab.shots)
            assert re.search(r"Works for 1 minute,", await console.content())
            heading = console.get_by_role("heading", name="The setup link expired")
            await heading.wait_for(timeout=30_000)  # the page noticed by itself
            await console.get_by_text("a link works for 1 minute and").wait_for()
            await checked(console)
            await console.screenshot(path=str(lab.shots / "expired.png"), full_page=True)
            await console.get_by_role("button", name="New setup link for Lamp").click()
            await console.get_by_role("heading", name="Add a Lamp").wait_for()
            fresh = await console.get_by_role("link", name="Open the setup link").get_attribute(
                "href"
            )
            assert token(fresh) != token(link)
    finally:
        await stop_world(world)


async def test_the_setup_page_opened_without_the_link_takes_it_pasted(lab: Lab) -> None:
    """A captive sign-in sheet opens the device's page without the token: the link pasted in
    "Device token" fills the token, host and port, and the way back appears when done."""
    device = await lab.device()
    link = await lab.setup_link() + "&next=http%3A%2F%2Fconsole.example%2Fadd-device%2F1"
    async with lab.browser(device) as phone:
        await phone.open("http://192.168.4.1/")
        await phone.page.get_by_text("You opened this page without a setup link").wait_for()
        assert "Add device page" in await phone.page.locator("#no-token").text_content()
        await phone.page.get_by_label("Device token").fill(link)
        assert await phone.page.get_by_label("Device token").input_value() == token(link)
        assert await phone.page.input_value("#host") == "127.0.0.1"
        assert await phone.page.input_value("#port") == parse_qs(urlsplit(link).query)["port"][0]
        assert not await phone.visible("#no-token")
        await phone.choose(HOME)
        await phone.fill(**{"pass": HOME_PASSWORD})
        await phone.submit()
        done = await phone.result(timeout=90)
        assert done.outcome == "done", (done, device.log_text())
        back = phone.page.get_by_role("link", name="Back to your account")
        assert await back.get_attribute("href") == "http://console.example/add-device/1"
    assert (await lab.online_devices())[0]["online"]
