"""Devices: the live list (presence by Server-Sent Events, filtered, paged) and the device page
(what the cloud knows, Blynk's menu actions with their outcomes, virtual pin writes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import Response, StreamingResponse

from wifiprov.cloud import accounts, devices, templates
from wifiprov.cloud.bus import DEVICE_PRESENCE, Bus, Message, Subscription
from wifiprov.cloud.console import kit
from wifiprov.cloud.db.schema import NAME_LENGTH
from wifiprov.cloud.errors import Invalid, NotDelivered, NotFound, TooLarge, Unauthorized

router = kit.router()
kit.nav("/devices", "Devices", right="view", order=20)

PER_PAGE = 100
HEARTBEAT = 15.0  # seconds between keep-alive comments (and session checks) on a stream
PIN_POLL = 1.0  # how often an open device page's stream looks for new pin values
QUEUE = 2000  # presence events a slow stream may lag behind before it is told to reload
MAX_VALUE = 1000

# Outcomes shown after an action, by code (a link cannot make the page say anything else).
OUTCOMES = {
    "renamed": ("good", "Renamed."),
    "reconfigure-delivered": (
        "good",
        "Sent; the device is back in setup mode: it advertises its hotspot for a new WiFi.",
    ),
    "reconfigure-offline": (
        "bad",
        "Device offline: it can only be told to reconfigure while online. Nothing was kept for "
        "later; hold its reset button for 10 s instead.",
    ),
    "reconfigure-refused": (
        "bad",
        "Not sent: the device's connection could not take the message.",
    ),
    "erased": (
        "good",
        "All device data erased: pin values, properties, events and reported info. The device "
        "and its token remain.",
    ),
    "pin-delivered": ("good", "Written and delivered on the device's live connection."),
    "pin-offline": (
        "bad",
        "Device offline: the value is stored, and the device gets it when it asks for its "
        "values (sync) after connecting.",
    ),
    "pin-refused": (
        "bad",
        "Stored, but not delivered: the device's connection could not take the message.",
    ),
    "deleted": (
        "good",
        "Device deleted: its token no longer works, and its connection (if any) was closed.",
    ),
}


# --- presence from the bus, fanned out to the open streams of this process ---------------------


class PresenceHub:
    """One bus subscription per process; every open stream gets its own queue."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.queues: set[asyncio.Queue[Message]] = set()
        self.sub: Subscription | None = None
        self.lock = asyncio.Lock()

    async def join(self) -> asyncio.Queue[Message]:
        async with self.lock:
            if self.sub is None:
                self.sub = await self.bus.subscribe(DEVICE_PRESENCE, self.on_presence)
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE)
        self.queues.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[Message]) -> None:
        self.queues.discard(queue)

    def on_presence(self, message: Message) -> None:
        for queue in list(self.queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # too far behind: start over from the database
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"resync": True})


HUBS: weakref.WeakKeyDictionary[Any, PresenceHub] = weakref.WeakKeyDictionary()


def hub_of(bus: Bus) -> PresenceHub:
    hub = HUBS.get(bus)
    if hub is None:
        hub = HUBS[bus] = PresenceHub(bus)
    return hub


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def still_allowed(page: kit.PageContext, org_id: int) -> bool:
    """The stream's session still works and its user is still in the organization."""
    try:
        who = await accounts.authenticate(page.db, page.hasher, page.session_token)
    except Unauthorized:
        return False
    except Exception:
        return True  # the database is away for a moment: keep the stream, check next time
    return org_id in who.roles


