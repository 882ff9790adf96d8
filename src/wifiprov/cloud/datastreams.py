"""A template's named datastreams, each bound to a virtual pin.

Blynk's MQTT API addresses a value by its datastream's name (``ds/Temperature``), the Blynk
protocol by its virtual pin (``vw 1``); the binding makes them one value, stored per pin. Pins
without a name stay pins (a Blynk-protocol device needs no datastreams); an MQTT device can only
use names its template defines.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import DATASTREAM_NAME_LENGTH, datastreams
from wifiprov.cloud.errors import Conflict, Invalid, NotFound
from wifiprov.cloud.templates import get_template

TYPES = ("integer", "double", "string")
MAX_PIN = 255
MAX_UNIT = 16
# A name is one MQTT topic level: no '/', no wildcards, no control characters.
NAME = re.compile(r"[^/+#\x00-\x1f\x7f]{1," + str(DATASTREAM_NAME_LENGTH) + "}")


def problems(
    name: str, pin: int, kind: str, lo: float | None, hi: float | None, unit: str
) -> dict[str, str]:
    """What is wrong with a datastream, by field (``name``, ``pin``, ``type``, ``min``, ``max``,
    ``unit``), in the order ``check`` reports it; empty when nothing is. The console shows each
    message next to its field."""
    found: dict[str, str] = {}
    if not NAME.fullmatch(name) or name != name.strip():
        found["name"] = (
            f"a datastream name is 1 to {DATASTREAM_NAME_LENGTH} characters, without '/', '+', "
            "'#', control characters or surrounding spaces"
        )
    if not 0 <= pin <= MAX_PIN:
        found["pin"] = f"the pin is V0..V{MAX_PIN}"
    if kind not in TYPES:
        found["type"] = f"the type is one of {', '.join(TYPES)}"
    for field, bound in (("min", lo), ("max", hi)):
        if bound is not None and not math.isfinite(bound):
            found[field] = "min and max are finite numbers"
    if lo is not None and hi is not None and "min" not in found and "max" not in found and lo > hi:
        found["min"] = "min is larger than max"
    if len(unit) > MAX_UNIT or any(ord(c) < 32 for c in unit):
        found["unit"] = f"the unit is at most {MAX_UNIT} characters on one line"
    return found


def check(name: str, pin: int, kind: str, lo: float | None, hi: float | None, unit: str) -> None:
    """Raises Invalid with the first of ``problems``."""
    for message in problems(name, pin, kind, lo, hi, unit).values():
        raise Invalid(message)


def _public(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "pin": f"V{row.pin}",
        "type": row.type,
        "min": row.min,
        "max": row.max,
        "unit": row.unit,
    }


async def list_datastreams(db: Database, who: Principal, template_id: str) -> list[dict[str, Any]]:
    await get_template(db, who, template_id)
    async with db.begin() as conn:
        rows = (
            await conn.execute(
                select(datastreams)
                .where(datastreams.c.template_id == template_id)
                .order_by(datastreams.c.pin)
            )
        ).all()
    return [_public(r) for r in rows]


class NameTaken(Conflict):
    """Adding a datastream under a name the template already has."""


async def put_datastream(
    db: Database,
    who: Principal,
    template_id: str,
    name: str,
    pin: int,
    kind: str = "string",
    lo: float | None = None,
    hi: float | None = None,
    unit: str = "",
    exists: bool | None = None,
) -> dict[str, Any]:
    """Create or replace the datastream ``name`` of a template (managers only). ``exists``:
    True to change one that must be there (NotFound otherwise), False to add one that must not
    (``NameTaken``), None for either; decided in the write's own transaction, so two people
    adding the same name at once cannot replace each other's."""
    await get_template(db, who, template_id, right="manage")
    check(name, pin, kind, lo, hi, unit)
    try:
        async with db.begin() as conn:
            taken = (
                await conn.execute(
                    select(datastreams.c.name).where(
                        (datastreams.c.template_id == template_id)
                        & (datastreams.c.pin == pin)
                        & (datastreams.c.name != name)
                    )
                )
            ).first()
            if taken is not None:
                raise Conflict(f"V{pin} is already bound to the datastream {taken.name!r}")
            removed = await conn.execute(
                delete(datastreams).where(
                    (datastreams.c.template_id == template_id) & (datastreams.c.name == name)
                )
            )
            if exists is True and not removed.rowcount:
                raise NotFound(f"no datastream {name!r} in template {template_id}")
            if exists is False and removed.rowcount:
                raise NameTaken(f"the template has a datastream {name!r} already")
            await conn.execute(
                datastreams.insert().values(
                    template_id=template_id, name=name, pin=pin, type=kind, min=lo, max=hi,
                    unit=unit,
                )
            )  # fmt: skip
    except IntegrityError:  # another change took the pin (or the name) meanwhile
        raise Conflict(f"V{pin} or the name {name!r} was taken meanwhile: try again") from None
    return {"name": name, "pin": f"V{pin}", "type": kind, "min": lo, "max": hi, "unit": unit}


async def delete_datastream(db: Database, who: Principal, template_id: str, name: str) -> None:
    await get_template(db, who, template_id, right="manage")
    async with db.begin() as conn:
        result = await conn.execute(
            delete(datastreams).where(
                (datastreams.c.template_id == template_id) & (datastreams.c.name == name)
            )
        )
    if not result.rowcount:
        raise NotFound(f"no datastream {name!r} in template {template_id}")


async def bindings(db: Database, template_id: str) -> dict[str, int]:
    """Name -> pin of a template's datastreams (for the MQTT gateway). Raises
    DatabaseUnavailable."""
    async with db.begin() as conn:
        rows = (
            await conn.execute(
                select(datastreams.c.name, datastreams.c.pin).where(
                    datastreams.c.template_id == template_id
                )
            )
        ).all()
    return {r.name: r.pin for r in rows}


class BindingsCache:
    """Templates' bindings for logins: a burst of MQTT logins (a fleet reconnecting) reads
    each template's datastreams once, not once per device. An entry serves for ``ttl``
    seconds, so a change reaches devices that log in after that."""

    def __init__(self, db: Database, ttl: float = 5.0) -> None:
        self.db, self.ttl = db, ttl
        self._entries: dict[str, tuple[float, asyncio.Future[dict[str, int]]]] = {}

    async def get(self, template_id: str) -> dict[str, int]:
        now = time.monotonic()
        entry = self._entries.get(template_id)
        if (
            entry is None
            or now - entry[0] > self.ttl
            or (entry[1].done() and entry[1].exception() is not None)
        ):
            if len(self._entries) > 10_000:
                self._entries.clear()
            future = asyncio.ensure_future(bindings(self.db, template_id))
            entry = self._entries[template_id] = (now, future)
        return dict(await asyncio.shield(entry[1]))
