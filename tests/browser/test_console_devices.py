"""The console's Devices pages in headless Chromium against a real `wifiprov cloud` process with
real Blynk-protocol devices logged in, on SQLite and PostgreSQL: the list going offline live, the
device page's actions and their outcomes, pin writes both ways, names kept intact, viewers
without buttons (and refused), other organizations' 404s; at 390x844 and 1280x800."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import axe
from tests.browser.portal import PHONE, chromium
from tests.browser.test_console_pages import (
    DESKTOP,
    NO_SIDEWAYS,
    PASSWORD,
    UNNAMED,
    _principal,
    sign_up,
    tab,
)
from tests.e2e.test_provision_cli import PYTHON
from tests.integration.support import CPP_INFO, RawDevice, free_port, wait_http, with_template
from wifiprov.cloud import accounts
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import NAME_LENGTH
from wifiprov.wire.blynk import Command

# the most characters a device name has
WEIRD = '<img src=x onerror="alert(1)"> Küche 🌡️ ' + "z" * 160
assert len(WEIRD) == NAME_LENGTH


async def accessible(page: Any) -> None:
    """No serious or critical accessibility violations (axe-core)."""
    await axe.check(page)


class Cloud:
    def __init__(self, url: str, gateway: tuple[str, int], db_url: str) -> None:
        self.url, self.gateway, self.db_url = url, gateway, db_url

    async def api(self, email: str = "owner@example.com") -> httpx.AsyncClient:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.post(
                "/api/auth/sign-in", json={"email": email, "password": PASSWORD}
            )
        token = answer.json()["token"]
        return httpx.AsyncClient(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )

    async def device(self, name: str) -> tuple[int, str, RawDevice]:
        """A device claimed in the owner's organization and online: (id, token, device)."""
        async with await self.api() as api:
            org_id = (await api.get("/api/me")).json()["organizations"][0]["id"]
            made = await api.post(f"/api/orgs/{org_id}/templates", json={"name": "Thermostat"})
            template_id = made.json()["id"]
            request = (await api.post(f"/api/templates/{template_id}/provisioning")).json()
            device = await RawDevice.connect(self.gateway)
            assert await device.login(request["token"]) == 200
            await device.send(Command.INTERNAL, 2, *with_template(CPP_INFO, template_id))
            assert (await device.recv()) is not None
            status = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
            device_id = int(status["device_id"])
            assert (await api.patch(f"/api/devices/{device_id}", json={"name": name})).is_success
        TOKENS[device_id] = request["token"]
        return device_id, request["token"], device

    async def user(self, email: str, role: str | None) -> None:
        db = Database(self.db_url)
        try:
            user_id = await accounts.create_user(db, email, PASSWORD)
            owner = await _principal(db)
            if role is None:  # a user of another organization
                await accounts.create_org(db, "Elsewhere", user_id)
            else:
                await accounts.set_member(db, owner, next(iter(owner.roles)), email, role)
        finally:
            await db.close()