def event_stream(page: kit.PageContext, device_id: int | None = None) -> StreamingResponse:
    """Presence of the organization's devices (or of one device, with its pin values)."""
    org_id = page.org_id
    hub = hub_of(page.bus)

    async def lines() -> AsyncIterator[str]:
        queue = await hub.join()
        try:
            yield "retry: 2000\n\n"
            pins: dict[str, list[str]] | None = None
            beat = time.monotonic()
            while True:
                timeout = PIN_POLL if device_id is not None else HEARTBEAT
                try:
                    message: Message | None = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    message = None
                if message is not None:
                    if message.get("resync"):
                        yield sse("resync", {})
                    elif message.get("org_id") == org_id and (
                        device_id is None or message.get("device_id") == device_id
                    ):
                        yield sse(
                            "presence",
                            {
                                "id": message.get("device_id"),
                                "online": bool(message.get("online")),
                                "at": stamp(message.get("at")),
                            },
                        )
                if device_id is not None:
                    now_pins: dict[str, list[str]] | None
                    try:
                        now_pins = await devices.pins_of(page.db, device_id)
                    except Exception:
                        now_pins = pins
                    if now_pins is not None and now_pins != pins:
                        yield sse("pins", now_pins)
                        pins = now_pins
                if time.monotonic() - beat >= HEARTBEAT:
                    beat = time.monotonic()
                    if not await still_allowed(page, org_id):
                        yield sse("ended", {})
                        return
                    yield ": keep-alive\n\n"
        finally:
            hub.leave(queue)

    return StreamingResponse(
        lines(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- helpers ---------------------------------------------------------------------------------


def stamp(at: Any) -> str:
    """A time as the console shows it (UTC, to the second), or a dash."""
    if not at:
        return "—"
    when = dt.datetime.fromtimestamp(float(at), dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


async def device_of(page: kit.PageContext, device_id: int) -> dict[str, Any]:
    """The device, if it is in the current organization (404 otherwise, as for no device)."""
    found = await devices.get_device(page.db, page.who, device_id)
    if found["org_id"] != page.org_id:
        raise NotFound(f"no device {device_id} here")
    return found


async def template_names(page: kit.PageContext) -> dict[str, str]:
    rows = await templates.list_templates(page.db, page.who, page.org_id)
    return {str(r["id"]): str(r["name"]) for r in rows}


# --- the list --------------------------------------------------------------------------------


@router.get("/devices")
async def list_page(
    page: kit.Page, template: str = "", status: str = "", p: int = 1, outcome: str = ""
) -> Response:
    page.require("view")
    names = await template_names(page)
    template_id = template if template in names else None
    online = {"online": True, "offline": False}.get(status)
    p = max(1, min(p, 1_000_000))
    rows, total = await devices.page_of_devices(
        page.db,
        page.who,
        page.org_id,
        template_id=template_id,
        online=online,
        offset=(p - 1) * PER_PAGE,
        limit=PER_PAGE,
    )
    pages = max(1, -(-total // PER_PAGE))
    kept = {"template": template_id or "", "status": status if online is not None else ""}

    def link(number: int) -> str:
        query = {k: v for k, v in kept.items() if v}
        if number > 1:
            query["p"] = str(number)
        return "/devices" + ("?" + urlencode(query) if query else "")

    return page.render(
        "devices/list.html",
        title="Devices",
        rows=rows,
        total=total,
        names=names,
        filters=kept,
        number=p,
        pages=pages,
        previous=link(p - 1) if p > 1 else None,
        next_page=link(p + 1) if p < pages else None,
        first=(p - 1) * PER_PAGE + 1,
        outcome=OUTCOMES.get(outcome),
        stamp=stamp,
    )


@router.get("/devices/events")
async def list_events(page: kit.Page) -> Response:
    page.require("view")
    return event_stream(page)


# --- one device ------------------------------------------------------------------------------


async def show(
    page: kit.PageContext,
    device: dict[str, Any],
    status: int = 200,
    outcome: tuple[str, str] | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    names = await template_names(page)
    pins = await devices.pins_of(page.db, device["id"])
    return page.render(
        "devices/device.html",
        status,
        title=device["name"],
        device=device,
        template_name=names.get(device["template_id"], device["template_id"]),
        pins=pins,
        outcome=outcome,
        errors=errors or {},
        values=values or {},
        stamp=stamp,
        can_operate=page.can("operate"),
        can_manage=page.can("manage"),
    )


@router.get("/devices/{device_id:int}")
async def device_page(page: kit.Page, device_id: int, outcome: str = "") -> Response:
    device = await device_of(page, device_id)
    return await show(page, device, outcome=OUTCOMES.get(outcome))


@router.get("/devices/{device_id:int}/events")
async def device_events(page: kit.Page, device_id: int) -> Response:
    await device_of(page, device_id)
    return event_stream(page, device_id)


@router.post("/devices/{device_id:int}/rename")
async def rename(page: kit.Page, device_id: int) -> Response:
    device = await device_of(page, device_id)
    page.require("operate")
    form = await page.form()
    name = form.get("name", "").strip()
    if not 1 <= len(name) <= NAME_LENGTH:
        return await show(
            page,
            device,
            400,
            errors={"name": f"A name has 1 to {NAME_LENGTH} characters."},
            values={"name": form.get("name", "")},
        )
    await devices.rename(page.db, page.who, device_id, name)
    return page.redirect(f"/devices/{device_id}?outcome=renamed")


@router.post("/devices/{device_id:int}/reconfigure")
async def reconfigure(page: kit.Page, device_id: int) -> Response:
    await device_of(page, device_id)
    page.require("manage")
    try:
        await devices.reconfigure(page.db, page.bus, page.who, device_id)
        code = "reconfigure-delivered"
    except NotDelivered as exc:
        code = f"reconfigure-{exc.delivery['delivery']}"  # offline or refused
    return page.redirect(f"/devices/{device_id}?outcome={code}")


@router.get("/devices/{device_id:int}/erase")
async def erase_confirm(page: kit.Page, device_id: int) -> Response:
    device = await device_of(page, device_id)
    page.require("manage")
    return page.render(
        "devices/confirm.html", title=f"Erase {device['name']}", device=device, action="erase"
    )


@router.post("/devices/{device_id:int}/erase")
async def erase(page: kit.Page, device_id: int) -> Response:
    await device_of(page, device_id)
    page.require("manage")
    await devices.erase(page.db, page.bus, page.who, device_id)
    return page.redirect(f"/devices/{device_id}?outcome=erased")


@router.get("/devices/{device_id:int}/delete")
async def delete_confirm(page: kit.Page, device_id: int) -> Response:
    device = await device_of(page, device_id)
    page.require("manage")
    return page.render(
        "devices/confirm.html", title=f"Delete {device['name']}", device=device, action="delete"
    )


@router.post("/devices/{device_id:int}/delete")
async def delete(page: kit.Page, device_id: int) -> Response:
    await device_of(page, device_id)
    page.require("manage")
    await devices.delete_device(page.db, page.bus, page.who, device_id)
    return page.redirect("/devices?outcome=deleted")


@router.post("/devices/{device_id:int}/pin")
async def write_pin(page: kit.Page, device_id: int) -> Response:
    device = await device_of(page, device_id)
    page.require("operate")
    form = await page.form()
    errors: dict[str, str] = {}
    raw_pin = form.get("pin", "").strip().upper().removeprefix("V")
    value = form.get("value", "")
    pin = int(raw_pin) if raw_pin.isascii() and raw_pin.isdigit() and len(raw_pin) <= 3 else -1
    if not 0 <= pin <= devices.MAX_PIN:
        errors["pin"] = f"A virtual pin is a number from 0 to {devices.MAX_PIN}."
    if value == "":
        errors["value"] = "Enter a value to write."
    elif len(value) > MAX_VALUE or "\0" in value:
        errors["value"] = f"A value has at most {MAX_VALUE} characters."
    if not errors:
        try:
            result = await devices.write_pin(page.db, page.bus, page.who, device_id, pin, [value])
        except (TooLarge, Invalid) as exc:
            errors["value"] = exc.message[:1].upper() + exc.message[1:] + "."
        else:
            return page.redirect(f"/devices/{device_id}?outcome=pin-{result['delivery']}")
    return await show(page, device, 400, errors=errors, values=form)
