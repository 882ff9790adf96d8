"""Add device from a phone, no app: pick a template, get a setup link (button, copy, QR code) and
the AP name to join, and name the device once it is online.

The steps of ``provisioner/flow.py`` in the browser: template → token → (the device's own setup
page, on its AP) → result → name. The page left open follows the provisioning request with a
long poll of ``/add-device/<id>/status`` (``add_device.js``) and goes to ``/add-device/<id>``,
which says how it ended: the name form, or what went wrong with a button for a new setup link of
the same template. Without JavaScript the page's "Check now" link does the same.

Where the browser has Web Bluetooth (Chrome on Android and on computers), the link page also
offers "Find devices nearby (Bluetooth)" (``static/ble.js``): the phone speaks Blynk.Inject to the
device over Bluetooth LE with the same token, stays on its own network, and the same long poll
ends the wizard. The page carries what that needs (``ble_data``): the token (already in the
setup link on the same page), the cloud's host, the template, and the failure words of
``wire/errors.py`` keyed by code, with ``wire/inject.py``'s Blynk reason words mapped to codes.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import segno
from fastapi import Query
from fastapi.responses import JSONResponse, Response

from wifiprov.cloud import devices, provisioning, templates
from wifiprov.cloud.console import kit
from wifiprov.cloud.db.schema import NAME_LENGTH
from wifiprov.cloud.errors import Invalid, NotFound
from wifiprov.wire import inject
from wifiprov.wire.errors import EXPLANATIONS
from wifiprov.wire.naming import DEFAULT_PREFIX, ap_name

router = kit.router()
kit.nav("/add-device", "Add device", right="provision", order=40)

POLL_WAIT = 25.0  # seconds one status request may wait for the claim (under proxies' timeouts)


def example_ap_name(prefix: str | None, template_name: str) -> str:
    """The AP name devices of this template advertise, with ``XXXX`` for the chip's code."""
    try:
        return ap_name(prefix or DEFAULT_PREFIX, template_name, "XXXX")
    except ValueError:
        return f"{prefix or DEFAULT_PREFIX} {template_name}-XXXX"


def console_url(page: kit.PageContext, path: str) -> str:
    """``path`` on this console as the browser reached it (for the device page's way back)."""
    base = urlsplit(str(page.request.base_url))
    return urlunsplit((base.scheme, base.netloc, path, "", ""))


def with_next(setup_link: str, next_url: str) -> str:
    """The cloud's setup link with ``next=``: the device's page links back here when done."""
    return setup_link + "&" + urlencode({"next": next_url})


def qr_svg(link: str) -> str:
    """The link as an inline SVG QR code (dark on white, also readable in dark mode)."""
    qr = segno.make(link, error="m")
    svg: str = qr.svg_inline(scale=4, border=4, dark="#000", light="#fff", svgclass="qr",
                             title="QR code of the setup link")  # fmt: skip
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code of the setup link" ', 1)


def _failure_words() -> str:
    """For ``ble.js``: every failure code's words (what happened, what to do) and Blynk's
    ``net_fail``/``cloud_fail`` reason words mapped to our codes, as one JSON text (one table,
    ``wire/``'s, for the device's setup page, the CLI and this page)."""
    words = {str(code): [e.what, e.todo] for code, e in EXPLANATIONS.items() if code}
    reasons = {f"{kind} {reason}": code for (kind, reason), code in inject.REASON_CODES.items()}
    return json.dumps({"words": words, "reasons": reasons}, separators=(",", ":"))


FAILURE_WORDS = _failure_words()


def ble_data(template: dict[str, Any], made: dict[str, Any], ap: str) -> dict[str, str]:
    """The ``data-`` attributes of the Bluetooth step: what ``ble.js`` sends the device (token,
    host: Blynk's ``set`` has no port, the device uses its own) and checks (the template)."""
    return {
        "service": inject.SERVICE_UUID,
        "rx": inject.RX_UUID,
        "tx": inject.TX_UUID,
        "token": str(made["token"]),
        "host": str(made.get("host") or ""),
        "template-id": str(template["id"]),
        "template-name": str(template["name"]),
        "device-name": ap,
        "failures": FAILURE_WORDS,
    }


async def _template(page: kit.PageContext, template_id: str) -> dict[str, Any]:
    template = await templates.get_template(page.db, page.who, template_id, right="provision")
    if template["org_id"] != page.org_id:
        raise NotFound("not in the current organization")
    return template


async def _pick(page: kit.PageContext, status: int = 200, error: str = "") -> Response:
    rows = await templates.list_templates(page.db, page.who, page.org_id)
    prefix = page.org["hotspot_prefix"] if page.org else None
    choices = [{**t, "ap_name": example_ap_name(prefix, t["name"])} for t in rows]
    return page.render(
        "add_device/pick.html", status, title="Add device", rows=choices, error=error,
        can_manage=page.can("manage"),
    )  # fmt: skip


@router.get("/add-device")
async def pick(page: kit.Page) -> Response:
    """Step 1: which kind of device (its template)."""
    page.require("provision")
    return await _pick(page)


