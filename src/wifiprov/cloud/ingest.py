"""Write-behind for what devices send: pin values, properties, events, info, presence, last seen.

A gateway receives far more messages than a database should see transactions, and only the latest
value of a pin matters, so writes are merged in memory and flushed in batches every
``interval`` seconds. If the database is away, the batch is kept (merged with newer writes) and
retried; events are bounded so an outage cannot grow memory without limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sqlalchemy import and_, bindparam, update
from sqlalchemy.exc import IntegrityError

from wifiprov.cloud.db import Database, DatabaseUnavailable
from wifiprov.cloud.db.schema import device_events, devices, pin_properties, pin_values

log = logging.getLogger("wifiprov.ingest")
MAX_PENDING_EVENTS = 10_000

PinValues = list[str] | bytes  # a pin's values, or the NUL-joined ASCII bytes they came as


def _listed(values: PinValues) -> list[str]:
    return values.decode("ascii").split("\0") if isinstance(values, bytes) else values


_online = (
    update(devices)
    .where(devices.c.id == bindparam("d"))
    .values(online_node=bindparam("node"), connected_at=bindparam("t"), last_seen=bindparam("t"))
)
# Going offline must not undo a newer login of the same device (on another node, or later here);
# "<=" also clears an older connection whose offline write was superseded within one batch.
_offline = (
    update(devices)
    .where(
        and_(
            devices.c.id == bindparam("d"),
            devices.c.online_node == bindparam("node"),
            devices.c.connected_at <= bindparam("c"),
        )
    )
    .values(online_node=None, last_seen=bindparam("t"))
)
_seen = update(devices).where(devices.c.id == bindparam("d")).values(last_seen=bindparam("t"))
_info = (
    update(devices)
    .where(devices.c.id == bindparam("d"))
    .values(
        info=bindparam("info"),
        buffer_in=bindparam("buffer_in"),
        reported_template=bindparam("reported"),
    )
)
_meta = update(devices).where(devices.c.id == bindparam("d")).values(meta=bindparam("meta"))


class DeviceDataWriter:
    def __init__(self, db: Database, interval: float = 0.2) -> None:
        self.db = db
        self.interval = interval
        # (device, pin) -> (values, when); values as a list, or as received (``pins``)
        self.values: dict[tuple[int, int], tuple[PinValues, float]] = {}
        # the values a flush is writing: neither pending nor yet in the database
        self.writing: dict[tuple[int, int], tuple[PinValues, float]] = {}
        self.properties: dict[tuple[int, int, str], str] = {}
        self.events: list[dict[str, Any]] = []
        self.info: dict[int, tuple[str, int | None]] = {}
        self.meta: dict[int, str] = {}  # device -> its whole meta, as JSON
        # device -> (online, node, connected_at, when): the newest presence change wins
        self.presence: dict[int, tuple[bool, str, float, float]] = {}
        self.facts: dict[int, dict[str, str | None]] = {}  # device -> last_ip, last_error
        self.seen: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # one flush at a time: flush() is a barrier
        # flush() tickets: every call takes one; a write that starts after a ticket was taken
        # covers it, so callers queued behind one write share the next instead of one each.
        self._asked = 0
        self._covered = 0

    # --- called by the gateway, never blocking ---
    def pin(self, device_id: int, pin: int, values: list[str], now: float) -> None:
        self.values[(device_id, pin)] = (values, now)

    def pins(self, device_id: int, written: dict[int, bytes], now: float) -> None:
        """Pin writes as the Blynk protocol carries them (ASCII values joined by NUL), decoded
        only when written or read: most are replaced by a newer value before that."""
        values = self.values
        for pin, raw in written.items():
            values[(device_id, pin)] = (raw, now)

    def pending_pins(self, device_id: int) -> dict[int, list[str]]:
        """The device's values not yet in the database (being written, or waiting), newest."""
        merged = {**self.writing, **self.values}
        return {pin: _listed(v) for (dev, pin), (v, _) in merged.items() if dev == device_id}

    def property(self, device_id: int, pin: int, name: str, value: str) -> None:
        self.properties[(device_id, pin, name)] = value

    def event(self, device_id: int, code: str, description: str, now: float) -> None:
        if len(self.events) >= MAX_PENDING_EVENTS:
            log.warning("event backlog full (database slow or away): dropping device events")
            del self.events[: MAX_PENDING_EVENTS // 10]
        self.events.append(
            {"device_id": device_id, "code": code, "description": description, "created_at": now}
        )

    def device_info(self, device_id: int, info: dict[str, str], buffer_in: int | None) -> None:
        """The info message; its ``template_id`` (INTERNAL ``tmpl``) is the reported template."""
        self.info[device_id] = (json.dumps(info), buffer_in)

    def device_meta(self, device_id: int, meta: dict[str, str]) -> None:
        """The device's INTERNAL meta fields (all of them: the newest set replaces the column)."""
        self.meta[device_id] = json.dumps(meta)

    def online(self, device_id: int, node: str, connected_at: float) -> None:
        self.presence[device_id] = (True, node, connected_at, connected_at)

    def offline(self, device_id: int, node: str, connected_at: float, now: float) -> None:
        self.presence[device_id] = (False, node, connected_at, now)

    def note(self, device_id: int, **facts: str | None) -> None:
        """Facts about a device's connection (``last_ip``, ``last_error``), written behind."""
        self.facts.setdefault(device_id, {}).update(facts)

    def last_seen(self, device_id: int, when: float) -> None:
        self.seen[device_id] = when

    def drop_device(self, device_id: int) -> None:
        """Forget pending data of a device that was erased or deleted."""
        for key in [k for k in self.values if k[0] == device_id]:
            del self.values[key]
        for pkey in [k for k in self.properties if k[0] == device_id]:
            del self.properties[pkey]
        self.events = [e for e in self.events if e["device_id"] != device_id]
        self.info.pop(device_id, None)
        self.meta.pop(device_id, None)
        self.seen.pop(device_id, None)

    # --- the flusher ---
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        try:
            await self.flush()
        except DatabaseUnavailable:
            log.warning("database unavailable at shutdown: recent device data not saved")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except DatabaseUnavailable as exc:
                log.warning("database unavailable, will retry device data: %s", exc)
            except Exception:
                log.exception("flushing device data failed")

    async def flush(self) -> None:
        """Write everything received so far (waiting for a flush already under way). Many
        callers at once (a burst of claims, each waiting for its device to show online) share
        writes: a caller whose data a write that started after its call has covered returns."""
        self._asked += 1
        ticket = self._asked
        async with self._flushing:
            if self._covered >= ticket:
                return
            covers = self._asked  # everything asked so far was received before this write
            await self._flush()
            self._covered = covers

    async def _flush(self) -> None:
        values, self.values = self.values, {}
        self.writing = values
        properties, self.properties = self.properties, {}
        events, self.events = self.events, []
        info, self.info = self.info, {}
        meta, self.meta = self.meta, {}
        presence, self.presence = self.presence, {}
        seen, self.seen = self.seen, {}
        facts, self.facts = self.facts, {}
        try:
            await self._write(values, properties, events, info, presence, seen, meta, facts)
        except Exception:
            # Put it back under anything newer that arrived meanwhile.
            self.values = {**values, **self.values}
            self.properties = {**properties, **self.properties}
            self.events = (events + self.events)[-MAX_PENDING_EVENTS:]
            self.info = {**info, **self.info}
            self.meta = {**meta, **self.meta}
            self.presence = {**presence, **self.presence}
            self.seen = {**seen, **self.seen}
            for d, f in facts.items():
                self.facts[d] = {**f, **self.facts.get(d, {})}
            raise
        finally:
            self.writing = {}

    async def _write(
        self,
        values: dict[tuple[int, int], tuple[PinValues, float]],
        properties: dict[tuple[int, int, str], str],
        events: list[dict[str, Any]],
        info: dict[int, tuple[str, int | None]],
        presence: dict[int, tuple[bool, str, float, float]],
        seen: dict[int, float],
        meta: dict[int, str],
        facts: dict[int, dict[str, str | None]] | None = None,
    ) -> None:
        if not (values or properties or events or info or presence or seen or meta or facts):
            return
        batches: list[tuple[Any, list[dict[str, Any]]]] = []
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for d, f in (facts or {}).items():
            by_keys.setdefault(tuple(sorted(f)), []).append({"d": d, **f})
        for keys, rows in by_keys.items():
            stmt = (
                update(devices)
                .where(devices.c.id == bindparam("d"))
                .values(**{k: bindparam(k) for k in keys})
            )
            batches.append((stmt, rows))
        if presence:
            online = [{"d": d, "node": n, "t": c} for d, (up, n, c, _) in presence.items() if up]
            offline = [
                {"d": d, "node": n, "c": c, "t": t}
                for d, (up, n, c, t) in presence.items()
                if not up
            ]
            batches += [(_online, online), (_offline, offline)]
        if seen:
            batches.append((_seen, [{"d": d, "t": t} for d, t in seen.items()]))
        if info:
            info_rows = [
                {
                    "d": d,
                    "info": i,
                    "buffer_in": b,
                    "reported": json.loads(i).get("template_id", "")[:32] or None,
                }
                for d, (i, b) in info.items()
            ]
            batches.append((_info, info_rows))
        if meta:
            batches.append((_meta, [{"d": d, "meta": m} for d, m in meta.items()]))
        if values:
            stmt = self.db.upsert(pin_values, ["device_id", "pin"], ["value", "updated_at"])
            rows = [
                {"device_id": d, "pin": p, "value": json.dumps(_listed(v)), "updated_at": t}
                for (d, p), (v, t) in values.items()
            ]
            batches.append((stmt, rows))
        if properties:
            stmt = self.db.upsert(pin_properties, ["device_id", "pin", "name"], ["value"])
            rows = [
                {"device_id": d, "pin": p, "name": n, "value": v}
                for (d, p, n), v in properties.items()
            ]
            batches.append((stmt, rows))
        if events:
            batches.append((device_events.insert(), events))
        batches = [(s, r) for s, r in batches if r]
        try:
            async with self.db.begin() as conn:
                for stmt, rows in batches:
                    await conn.execute(stmt, rows)
        except IntegrityError:
            # A device was deleted while its data was in flight: write row by row, drop the rest.
            await self._write_each(batches)

    async def _write_each(self, batches: list[tuple[Any, list[dict[str, Any]]]]) -> None:
        dropped = 0
        for stmt, rows in batches:
            for row in rows:
                try:
                    async with self.db.begin() as conn:
                        await conn.execute(stmt, [row])
                except IntegrityError:
                    dropped += 1
        if dropped:
            log.info("dropped %d writes for deleted devices", dropped)
