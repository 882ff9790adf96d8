"""Add device from a phone, no app, in network namespaces (tests/netns/netlab.py): one headless
Chromium plays the phone. It runs inside the phone's namespace (Playwright starts it through
``ip netns exec``, talking to it over a pipe, so moving the phone moves the browser's network and
nothing else), and the phone's network moves under it as a person's WiFi does: at home (the link
to the cloud) it signs in to the console and gets the setup link; it joins the device's access
point (DHCP and DNS from dnsmasq, a real `wifiprov device --radio sim` behind 192.168.4.1), where
it has no way to the cloud, and opens the link in a second tab; then it goes back home. The
console tab stays open all along: its long poll fails while the phone is away ("waiting for this
phone to be back on your WiFi"), it notices the claim once the phone is home, and the device is
named there. Failure variants: a wrong WiFi password (the setup page says so; the retry works),
the phone leaving before it sent anything (the device keeps its AP; the console says what to do;
going back finishes it), and an expired link (a cloud with a short ``--provisioning-ttl``; the
console offers a new link, which then works)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.browser.portal import CHROMIUM, CHROMIUM_ARGS, PHONE, PortalPage, check_browser
from tests.netns import netlab
from wifiprov.wire.errors import explain

AWAY = "Waiting for this phone to be back on your WiFi…"


@dataclass
class Phone:
    """The phone's one browser: the console tab, and the pid of its Chromium."""

    context: Any
    console: Any
    pid: int


def chromium_pids(net: netlab.Lab) -> list[int]:
    """Chromium's processes in the phone's namespace (oldest first)."""
    listed = subprocess.run(
        [net.tools["ip"], "netns", "pids", net.phone], capture_output=True, text=True, timeout=30
    ).stdout.split()
    pids = []
    for pid in listed:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if "chrom" in Path(exe).name:
            pids.append(int(pid))
    return sorted(pids)


