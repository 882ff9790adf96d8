"""Devices: login by token (claiming provisioning tokens), their data, and what users do to them."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select, update

from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.bus import DEVICE_COMMANDS, Bus
from wifiprov.cloud.db import Database, inserted_id
from wifiprov.cloud.db.schema import (
    NAME_LENGTH,
    device_events,
    devices,
    pin_properties,
    pin_values,
    provisioning_requests,
    templates,
)
from wifiprov.cloud.errors import Invalid, NotDelivered, NotFound, TooLarge
from wifiprov.cloud.tokens import TokenHasher
from wifiprov.wire import blynk

TOKEN = re.compile(rb"[A-Za-z0-9_-]{32}")
MAX_PIN = 255
# Until a device reports its buff-in, assume the smallest buffer in use (Blynk's C++ library).
DEFAULT_BUFFER_IN = 256
RECONFIGURE = "config start"  # the Edgent console command that re-enters provisioning


class DeviceAuth(NamedTuple):
    device_id: int
    org_id: int
    template_id: str
    buffer_in: int | None  # as the device last reported it
    claimed_request: int | None  # set when this login claimed a provisioning token
    meta: str | None = None  # the device's INTERNAL meta (JSON), as stored


def well_formed_token(token: bytes) -> bool:
    return TOKEN.fullmatch(token) is not None


class DeviceLogins:
    """Checks device logins against the database, many per query.

    A burst of logins (a fleet reconnecting after a restart or an outage) would otherwise cost a
    round trip each. Requests queue up while a query is in flight and the next query takes them
    all (up to ``batch``), so a lone login waits for one query and a burst for a few.
    Provisioning-token claims (first logins) are rare and go one by one.
    """

    def __init__(self, db: Database, hasher: TokenHasher, bus: Bus, batch: int = 500) -> None:
        self.db, self.hasher, self.bus, self.batch = db, hasher, bus, batch
        self._queue: list[tuple[str, asyncio.Future[DeviceAuth | None]]] = []
        self._draining = False

    async def authenticate(self, token: bytes) -> DeviceAuth | PendingClaim | None:
        """The device behind an auth token, or the provisioning request it may claim (the
        gateway decides the claim with the device's info: ``commit_claim``/``refuse_claim``).

        None means only "no such token, it expired unclaimed, its claim was refused, or its
        device was deleted" (status 9). An unreachable database raises DatabaseUnavailable.
        """
        if not well_formed_token(token):
            return None
        token_hash = self.hasher(token)
        found = await self._device(token_hash)
        if found is not None:
            return found
        pending = await pending_claim(self.db, token_hash)
        if pending is not None:
            return pending
        # A claim of this token (by another connection of the same device, reconnecting at
        # once) may have committed between the two queries above: the device exists now.
        return await self._device(token_hash)

    async def _device(self, token_hash: str) -> DeviceAuth | None:
        future: asyncio.Future[DeviceAuth | None] = asyncio.get_running_loop().create_future()
        self._queue.append((token_hash, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.batch], self._queue[self.batch :]
                try:
                    found = await self._lookup([h for h, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for token_hash, future in batch:
                    if not future.done():
                        future.set_result(found.get(token_hash))
        finally:
            self._draining = False

    async def _lookup(self, hashes: list[str]) -> dict[str, DeviceAuth]:
        query = select(
            devices.c.token_hash,
            devices.c.id,
            devices.c.org_id,
            devices.c.template_id,
            devices.c.buffer_in,
            devices.c.meta,
        ).where(devices.c.token_hash.in_(set(hashes)))
        async with self.db.begin() as conn:
            rows = (await conn.execute(query)).all()
        return {
            r.token_hash: DeviceAuth(r.id, r.org_id, r.template_id, r.buffer_in, None, r.meta)
            for r in rows
        }


class PendingClaim(NamedTuple):
    """A provisioning token that may claim a device: decided once the device reports its
    template (``commit_claim`` or ``refuse_claim``)."""

    request_id: int
    org_id: int
    template_id: str
    user_id: int | None
    token_hash: str
    token_last4: str


async def pending_claim(db: Database, token_hash: str) -> PendingClaim | None:
    """The unclaimed, unexpired, unrefused provisioning request of this token, if any."""
    async with db.begin() as conn:
        req = (
            await conn.execute(
                select(provisioning_requests).where(
                    provisioning_requests.c.token_hash == token_hash
                )
            )
        ).first()
    if (
        req is None
        or req.claimed_at is not None
        or req.refused_reason is not None
        or req.expires_at <= time.time()
    ):
        return None
    return PendingClaim(
        req.id, req.org_id, req.template_id, req.user_id, token_hash, req.token_last4
    )


async def commit_claim(
    db: Database, pending: PendingClaim, reported_template: str | None
) -> DeviceAuth | None:
    """Claim: the request is marked claimed and the device created, in one transaction. None
    when another login won the token meanwhile (or it was refused)."""
    now = time.time()
    async with db.begin() as conn:
        # Only one of two racing first logins may win the token.
        won = await conn.execute(
            update(provisioning_requests)
            .where(
                provisioning_requests.c.id == pending.request_id,
                provisioning_requests.c.claimed_at.is_(None),
                provisioning_requests.c.refused_reason.is_(None),
            )
            .values(claimed_at=now)
        )
        if won.rowcount != 1:
            return None
        template_name = await conn.scalar(
            select(templates.c.name).where(templates.c.id == pending.template_id)
        )
        result = await conn.execute(
            devices.insert().values(
                org_id=pending.org_id,
                template_id=pending.template_id,
                name=f"{template_name} {pending.token_last4}",
                token_hash=pending.token_hash,
                token_last4=pending.token_last4,
                created_at=now,
                created_by=pending.user_id,
                info="{}",
                reported_template=reported_template,
            )
        )
        device_id = inserted_id(result)
        await conn.execute(
            update(provisioning_requests)
            .where(provisioning_requests.c.id == pending.request_id)
            .values(device_id=device_id)
        )
    return DeviceAuth(
        device_id, pending.org_id, pending.template_id, None, pending.request_id, None
    )


async def refuse_claim(db: Database, pending: PendingClaim, reason: str) -> bool:
    """Refuse the token's claim for good (its later logins get 9); False if already decided."""
    async with db.begin() as conn:
        result = await conn.execute(
            update(provisioning_requests)
            .where(
                provisioning_requests.c.id == pending.request_id,
                provisioning_requests.c.claimed_at.is_(None),
                provisioning_requests.c.refused_reason.is_(None),
            )
            .values(refused_reason=reason[:200])
        )
    return bool(result.rowcount == 1)


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


async def _row(db: Database, who: Principal, device_id: int, right: str) -> Any:
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
    return _public(await _row(db, who, device_id, "view"))


async def rename(db: Database, who: Principal, device_id: int, name: str) -> dict[str, Any]:
    await _row(db, who, device_id, "operate")
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


async def _deliver(bus: Bus, row: Any, kind: str, *args: str | int) -> dict[str, Any]:
    """Send a message to the device through the node holding its live connection, and say what
    happened, in the shape every route uses: ``delivered`` (true only when a live connection
    took the message), ``delivery`` ("delivered", "offline" or "refused"), ``node`` and
    ``message`` in words."""
    timeout = DELIVERY_TIMEOUT if row.online_node is not None else DELIVERY_TIMEOUT_OFFLINE
    message = {"device_id": row.id, "kind": kind, "args": list(args)}
    reply = await bus.request(DEVICE_COMMANDS, message, timeout)
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
            "message": reply.get("reason")
            or "the device's connection could not take the message (too large for it)",
        }
    return {
        "delivered": True,
        "delivery": "delivered",
        "node": reply.get("node"),
        "message": "sent on the device's live connection",
    }


