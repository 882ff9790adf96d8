"""The console's Templates pages in headless Chromium against a real `wifiprov cloud` process, on
SQLite and PostgreSQL, at 390x844 and 1280x800: create (with the server's error next to the
field), the template page (AP name, device.toml, #define lines, copy buttons onto the clipboard,
or the fallback when the clipboard is refused), rename, the too-long WiFi name warning, the
organization's hotspot prefix shown, a viewer without the create and edit buttons, and the
template's datastreams: added (the server's errors next to their fields first), edited, deleted,
a hostile name shown as text, and read-only for a viewer. axe-core passes on every page visited."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.console_support import SIZES, checked, clipboard, go, invite, join, person
from tests.browser.portal import chromium
from tests.browser.test_console_pages import console, sign_up  # noqa: F401 (console: a fixture)
from wifiprov.cloud.db.schema import DATASTREAM_NAME_LENGTH, NAME_LENGTH

LONG = "Greenhouse thermostat with humidity"  # "Blynk " + this + "-XXXX" is over 32 bytes
HOSTILE = '<img src=x onerror=alert(1)> & "q" 🚀 '  # HTML (a datastream name has no '/'), emoji
STREAM = HOSTILE + "é" * (DATASTREAM_NAME_LENGTH - len(HOSTILE))  # the longest datastream name


async def template_id(page: Any) -> str:
    match = re.fullmatch(r".*/templates/([^/?]+)(\?.*)?", page.url)
    assert match, page.url
    return match.group(1)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_create_show_copy_and_rename(console: str, size: dict[str, Any]) -> None:  # noqa: F811
    async with chromium() as browser:
        page = await person(browser, size)
        await sign_up(page, console, "owner@example.com", "Plant Co")
        await go(page, "Templates", "Templates")
        await page.get_by_text("No templates yet.").wait_for()

        # the server's validation, next to the field (the form has novalidate)
        name = page.get_by_label("Template name")
        await name.fill("x" * (NAME_LENGTH + 1))
        await page.get_by_role("button", name="Create template").click()
        await page.get_by_text(
            f"Name the template: 1 to {NAME_LENGTH} characters on one line."
        ).wait_for()
        name = page.get_by_label("Template name")
        assert await name.get_attribute("aria-invalid") == "true"
        assert f"1 to {NAME_LENGTH} characters" in await name.evaluate(
            "e => document.getElementById(e.getAttribute('aria-describedby').split(' ')[0])"
            ".textContent"
        )
        assert await name.input_value() == "x" * (NAME_LENGTH + 1)  # kept for correcting
        await checked(page)

        await name.fill("Thermostat")
        await page.get_by_role("button", name="Create template").click()
        await page.get_by_role("heading", name="Thermostat", exact=True).wait_for()
        await page.get_by_role("status").filter(has_text="Template created.").wait_for()
        tid = await template_id(page)
        await checked(page)
        await page.get_by_text("Blynk Thermostat-XXXX").first.wait_for()
        assert await page.get_by_text("The WiFi name is too long").count() == 0
        toml = (await page.locator("#toml").text_content()).strip()
        assert f'template_id = "{tid}"' in toml and 'template_name = "Thermostat"' in toml
        defines = (await page.locator("#defines").text_content()).strip()
        assert defines == (
            f'#define BLYNK_TEMPLATE_ID "{tid}"\n#define BLYNK_TEMPLATE_NAME "Thermostat"'
        )

        # copy buttons put the exact text on the clipboard
        await page.get_by_role("button", name="Copy device.toml").click()
        await page.get_by_role("status").filter(has_text="Copied: device.toml.").wait_for()
        assert (await clipboard(page)).strip() == toml
        await page.get_by_role("button", name="Copy the #define lines").click()
        await page.get_by_role("status").filter(has_text="Copied: the #define lines.").wait_for()
        assert (await clipboard(page)).strip() == defines

        # rename: a server error first, then a name too long for the WiFi name
        await page.get_by_role("link", name="Edit template").click()
        await page.get_by_role("heading", name="Edit template").wait_for()
        await checked(page)
        await page.get_by_label("Template name").fill("   ")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_text(
            f"Name the template: 1 to {NAME_LENGTH} characters on one line."
        ).wait_for()
        assert await page.get_by_label("Template name").get_attribute("aria-invalid") == "true"
        await checked(page)
        await page.get_by_label("Template name").fill(LONG)
        await page.get_by_role("button", name="Save").click()
        await page.get_by_role("heading", name=LONG, exact=True).wait_for()
        await page.get_by_role("status").filter(has_text="Template saved.").wait_for()
        assert await template_id(page) == tid  # the id never changes
        warning = page.get_by_role("note").filter(has_text="The WiFi name is too long")
        await warning.wait_for()
        full = f"Blynk {LONG}-XXXX"
        await warning.get_by_text(full, exact=True).wait_for()  # the name as asked
        advertised = page.locator("dt:has-text('WiFi name in setup mode') + dd code")
        really = (await advertised.text_content()).strip()
        assert really != full and really.startswith("Blynk Greenhouse") and really.endswith("-XXXX")
        assert len(really.encode()) <= 32
        await warning.get_by_text(really, exact=True).first.wait_for()  # what devices really use
        assert f'BLYNK_TEMPLATE_NAME "{LONG}"' in await page.locator("#defines").text_content()
        await checked(page)

        # the organization's hotspot prefix, edited on the Members page, shows on the template
        await go(page, "Members", "Members")
        await page.get_by_label("Hotspot prefix").fill("Acme")
        await page.get_by_role("button", name="Save organization").click()
        await page.get_by_role("status").filter(has_text="Organization saved.").wait_for()
        await page.goto(f"{console}/templates/{tid}")
        await page.get_by_text("Acme Greenhouse").first.wait_for()
        await go(page, "Templates", "Templates")
        await page.get_by_role("link", name=LONG).click()
        await page.get_by_role("heading", name=LONG, exact=True).wait_for()


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_copy_fallback_and_a_viewer_without_buttons(
    console: str,  # noqa: F811
    size: dict[str, Any],
) -> None:
    async with chromium() as browser:
        owner = await person(browser, size)
        await sign_up(owner, console, "owner@example.com", "Plant Co")
        await go(owner, "Templates", "Templates")
        await owner.get_by_label("Template name").fill("Lamp")
        await owner.get_by_role("button", name="Create template").click()
        await owner.get_by_role("heading", name="Lamp", exact=True).wait_for()
        tid = await template_id(owner)
        await owner.get_by_role("link", name="Add a datastream").click()
        await owner.get_by_label("Name", exact=True).fill("Brightness")
        await owner.get_by_label("Unit").fill("%")
        await owner.get_by_role("button", name="Add datastream").click()
        await owner.get_by_role("status").filter(has_text="Datastream added.").wait_for()
        await go(owner, "Members", "Members")
        link = await invite(owner, "viewer@example.com", "viewer")

        # the viewer's browser refuses the clipboard: the copy button selects the text instead
        viewer = await person(browser, size, clipboard=False)
        await join(viewer, link, "viewer@example.com", "Plant Co")
        await go(viewer, "Templates", "Templates")
        await viewer.get_by_role("link", name="Lamp").wait_for()
        assert await viewer.get_by_role("button", name="Create template").count() == 0
        assert await viewer.get_by_label("Template name").count() == 0
        await viewer.get_by_role("link", name="Lamp").click()
        await viewer.get_by_role("heading", name="Lamp", exact=True).wait_for()
        await checked(viewer)
        assert await viewer.get_by_role("link", name="Edit template").count() == 0
        # the datastreams, read-only
        await viewer.get_by_role("heading", name="Brightness", exact=True).wait_for()
        assert await facts(viewer, "Brightness") == {
            "Pin": "V0", "Type": "double", "Min": "none", "Max": "none", "Unit": "%"
        }  # fmt: skip
        for control in ("Add a datastream", "Edit datastream Brightness",
                        "Delete datastream Brightness"):  # fmt: skip
            assert await viewer.get_by_role("link", name=control).count() == 0, control
        await viewer.evaluate(  # a browser refusing the clipboard API and execCommand('copy')
            """() => {
              navigator.clipboard.writeText = () => Promise.reject(new Error('refused'));
              document.execCommand = () => false;
            }"""
        )
        await viewer.get_by_role("button", name="Copy device.toml").click()
        await viewer.get_by_role("status").filter(has_text="Could not copy").wait_for()
        selected = await viewer.evaluate("() => window.getSelection().toString()")
        assert selected.strip() == (await viewer.locator("#toml").text_content()).strip()
        assert f'template_id = "{tid}"' in selected
        # and the server refuses the edit pages anyway
        await viewer.goto(f"{console}/templates/{tid}/edit")
        assert await viewer.get_by_role("button", name="Save").count() == 0
        await viewer.goto(f"{console}/templates/{tid}/datastreams/new")
        await viewer.get_by_role("heading", name="Not allowed").wait_for()
        assert await viewer.get_by_role("button", name="Add datastream").count() == 0
        await viewer.goto(f"{console}/templates/{tid}/datastreams/delete?name=Brightness")
        await viewer.get_by_role("heading", name="Not allowed").wait_for()


async def add_template(page: Any, name: str) -> str:
    await go(page, "Templates", "Templates")
    await page.get_by_label("Template name").fill(name)
    await page.get_by_role("button", name="Create template").click()
    await page.get_by_role("heading", name=name, exact=True).wait_for()
    return await template_id(page)


async def facts(page: Any, name: str) -> dict[str, str]:
    """What the template page lists for the datastream ``name``: {Pin: V3, Type: ...}."""
    card = page.locator("li.datastream").filter(
        has=page.get_by_role("heading", name=name, exact=True)
    )
    pairs = await card.locator(".ds-facts > div").evaluate_all(
        "divs => divs.map(d => [d.querySelector('dt').textContent, d.querySelector('dd')"
        ".textContent])"
    )
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_datastreams_add_edit_and_delete(console: str, size: dict[str, Any]) -> None:  # noqa: F811
    async with chromium() as browser:
        page = await person(browser, size)
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await sign_up(page, console, "owner@example.com", "Plant Co")
        tid = await add_template(page, "Thermostat")
        section = page.locator("#datastreams")
        await section.get_by_text("No datastreams yet.").wait_for()
        await checked(page)

        # add: the server's errors next to their fields (the form has novalidate), all at once
        await page.get_by_role("link", name="Add a datastream").click()
        await page.get_by_role("heading", name="Add a datastream").wait_for()
        assert await page.get_by_label("Virtual pin").input_value() == "0"  # the first free one
        await checked(page)
        too_long = STREAM + "x" * (200 - len(STREAM))
        await page.get_by_label("Name", exact=True).fill(too_long)
        await page.get_by_label("Virtual pin").fill("V3")
        await page.get_by_label("Min").fill("5")
        await page.get_by_label("Max").fill("1")
        await page.get_by_role("button", name="Add datastream").click()
        await page.get_by_text("Min is larger than max.").wait_for()
        name = page.get_by_label("Name", exact=True)
        assert await name.get_attribute("aria-invalid") == "true"
        assert await name.input_value() == too_long  # kept for correcting
        error = await name.evaluate(
            "e => document.getElementById(e.getAttribute('aria-describedby').split(' ')[0])"
            ".textContent"
        )
        assert error.startswith(f"A datastream name is 1 to {DATASTREAM_NAME_LENGTH} characters")
        assert await page.get_by_label("Min").get_attribute("aria-invalid") == "true"
        assert await page.get_by_label("Virtual pin").get_attribute("aria-invalid") is None
        await checked(page)

        await name.fill(STREAM)
        await page.get_by_label("Type").select_option("double")
        await page.get_by_label("Min").fill("-40")
        await page.get_by_label("Max").fill("85.5")
        await page.get_by_label("Unit").fill("°C")
        await page.get_by_role("button", name="Add datastream").click()
        await page.get_by_role("status").filter(has_text="Datastream added.").wait_for()
        await page.get_by_role("heading", name=STREAM, exact=True).wait_for()
        assert await facts(page, STREAM) == {
            "Pin": "V3", "Type": "double", "Min": "-40", "Max": "85.5", "Unit": "°C"
        }  # fmt: skip
        assert await page.locator("main img").count() == 0 and dialogs == []  # text, not HTML
        await checked(page)

        # edit: a wrong pin first, then another pin and type without a max
        await page.get_by_role("link", name=f"Edit datastream {STREAM}").click()
        await page.get_by_role("heading", name=f"Edit datastream {STREAM}").wait_for()
        assert await page.get_by_label("Virtual pin").input_value() == "3"
        assert await page.get_by_label("Name", exact=True).count() == 0  # the name stays
        await checked(page)
        await page.get_by_label("Virtual pin").fill("256")
        await page.get_by_role("button", name="Save datastream").click()
        await page.get_by_text("The pin is V0..V255.").wait_for()
        assert await page.get_by_label("Virtual pin").get_attribute("aria-invalid") == "true"
        await checked(page)
        await page.get_by_label("Virtual pin").fill("4")
        await page.get_by_label("Type").select_option("integer")
        await page.get_by_label("Max").fill("")
        await page.get_by_role("button", name="Save datastream").click()
        await page.get_by_role("status").filter(has_text="Datastream saved.").wait_for()
        assert await facts(page, STREAM) == {
            "Pin": "V4", "Type": "integer", "Min": "-40", "Max": "none", "Unit": "°C"
        }  # fmt: skip

        # delete, after a confirmation naming it
        await page.get_by_role("link", name=f"Delete datastream {STREAM}").click()
        await page.get_by_role("heading", name=f"Delete datastream “{STREAM}”?").wait_for()
        await checked(page)
        await page.get_by_role("button", name=f"Delete datastream {STREAM}").click()
        await page.get_by_role("status").filter(has_text="Datastream deleted.").wait_for()
        await section.get_by_text("No datastreams yet.").wait_for()
        assert page.url.endswith(f"/templates/{tid}?ds=deleted#datastreams")
        assert dialogs == []
