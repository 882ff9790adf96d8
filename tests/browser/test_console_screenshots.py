"""Screenshots of the console at phone size (390x844), one per step, for docs/console.md and the
README: sign-up, home, templates, a template, members, and Add device (pick a template, the setup
link with its QR code, the device's own setup page on the phone, naming the device, added), then
the Devices list and a device page when the console has them.

`make screenshots` runs this module with WIFIPROV_CONSOLE_SHOTS=docs/console and commits nothing
by itself; under `make test` the pictures go to the test's temporary folder, so the run (and the
PNG optimizer) is tested too. Each PNG is reduced to a 64-colour palette (Pillow) to stay small."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.browser.conftest import Lab
from tests.browser.console_support import invite
from tests.browser.portal import chromium
from tests.browser.test_console_pages import console, sign_up  # noqa: F401 (console: a fixture)
from tests.e2e.test_provision_cli import HOME, HOME_PASSWORD, PASSWORD

# a phone's viewport at 1 CSS pixel per image pixel: small files that read well in the docs
SHOT = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
WIDTH = 390
COLOURS = 64
LIMIT = 60_000  # bytes per PNG


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the PNGs go: $WIFIPROV_CONSOLE_SHOTS (`make screenshots`), else a temporary folder."""
    folder = Path(os.environ.get("WIFIPROV_CONSOLE_SHOTS") or tmp_path / "console-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def small_png(raw: Path, dest: Path) -> int:
    """``raw`` as a palette PNG at most 390 px wide (a phone's 2x page is halved); its size."""
    with Image.open(raw) as image:
        image = image.convert("RGB")
        if image.width > WIDTH:
            image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
        image = image.quantize(COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        image.save(dest, optimize=True)
    raw.unlink()
    return dest.stat().st_size


async def shoot(page: Any, out: Path, name: str) -> None:
    raw = out / f".{name}.raw.png"
    await page.screenshot(path=str(raw))  # the viewport: what the phone shows
    size = small_png(raw, out / f"{name}.png")
    assert size < LIMIT, f"{name}.png is {size} bytes"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_sign_up(console: str, out: Path) -> None:  # noqa: F811
    async with chromium() as browser:
        page = await (await browser.new_context(**SHOT)).new_page()
        await page.goto(console + "/")
        await page.get_by_label("Your e-mail").fill("owner@example.com")
        await page.get_by_label("Organization").fill("Plant Co")
        await shoot(page, out, "01-sign-up")
        await page.get_by_label("Password", exact=True).fill("console password 1")
        await page.get_by_label("Password again").fill("console password 1")
        await page.get_by_role("button", name="Create and sign in").click()
        await page.get_by_role("heading", name="Plant Co").wait_for()
    assert (out / "01-sign-up.png").exists()


async def test_every_step_at_phone_size(lab: Lab, out: Path) -> None:
    await lab.world.api("POST", "/api/orgs/1/templates", json={"name": "Thermostat"})
    device = await lab.device()
    async with chromium() as browser:
        page = await (await browser.new_context(**SHOT)).new_page()
        page.set_default_timeout(15_000)
        await page.goto(lab.world.cloud_url + "/")
        await page.get_by_label("E-mail").fill("owner@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("link", name="Add device").first.wait_for()
        await shoot(page, out, "02-home")

        nav = page.get_by_role("navigation", name="Console")
        await nav.get_by_role("link", name="Templates").click()
        await page.get_by_role("heading", name="Templates", exact=True).wait_for()
        await shoot(page, out, "03-templates")
        await page.get_by_role("link", name="Lamp", exact=True).click()
        await page.get_by_role("heading", name="Lamp", exact=True).wait_for()
        await shoot(page, out, "04-template")

        await nav.get_by_role("link", name="Members").click()
        await page.get_by_role("heading", name="Members", exact=True).wait_for()
        await invite(page, "ada@example.com", "operator")
        await nav.get_by_role("link", name="Members").click()
        await page.get_by_role("heading", name="Members", exact=True).wait_for()
        await shoot(page, out, "05-members")

        await page.goto(lab.world.cloud_url + "/")
        await page.get_by_role("link", name="Add device").first.click()
        await page.get_by_role("heading", name="Add device").wait_for()
        await shoot(page, out, "06-add-device-pick")
        await page.get_by_role("button", name="Lamp", exact=True).click()
        await page.get_by_role("heading", name="Add a Lamp").wait_for()
        link = str(await page.get_by_role("link", name="Open the setup link").get_attribute("href"))
        await page.get_by_text("Show a QR code").click()
        qr = page.get_by_role("img", name="QR code of the setup link")
        await qr.wait_for()
        await qr.scroll_into_view_if_needed()
        await shoot(page, out, "07-add-device-link")

        async with lab.browser(device) as phone:  # the phone, on the device's access point
            await phone.open(link)
            await phone.choose(HOME)
            await phone.fill(**{"pass": HOME_PASSWORD})
            await phone.submit()
            done = await phone.result(timeout=90)
            assert done.outcome == "done", (done, device.log_text())
            await shoot(phone.page, out, "08-add-device-phone-done")

        await page.get_by_role("heading", name="Your Lamp is online").wait_for(timeout=30_000)
        await page.get_by_label("Device name").fill("Hall lamp")
        await shoot(page, out, "09-add-device-name")
        await page.get_by_role("button", name="Save the name").click()
        await page.get_by_role("heading", name="Device added").wait_for()
        await shoot(page, out, "10-add-device-added")

        # the Devices pages, when this console has them (a nav entry appears once they exist)
        if await nav.get_by_role("link", name="Devices").count():
            await nav.get_by_role("link", name="Devices").click()
            await page.get_by_role("heading", name="Devices", exact=True).wait_for()
            await page.get_by_role("link", name="Hall lamp").first.wait_for()
            await shoot(page, out, "11-devices")
            await page.get_by_role("link", name="Hall lamp").first.click()
            await page.get_by_role("heading", name="Hall lamp").wait_for()
            await shoot(page, out, "12-device")