@asynccontextmanager
async def phone_browser(net: netlab.Lab, tmp: Path) -> AsyncIterator[Phone]:
    """Chromium in the phone's namespace, a phone-sized tab on the console, signed in."""
    check_browser()
    from playwright.async_api import async_playwright

    wrapper = tmp / "chromium-in-phone-ns"
    wrapper.write_text(
        f'#!/bin/sh\nexec {net.tools["ip"]} netns exec {net.phone} {CHROMIUM} "$@"\n'
    )
    wrapper.chmod(0o755)
    async with async_playwright() as pw:
        browser: Any = await pw.chromium.launch(
            executable_path=str(wrapper), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            pids = chromium_pids(net)
            assert pids, "Chromium is not running in the phone's namespace"
            context = await browser.new_context(**PHONE)
            console = await context.new_page()
            console.set_default_timeout(15_000)
            await console.goto(net.cloud_url + "/")
            await console.get_by_label("E-mail").fill(netlab.OWNER_EMAIL)
            await console.get_by_label("Password").fill(netlab.OWNER_PASSWORD)
            await console.get_by_role("button", name="Sign in").click()
            await console.get_by_role("link", name="Add device").first.wait_for()
            yield Phone(context, console, pids[0])
            assert pids[0] in chromium_pids(net), "the phone's Chromium did not last the test"
        finally:
            await browser.close()


async def move(net: netlab.Lab, network: str) -> str | None:
    return await asyncio.to_thread(netlab.phone_moves_to, net, network)


def start(net: netlab.Lab, *cloud_options: str) -> netlab.Process:
    """dnsmasq on the AP, the cloud, the device (its AP open); the phone at home."""
    net.start_dnsmasq(captive=True)
    if cloud_options:
        netlab.start_cloud_with(net, *cloud_options)
    else:
        net.start_cloud()
    device = net.start_device()
    netlab.phone_moves_to(net, "home")
    return device


async def new_link(console: Any, shots: Path, name: str) -> str:
    """Add device → Lamp: the setup link page; returns the link."""
    await console.get_by_role("link", name="Add device").first.click()
    await console.get_by_role("heading", name="Add device").wait_for()
    await console.get_by_role("button", name="Lamp").click()
    await console.get_by_role("heading", name="Add a Lamp").wait_for()
    await console.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    return str(await console.get_by_role("link", name="Open the setup link").get_attribute("href"))


def token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def join_and_open(net: netlab.Lab, phone: Phone, link: str) -> PortalPage:
    """The phone joins the device's AP and opens the setup link in a new tab; the console tab
    notices it lost the cloud."""
    address = await move(net, "ap")
    assert address and address.startswith(net.AP_PREFIX), address
    setup = PortalPage(await phone.context.new_page())
    setup.page.set_default_timeout(15_000)
    assert await setup.open(link) == link
    progress = phone.console.locator("#progress-text")
    # the long poll in flight when the phone left, or the next one, fails: the page says why
    await phone.console.wait_for_function(
        "t => document.getElementById('progress-text').textContent === t",
        arg=AWAY,
        timeout=60_000,
    )
    assert await progress.text_content() == AWAY
    return setup


async def connect(setup: PortalPage, password: str, timeout: float = 90) -> Any:
    await setup.choose(netlab.HOME_SSID)
    await setup.fill(**{"pass": password})
    await setup.submit()
    return await setup.result(timeout=timeout)


async def name_it(net: netlab.Lab, phone: Phone, result_page: str, shots: Path) -> None:
    """Back home: the console tab, left open, asks for the name; the device is named."""
    console = phone.console
    began = time.monotonic()
    await console.get_by_role("heading", name="Your Lamp is online").wait_for(timeout=60_000)
    noticed = time.monotonic() - began
    assert console.url == result_page
    await console.screenshot(path=str(shots / "name.png"), full_page=True)
    await console.get_by_label("Device name").fill("Hall lamp")
    await console.get_by_role("button", name="Save the name").click()
    await console.get_by_role("heading", name="Device added").wait_for()
    await console.get_by_text("“Hall lamp” is in your account and online").wait_for()
    await console.screenshot(path=str(shots / "added.png"), full_page=True)
    devices = await asyncio.to_thread(net.api, "GET", "/api/devices")
    assert [(d["name"], d["online"]) for d in devices] == [("Hall lamp", True)], devices
    assert noticed < 30, f"the console noticed the claim {noticed:.1f} s after the phone was home"


async def test_the_phone_wizard_across_networks_with_a_wrong_password_first(
    net: netlab.Lab, shots: Path, tmp_path: Path
) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    device = start(net)
    async with phone_browser(net, tmp_path) as phone:
        link = await new_link(phone.console, shots, "link")
        result_page = parse_qs(urlsplit(link).query)["next"][0]
        assert result_page.startswith(net.cloud_url + "/add-device/")
        setup = await join_and_open(net, phone, link)
        await phone.console.screenshot(path=str(shots / "console-away.png"), full_page=True)

        failed = await connect(setup, "not the password")
        assert failed.outcome == "failed", (failed, device.output()[-3000:])
        assert explain(722).what in failed.status and failed.form_enabled, failed
        await setup.screenshot(shots / "phone-wrong-password.png")
        done = await connect(setup, netlab.HOME_PASSWORD)
        assert done.outcome == "done", (done, device.output()[-3000:])
        assert "rejoin your WiFi" in done.status
        back = setup.page.get_by_role("link", name="Back to your account")
        assert await back.get_attribute("href") == result_page
        await setup.screenshot(shots / "phone-done.png")
        assert phone.console.url == net.cloud_url + "/add-device"  # still the link page

        await move(net, "home")
        await name_it(net, phone, result_page, shots)


async def test_the_phone_leaving_midway_is_explained_and_going_back_finishes(
    net: netlab.Lab, shots: Path, tmp_path: Path
) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    device = start(net)
    ap = net.portal_json("/board_info.json")["ssid"]
    async with phone_browser(net, tmp_path) as phone:
        link = await new_link(phone.console, shots, "link")
        result_page = parse_qs(urlsplit(link).query)["next"][0]
        setup = await join_and_open(net, phone, link)
        await setup.choose(netlab.HOME_SSID)  # ... and the person walks away before Connect

        await move(net, "home")
        progress = phone.console.locator("#progress-text")
        await phone.console.wait_for_function(
            "t => document.getElementById('progress-text').textContent !== t",
            arg=AWAY,
            timeout=30_000,
        )
        said = str(await progress.text_content())
        await phone.console.screenshot(path=str(shots / "console-back-too-early.png"))
        assert "Blynk Lamp-XXXX" in said and "setup link" in said, said  # what to do
        assert phone.console.url == net.cloud_url + "/add-device"  # no need to start over
        assert device.alive() and net.portal_json("/board_info.json")["ssid"] == ap  # AP kept

        # doing what it says: the same tab, the same link, finished
        await move(net, "ap")
        await setup.open(link)
        done = await connect(setup, netlab.HOME_PASSWORD)
        assert done.outcome == "done", (done, device.output()[-3000:])
        await move(net, "home")
        await name_it(net, phone, result_page, shots)


async def test_an_expired_link_is_explained_and_a_new_one_works(
    net: netlab.Lab, shots: Path, tmp_path: Path
) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    ttl = 20
    device = start(net, "--provisioning-ttl", str(ttl))
    async with phone_browser(net, tmp_path) as phone:
        made = time.monotonic()
        link = await new_link(phone.console, shots, "link")
        setup = await join_and_open(net, phone, link)
        await setup.choose(netlab.HOME_SSID)
        await asyncio.sleep(max(0.0, made + ttl + 2 - time.monotonic()))  # a long coffee
        failed = await connect(setup, netlab.HOME_PASSWORD)
        assert failed.outcome == "failed", (failed, device.output()[-3000:])
        assert failed.steps["wifi"] == "ok" and failed.steps["cloud"] == "bad", failed
        await setup.screenshot(shots / "phone-expired.png")

        await move(net, "home")
        console = phone.console
        await console.get_by_role("heading", name="The setup link expired").wait_for(timeout=60_000)
        await console.get_by_text("Get a new setup link").wait_for()
        await console.screenshot(path=str(shots / "console-expired.png"), full_page=True)
        await console.get_by_role("button", name="New setup link for Lamp").click()
        await console.get_by_role("heading", name="Add a Lamp").wait_for()
        fresh = str(
            await console.get_by_role("link", name="Open the setup link").get_attribute("href")
        )
        assert token(fresh) != token(link)

        # the new link, at once: the device is back in setup mode with its AP
        setup = await join_and_open(net, phone, fresh)
        done = await connect(setup, netlab.HOME_PASSWORD)
        assert done.outcome == "done", (done, device.output()[-3000:])
        await move(net, "home")
        await name_it(net, phone, parse_qs(urlsplit(fresh).query)["next"][0], shots)