async def reconfigure(db: Database, bus: Bus, who: Principal, device_id: int) -> dict[str, Any]:
    """Tell an online device to re-enter provisioning, as Blynk's console does (INTERNAL dbg).
    Nothing is kept for later: not delivered is a Conflict."""
    row = await _row(db, who, device_id, "manage")
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
    await _row(db, who, device_id, "manage")
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
    await _row(db, who, device_id, "manage")
    async with db.begin() as conn:
        await _delete_data(conn, device_id)
        await conn.execute(delete(devices).where(devices.c.id == device_id))
    await _command(bus, device_id, "deleted")


def _check_pin(pin: int) -> int:
    if not 0 <= pin <= MAX_PIN:
        raise Invalid(f"virtual pin {pin} is outside V0..V{MAX_PIN}")
    return pin


async def read_pins(db: Database, who: Principal, device_id: int) -> dict[str, list[str]]:
    await _row(db, who, device_id, "view")
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
    row = await _row(db, who, device_id, "operate")
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
    row = await _row(db, who, device_id, "manage")
    delivery = await _deliver(bus, row, "redirect", host, port)
    if not delivery["delivered"]:
        raise NotDelivered(
            f"{delivery['message']}: it can only be redirected while online", delivery
        )
    return {"host": host, "port": port, **delivery}