@pytest.fixture
async def cloud(db_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    """A fresh `wifiprov cloud` process with a gateway for devices."""
    http, gateway = free_port(), free_port()
    env = {**os.environ, "WIFIPROV_CONFIG_DIR": str(tmp_path / "config")}
    log = (tmp_path / "cloud.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *PYTHON, "cloud", "--db", db_url, "--http", f"127.0.0.1:{http}",
        "--gateway", f"127.0.0.1:{gateway}", "--public-host", "127.0.0.1",
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{http}"
    try:
        await wait_http(url, lambda: proc.returncode is not None)
        yield Cloud(url, ("127.0.0.1", gateway), db_url)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
        log.close()


async def sign_in(page: Any, url: str, email: str) -> None:
    await page.goto(url + "/sign-in")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url + "/")


async def test_live_list_and_pins_on_a_phone(cloud: Cloud) -> None:
    async with chromium() as browser:
        page = await tab(browser, PHONE)
        await sign_up(page, cloud.url, "owner@example.com", "Home")
        device_id, _, device = await cloud.device(WEIRD)
        await page.get_by_role("link", name="Devices").first.click()
        await page.get_by_role("heading", name="Devices").wait_for()
        item = page.get_by_role("listitem").filter(has=page.get_by_role("link", name=WEIRD))
        await item.get_by_text("Online", exact=True).wait_for()
        assert await page.evaluate(NO_SIDEWAYS) and await page.evaluate(UNNAMED) == []
        await accessible(page)
        await page.locator("[data-live]").get_by_text("live").wait_for()
        await page.evaluate("window.notReloaded = true")
        device.close()  # the device goes away: the list says so without a reload
        await item.get_by_text("Offline", exact=True).wait_for(timeout=5000)
        assert await page.evaluate("window.notReloaded === true")

        # back online, then the device page: a pin write reaches the device
        device = await _relogin(cloud, device_id)
        await item.get_by_text("Online", exact=True).wait_for(timeout=5000)
        await item.get_by_role("link", name=WEIRD).click()
        await page.get_by_role("heading", name=WEIRD).wait_for()
        assert await page.evaluate(NO_SIDEWAYS) and await page.evaluate(UNNAMED) == []
        await accessible(page)
        await page.get_by_label("Virtual pin").fill("V1")
        await page.get_by_label("Value", exact=True).fill("42 <b>")
        await page.get_by_role("button", name="Write").click()
        await page.get_by_text("Written and delivered on the device's live connection.").wait_for()
        frame = await device.recv()
        assert frame is not None and frame.body == b"vw\x001\x0042 <b>"
        pins = page.get_by_role("table", name="Pin values")
        await pins.get_by_role("row", name="V1 42 <b>").wait_for()
        box = await page.get_by_role("button", name="Write").bounding_box()
        assert box is not None and box["height"] >= 44

        # the device's own write appears on the open page
        await page.locator("[data-live]").get_by_text("live").wait_for()
        await device.send(Command.HARDWARE, 9, "vw", 5, "21.5 °C")
        await pins.get_by_role("row", name="V5 21.5 °C").wait_for(timeout=5000)
        device.close()


async def _relogin(cloud: Cloud, device_id: int) -> RawDevice:
    # the device's token is only known to the device: ask the test's record of it
    token = TOKENS[device_id]
    device = await RawDevice.connect(cloud.gateway)
    assert await device.login(token) == 200
    return device


TOKENS: dict[int, str] = {}


async def test_actions_roles_and_other_organizations(cloud: Cloud) -> None:
    async with chromium() as browser:
        page = await tab(browser, DESKTOP)
        await sign_up(page, cloud.url, "owner@example.com", "Home")
        device_id, _, device = await cloud.device(WEIRD)
        await page.goto(f"{cloud.url}/devices/{device_id}")
        await page.get_by_role("heading", name=WEIRD).wait_for()
        await accessible(page)

        await page.get_by_role("button", name="Reconfigure").click()
        await page.get_by_role("status").get_by_text("back in setup mode").wait_for()
        frame = await device.recv()
        assert frame is not None and frame.body == b"dbg\x00config start"

        await page.get_by_label("Device name").fill("Kitchen 🍳")
        await page.get_by_role("button", name="Rename").click()
        await page.get_by_role("heading", name="Kitchen 🍳").wait_for()
        await page.get_by_role("status").get_by_text("Renamed.").wait_for()

        device.close()
        await page.get_by_text("Offline", exact=True).wait_for()  # live, on the device page
        await page.get_by_role("button", name="Reconfigure").click()
        await page.get_by_role("status").get_by_text("Device offline").wait_for()

        await page.get_by_role("link", name="Erase all device data").click()
        await page.get_by_role("heading", name="Erase all data of “Kitchen 🍳”?").wait_for()
        await accessible(page)
        await page.get_by_role("button", name="Erase all data of Kitchen 🍳").click()
        await page.get_by_role("status").get_by_text("All device data erased").wait_for()

        # a viewer sees the device but no buttons, and is refused anyway
        await cloud.user("viewer@example.com", "viewer")
        await cloud.user("stranger@example.com", None)
        viewer = await tab(browser, PHONE)
        await sign_in(viewer, cloud.url, "viewer@example.com")
        await viewer.goto(f"{cloud.url}/devices/{device_id}")
        await viewer.get_by_role("heading", name="Kitchen 🍳").wait_for()
        for name in ("Write", "Rename", "Reconfigure"):
            assert await viewer.get_by_role("button", name=name).count() == 0
        for name in ("Erase all device data", "Delete device"):
            assert await viewer.get_by_role("link", name=name).count() == 0
        csrf = await viewer.locator("form.sign-out input[name=csrf]").input_value()
        refused = await viewer.request.post(
            f"{cloud.url}/devices/{device_id}/delete", form={"csrf": csrf}
        )
        assert refused.status == 403
        await accessible(viewer)

        # a user of another organization: 404 on this one's device URLs
        stranger = await tab(browser, DESKTOP)
        await sign_in(stranger, cloud.url, "stranger@example.com")
        for path in ("", "/erase", "/delete", "/events"):
            reply = await stranger.goto(f"{cloud.url}/devices/{device_id}{path}")
            assert reply is not None and reply.status == 404, path
        await stranger.get_by_text("There is nothing here.").wait_for()
        await stranger.goto(cloud.url + "/")
        csrf = await stranger.locator("form.sign-out input[name=csrf]").input_value()
        for action in ("rename", "reconfigure", "erase", "delete", "pin"):
            reply = await stranger.request.post(
                f"{cloud.url}/devices/{device_id}/{action}",
                form={"csrf": csrf, "name": "x", "pin": "1", "value": "1"},
            )
            assert reply.status == 404, action

        # delete, with a confirmation naming the device
        await page.goto(f"{cloud.url}/devices/{device_id}")
        await page.get_by_role("link", name="Delete device").click()
        await page.get_by_role("heading", name="Delete “Kitchen 🍳”?").wait_for()
        await page.get_by_role("button", name="Delete Kitchen 🍳").click()
        await page.get_by_role("status").get_by_text("Device deleted").wait_for()
        assert await page.get_by_role("link", name="Kitchen 🍳").count() == 0