@router.post("/add-device")
async def create(page: kit.Page) -> Response:
    """Step 2: a new provisioning token for the template; the setup link, QR code and AP name.

    Also "a new setup link" after an expired or refused one: the same template, a new token.
    The token is shown on this response only (the cloud keeps its hash)."""
    page.require("provision")
    form = await page.form()
    template_id = form.get("template_id", "").strip()
    if not template_id:
        return await _pick(page, 400, "Choose the kind of device you are adding.")
    try:
        template = await _template(page, template_id)
    except NotFound:
        return await _pick(page, 400, "That template is not in this organization any more.")
    made = await provisioning.request_token(
        page.db, page.hasher, page.who, template["id"], page.settings
    )
    back = console_url(page, f"/add-device/{made['id']}")
    link = with_next(made["setup_link"], back)
    prefix = page.org["hotspot_prefix"] if page.org else None
    minutes = max(1, math.floor(page.settings.provisioning_ttl / 60))
    ap = example_ap_name(prefix, template["name"])
    return page.render(
        "add_device/link.html",
        title="Add device",
        tmpl=template,
        req=made,
        link=link,
        qr=qr_svg(link),
        ap=ap,
        ble=ble_data(template, made, ap),
        minutes=minutes,
        status_url=f"/add-device/{made['id']}/status",
        result_url=f"/add-device/{made['id']}",
    )


def _words(status: dict[str, Any], ttl: float) -> dict[str, str]:
    """What happened to a request, and what to do, in words."""
    state = status["status"]
    if state == "refused":
        return {
            "what": "The cloud refused the device: its firmware is for another template "
            f"({status['refused_reason']}).",
            "todo": "Choose the template this device's firmware was built for and get a new "
            "setup link; the device is back in setup mode with its WiFi network open.",
        }
    if state == "expired":
        minutes = max(1, math.floor(ttl / 60))
        return {
            "what": f"This setup link expired: a link works for {minutes} "
            f"minute{'s' if minutes != 1 else ''} and no device "
            "used it in time.",
            "todo": "Get a new setup link (same template) and open it on the phone connected to "
            "the device's WiFi network. The device is still in setup mode.",
        }
    if state == "pending":
        return {"what": "Waiting for the device to come online…", "todo": ""}
    return {"what": "The device is online in your account.", "todo": ""}


async def _status(page: kit.PageContext, request_id: int, wait: float) -> dict[str, Any]:
    if wait > 0:
        status = await provisioning.wait_for_claim(page.db, page.bus, page.who, request_id, wait)
    else:
        status = await provisioning.get_request(page.db, page.who, request_id)
    # the request's organization must be the current one (like every page of the console)
    template = await templates.get_template(page.db, page.who, status["template_id"])
    if template["org_id"] != page.org_id:
        raise NotFound("not in the current organization")
    status["template_name"] = template["name"]
    return status


@router.get("/add-device/{request_id}/status")
async def status_json(
    page: kit.Page,
    request_id: int,
    wait: float = Query(0, ge=0, le=POLL_WAIT),  # noqa: B008
) -> Response:
    """The request's status for the page's script: waits up to ``wait`` s for the claim."""
    status = await _status(page, request_id, wait)
    body = {
        "status": status["status"],
        "device_id": status["device_id"],
        "expires_in": max(0, round(status["expires_at"] - time.time())),
        **_words(status, page.settings.provisioning_ttl),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _result(
    page: kit.PageContext, request_id: int, status_code: int = 200, **extra: Any
) -> Response:
    status = await _status(page, request_id, 0)
    device = None
    if status["status"] == "claimed" and status["device_id"] is not None:
        try:
            device = await devices.get_device(page.db, page.who, status["device_id"])
        except NotFound:  # deleted since
            device = None
    values: dict[str, Any] = {"errors": {}, "name": device["name"] if device else "", **extra}
    return page.render(
        "add_device/result.html",
        status_code,
        title="Add device",
        state=status,
        device=device,
        words=_words(status, page.settings.provisioning_ttl),
        can_rename=page.can("operate"),
        can_provision=page.can("provision"),
        **values,
    )


@router.get("/add-device/{request_id}")
async def result(page: kit.Page, request_id: int) -> Response:
    """Step 3: how it went: name the device, or what went wrong and a new link."""
    return await _result(page, request_id)


@router.post("/add-device/{request_id}/name")
async def name(page: kit.Page, request_id: int) -> Response:
    """Step 4: the device's name."""
    form = await page.form()
    status = await _status(page, request_id, 0)
    if status["status"] != "claimed" or status["device_id"] is None:
        return await _result(page, request_id, 409)
    wanted = form.get("name", "").strip()
    error = ""
    if not wanted:
        error = "Name the device, e.g. where it is: “Kitchen thermostat”."
    elif len(wanted) > NAME_LENGTH:
        error = f"A name has at most {NAME_LENGTH} characters; this one has {len(wanted)}."
    if not error:
        try:
            device = await devices.rename(page.db, page.who, status["device_id"], wanted)
        except Invalid as exc:
            error = exc.message
        else:
            return page.render(
                "add_device/named.html", title="Device added", device=device,
                template_id=status["template_id"], can_provision=page.can("provision"),
            )  # fmt: skip
    return await _result(page, request_id, 400, errors={"name": error}, name=wanted)
