"""Devices: their data, their presence in the database, and what users do to them (their logins
and claims: ``logins``)."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import delete, func, select, update

from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.bus import DEVICE_COMMANDS, Bus
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import (
    NAME_LENGTH,
    device_events,
    devices,
    pin_properties,
    pin_values,
)
from wifiprov.cloud.errors import Invalid, NotDelivered, NotFound, TooLarge
from wifiprov.cloud.logins import well_formed_token
from wifiprov.cloud.tokens import TokenHasher
from wifiprov.wire import blynk

MAX_PIN = 255
# Until a device reports its buff-in, assume the smallest buffer in use (Blynk's C++ library).
DEFAULT_BUFFER_IN = 256
RECONFIGURE = "config start"  # the Edgent console command that re-enters provisioning


async def clear_presence(db: Database, node: str) -> int:
    """Mark offline every device the database shows online on ``node``; how many there were."""
    async with db.begin() as conn:
        result = await conn.execute(
            update(devices)
            .where(devices.c.online_node == node)
            .values(online_node=None, last_seen=time.time())
        )
    return int(result.rowcount or 0)


async def save_info(db: Database, device_id: int, info: dict[str, str]) -> None:
    async with db.begin() as conn:
        await conn.execute(
            update(devices).where(devices.c.id == device_id).values(info=json.dumps(info))
        )


# --- what users see and do ---


def _public(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "org_id": row.org_id,
        "template_id": row.template_id,
        "name": row.name,
        "token_last4": row.token_last4,
        "created_at": row.created_at,
        "online": row.online_node is not None,
        "connected_at": row.connected_at,
        "last_seen": row.last_seen,
        "info": json.loads(row.info),
        # What the device's firmware reports (INTERNAL tmpl); a template other than the
        # device's own means its firmware was changed for another product's.
        "reported_template": row.reported_template,
        "template_mismatch": row.reported_template is not None
        and row.reported_template != row.template_id,
        "meta": json.loads(row.meta or "{}"),  # INTERNAL meta: Device UID, Hotspot Name ...
        "last_ip": row.last_ip,
        "last_error": row.last_error,  # why the cloud last closed it for a fault, or None
    }


async def device_row(db: Database, who: Principal, device_id: int, right: str) -> Any:
    """The device's row, when ``who`` has ``right`` on its organization (else NotFound or
    Forbidden)."""
    async with db.begin() as conn:
        row = (await conn.execute(select(devices).where(devices.c.id == device_id))).first()
    if row is None or row.org_id not in who.roles:
        raise NotFound(f"no device {device_id} in your organizations")
    who.require(row.org_id, right)
    return row


async def list_devices(
    db: Database, who: Principal, org_id: int | None = None
) -> list[dict[str, Any]]:
    orgs = [org_id] if org_id is not None else list(who.roles)
    for org in orgs:
        who.require(org, "view")
    async with db.begin() as conn:
        rows = await conn.execute(
            select(devices).where(devices.c.org_id.in_(orgs)).order_by(devices.c.id)
        )
        return [_public(r) for r in rows]


async def page_of_devices(
    db: Database,
    who: Principal,
    org_id: int,
    *,
    template_id: str | None = None,
    online: bool | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """One page of an organization's devices (by id), filtered by template and presence, and
    how many match in all (the console's list: thousands of devices, a page at a time)."""
    who.require(org_id, "view")
    where = [devices.c.org_id == org_id]
    if template_id is not None:
        where.append(devices.c.template_id == template_id)
    if online is not None:
        where.append(
            devices.c.online_node.is_not(None) if online else devices.c.online_node.is_(None)
        )
    async with db.begin() as conn:
        total = await conn.scalar(select(func.count()).select_from(devices).where(*where))
        rows = await conn.execute(
            select(devices).where(*where).order_by(devices.c.id).offset(offset).limit(limit)
        )
        return [_public(r) for r in rows], int(total or 0)


async def get_device(db: Database, who: Principal, device_id: int) -> dict[str, Any]:
    return _public(await device_row(db, who, device_id, "view"))


async def rename(db: Database, who: Principal, device_id: int, name: str) -> dict[str, Any]:
    await device_row(db, who, device_id, "operate")
    name = name.strip()
    if not 1 <= len(name) <= NAME_LENGTH:
        raise Invalid(f"the device name must have 1 to {NAME_LENGTH} characters")
    async with db.begin() as conn:
        await conn.execute(update(devices).where(devices.c.id == device_id).values(name=name))
    return await get_device(db, who, device_id)


async def _command(bus: Bus, device_id: int, kind: str, *args: str | int) -> None:
    """A command every node acts on (erased, deleted): nothing is sent to the device."""
    await bus.publish(DEVICE_COMMANDS, {"device_id": device_id, "kind": kind, "args": list(args)})


# How long a node holding the device has to say it delivered a message (over NATS a round trip;
# shorter when the database says the device is offline, in case a login is not written yet).
DELIVERY_TIMEOUT = 1.0
DELIVERY_TIMEOUT_OFFLINE = 0.25


async def ask_holder(
    bus: Bus,
    row: Any,
    subject: str,
    request: dict[str, Any],
    refused: str,
    keep: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Ask, over the bus, the node holding the device's live connection to act on ``request``
    (sent with the device's id), and say what happened, in the shape every route uses:
    ``delivered`` (true only when a live connection took it), ``delivery`` ("delivered",
    "offline" or "refused"), ``node`` and ``message`` in words (``refused`` when the node gives
    no reason); the reply's fields named in ``keep`` are passed on when delivered."""
    timeout = DELIVERY_TIMEOUT if row.online_node is not None else DELIVERY_TIMEOUT_OFFLINE
    reply = await bus.request(subject, {"device_id": row.id, **request}, timeout)
    if reply is None:
        return {
            "delivered": False,
            "delivery": "offline",
            "node": None,
            "message": "the device is offline: no live connection took the message",
        }
    if not reply.get("delivered"):
        return {
            "delivered": False,
            "delivery": "refused",
            "node": reply.get("node"),
            "message": str(reply.get("reason") or refused),
        }
    return {
        "delivered": True,
        "delivery": "delivered",
        "node": reply.get("node"),
        **{key: reply.get(key) for key in keep},
        "message": "sent on the device's live connection",
    }


async def _deliver(bus: Bus, row: Any, kind: str, *args: str | int) -> dict[str, Any]:
    """Send a message to the device through the node holding its live connection."""
    return await ask_holder(
        bus,
        row,
        DEVICE_COMMANDS,
        {"kind": kind, "args": list(args)},
        "the device's connection could not take the message (too large for it)",
    )


async def reconfigure(db: Database, bus: Bus, who: Principal, device_id: int) -> dict[str, Any]:
    """Tell an online device to re-enter provisioning, as Blynk's console does (INTERNAL dbg).
    Nothing is kept for later: not delivered is a Conflict."""
    row = await device_row(db, who, device_id, "manage")
    delivery = await _deliver(bus, row, "internal", "dbg", RECONFIGURE)
    if not delivery["delivered"]:
        raise NotDelivered(
            f"{delivery['message']}: it can only be told to reconfigure while online "
            "(hold its reset button for 10 s instead)",
            delivery,
        )
    return {"sent": RECONFIGURE, **delivery}


async def erase(db: Database, bus: Bus, who: Principal, device_id: int) -> None:
    """Erase all device data (values, properties, events, reported info); the device stays."""
    await device_row(db, who, device_id, "manage")
    await _command(bus, device_id, "erased")
    async with db.begin() as conn:
        await _delete_data(conn, device_id)
        await conn.execute(
            update(devices)
            .where(devices.c.id == device_id)
            .values(info="{}", buffer_in=None, meta=None, reported_template=None)
        )


async def _delete_data(conn: Any, device_id: int) -> None:
    for table in (pin_values, pin_properties, device_events):
        await conn.execute(delete(table).where(table.c.device_id == device_id))


async def delete_device(db: Database, bus: Bus, who: Principal, device_id: int) -> None:
    """Delete the device: its token stops working at once and a live connection is closed."""
    await device_row(db, who, device_id, "manage")
    async with db.begin() as conn:
        await _delete_data(conn, device_id)
        await conn.execute(delete(devices).where(devices.c.id == device_id))
    await _command(bus, device_id, "deleted")


def _check_pin(pin: int) -> int:
    if not 0 <= pin <= MAX_PIN:
        raise Invalid(f"virtual pin {pin} is outside V0..V{MAX_PIN}")
    return pin


async def read_pins(db: Database, who: Principal, device_id: int) -> dict[str, list[str]]:
    await device_row(db, who, device_id, "view")
    return await pins_of(db, device_id)


async def pins_of(db: Database, device_id: int) -> dict[str, list[str]]:
    async with db.begin() as conn:
        rows = await conn.execute(
            select(pin_values.c.pin, pin_values.c.value)
            .where(pin_values.c.device_id == device_id)
            .order_by(pin_values.c.pin)
        )
        return {f"V{r.pin}": json.loads(r.value) for r in rows}


async def write_pin(
    db: Database, bus: Bus, who: Principal, device_id: int, pin: int, values: list[str]
) -> dict[str, Any]:
    row = await device_row(db, who, device_id, "operate")
    return await write_pin_of(db, bus, row, pin, values)


async def write_pin_of(
    db: Database, bus: Bus, row: Any, pin: int, values: list[str]
) -> dict[str, Any]:
    """Store a pin value and deliver it to the device if it is online."""
    _check_pin(pin)
    if not values:
        raise Invalid("give at least one value")
    body = blynk.join_args(["vw", pin, *values])
    buffer_in = row.buffer_in or DEFAULT_BUFFER_IN
    if len(body) >= buffer_in:
        raise TooLarge(
            f"the value is {len(body)} bytes on the wire; this device accepts less than "
            f"{buffer_in} (its buff-in)"
        )
    now = time.time()
    stmt = db.upsert(pin_values, ["device_id", "pin"], ["value", "updated_at"]).values(
        device_id=row.id, pin=pin, value=json.dumps(values), updated_at=now
    )
    async with db.begin() as conn:
        await conn.execute(stmt)
    # Sent even when the database says offline: presence is written a moment after a login,
    # and the node holding the device (if any) delivers it.
    delivery = await _deliver(bus, row, "hardware", "vw", pin, *values)
    if delivery["delivery"] == "offline":
        delivery["message"] = (
            "the device is offline: the value is stored, and the device gets it when it asks "
            "for its values (sync) after connecting"
        )
    return {"pin": f"V{pin}", "value": values, **delivery}


async def device_by_token(db: Database, hasher: TokenHasher, token: str) -> Any:
    """The device row for Blynk's HTTP device API (``/external/api/...?token=``)."""
    if not well_formed_token(token.encode()):
        raise NotFound("Invalid token.")
    async with db.begin() as conn:
        row = (
            await conn.execute(select(devices).where(devices.c.token_hash == hasher(token)))
        ).first()
    if row is None:
        raise NotFound("Invalid token.")
    return row


async def redirect(
    db: Database, bus: Bus, who: Principal, device_id: int, host: str, port: int
) -> dict[str, Any]:
    """Send an online device to another gateway (Blynk's REDIRECT ``host\\0port``); not
    delivered (nothing is kept for later) is a Conflict."""
    row = await device_row(db, who, device_id, "manage")
    delivery = await _deliver(bus, row, "redirect", host, port)
    if not delivery["delivered"]:
        raise NotDelivered(
            f"{delivery['message']}: it can only be redirected while online", delivery
        )
    return {"host": host, "port": port, **delivery}
