"""Device logins by token, many per query, and provisioning-token claims, many per transaction
(the gateways' ``DeviceSessions`` asks ``DeviceLogins``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import ARRAY, any_, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wifiprov.cloud.bus import Bus
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import devices, provisioning_requests, templates
from wifiprov.cloud.tokens import TokenHasher

TOKEN = re.compile(rb"[A-Za-z0-9_-]{32}")


class DeviceAuth(NamedTuple):
    device_id: int
    org_id: int
    template_id: str
    buffer_in: int | None  # as the device last reported it
    claimed_request: int | None  # set when this login claimed a provisioning token
    meta: str | None = None  # the device's INTERNAL meta (JSON), as stored


def well_formed_token(token: bytes) -> bool:
    return TOKEN.fullmatch(token) is not None


_In = TypeVar("_In")
_Out = TypeVar("_Out")


class Batcher(Generic[_In, _Out]):
    """Calls that queue up while one batch is in flight go together in the next (up to
    ``size``): ``run`` takes the items and answers each, in order. A lone call waits for one
    batch; a burst for a few. An exception from ``run`` is every caller of that batch's."""

    def __init__(self, run: Callable[[list[_In]], Awaitable[list[_Out]]], size: int) -> None:
        self.run, self.size = run, size
        self._queue: list[tuple[_In, asyncio.Future[_Out]]] = []
        self._draining = False

    async def __call__(self, item: _In) -> _Out:
        future: asyncio.Future[_Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.size], self._queue[self.size :]
                try:
                    answers = await self.run([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._draining = False


class DeviceLogins:
    """Checks device logins against the database, many per query, and claims provisioning
    tokens many per transaction.

    A burst of logins (a fleet reconnecting after a restart or an outage, a pallet of devices
    provisioned at once) would otherwise cost a round trip each: look-ups (the devices, then
    the pending claims of the tokens that are no device's, in one transaction) and claim
    commits each go through a ``Batcher``.
    """

    def __init__(self, db: Database, hasher: TokenHasher, bus: Bus, batch: int = 500) -> None:
        self.db, self.hasher, self.bus, self.batch = db, hasher, bus, batch
        self._lookups: Batcher[str, DeviceAuth | PendingClaim | None] = Batcher(
            lambda hashes: look_up(self.db, hashes), batch
        )
        self._commits: Batcher[tuple[PendingClaim, str | None], DeviceAuth | None] = Batcher(
            lambda items: commit_claims(self.db, items), batch
        )

    async def authenticate(self, token: bytes) -> DeviceAuth | PendingClaim | None:
        """The device behind an auth token, or the provisioning request it may claim (the
        gateway decides the claim with the device's info: ``commit``/``refuse_claim``).

        None means only "no such token, it expired unclaimed, its claim was refused, or its
        device was deleted" (status 9). An unreachable database raises DatabaseUnavailable.
        """
        if not well_formed_token(token):
            return None
        token_hash = self.hasher(token)
        found = await self._lookups(token_hash)
        if found is not None:
            return found
        # A claim of this token (by another connection of the same device, reconnecting at
        # once) may have committed between the look-up's two queries: the device exists now.
        return await self._lookups(token_hash)

    async def commit(
        self, pending: PendingClaim, reported_template: str | None
    ) -> DeviceAuth | None:
        """``commit_claim``, batched with the claims committing at the same time."""
        return await self._commits((pending, reported_template))


class PendingClaim(NamedTuple):
    """A provisioning token that may claim a device: decided once the device reports its
    template (``commit_claim`` or ``refuse_claim``)."""

    request_id: int
    org_id: int
    template_id: str
    user_id: int | None
    token_hash: str
    token_last4: str


def _among(db: Database, column: Any, values: Iterable[Any]) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(array)``, one statement text for any
    number of values, so asyncpg prepares it once (an IN list is a new statement per length)."""
    values = list(values)
    if db.dialect == "postgresql":
        return column == any_(literal(values, ARRAY(column.type)))
    return column.in_(values)


async def look_up(db: Database, hashes: list[str]) -> list[DeviceAuth | PendingClaim | None]:
    """For each token hash its device; else the provisioning request it may claim; else None.
    One transaction: a query for the devices, one for the pending claims of the others."""
    wanted = set(hashes)
    async with db.begin() as conn:
        rows = (
            await conn.execute(
                select(
                    devices.c.token_hash,
                    devices.c.id,
                    devices.c.org_id,
                    devices.c.template_id,
                    devices.c.buffer_in,
                    devices.c.meta,
                ).where(_among(db, devices.c.token_hash, wanted))
            )
        ).all()
        found: dict[str, DeviceAuth | PendingClaim] = {
            r.token_hash: DeviceAuth(r.id, r.org_id, r.template_id, r.buffer_in, None, r.meta)
            for r in rows
        }
        missing = wanted - found.keys()
        if missing:
            found.update(await pending_claims(db, conn, missing))
    return [found.get(h) for h in hashes]


async def pending_claims(
    db: Database, conn: AsyncConnection, hashes: set[str]
) -> dict[str, PendingClaim]:
    """The unclaimed, unexpired, unrefused provisioning requests of these token hashes."""
    requests = provisioning_requests
    rows = await conn.execute(
        select(
            requests.c.id,
            requests.c.org_id,
            requests.c.template_id,
            requests.c.user_id,
            requests.c.token_hash,
            requests.c.token_last4,
        ).where(
            _among(db, requests.c.token_hash, hashes),
            requests.c.claimed_at.is_(None),
            requests.c.refused_reason.is_(None),
            requests.c.expires_at > time.time(),
        )
    )
    return {r.token_hash: PendingClaim(*r) for r in rows}


async def pending_claim(db: Database, token_hash: str) -> PendingClaim | None:
    """The unclaimed, unexpired, unrefused provisioning request of this token, if any."""
    async with db.begin() as conn:
        return (await pending_claims(db, conn, {token_hash})).get(token_hash)


async def commit_claim(
    db: Database, pending: PendingClaim, reported_template: str | None
) -> DeviceAuth | None:
    """Claim: the request is marked claimed and the device created, in one transaction. None
    when another login won the token meanwhile (or it was refused)."""
    return (await commit_claims(db, [(pending, reported_template)]))[0]


async def commit_claims(
    db: Database, claims: list[tuple[PendingClaim, str | None]]
) -> list[DeviceAuth | None]:
    """Many claims in one transaction, a statement per step for all of them: the requests
    marked claimed (``UPDATE … RETURNING``: only a request nobody claimed or refused yet), the
    devices created (one multi-row ``INSERT … RETURNING``), the requests pointed at them. For
    each claim its device, or None when the token was won by another login (one in the same
    batch included: the first wins) or refused. A failure anywhere rolls all of it back."""
    now = time.time()
    requests = provisioning_requests
    answers: list[DeviceAuth | None] = [None] * len(claims)
    async with db.begin() as conn:
        won = set(
            (
                await conn.execute(
                    update(requests)
                    .where(
                        _among(db, requests.c.id, {p.request_id for p, _ in claims}),
                        requests.c.claimed_at.is_(None),
                        requests.c.refused_reason.is_(None),
                    )
                    .values(claimed_at=now)
                    .returning(requests.c.id)
                )
            ).scalars()
        )
        winners: dict[int, int] = {}  # request id -> index of the claim that won it
        for i, (pending, _) in enumerate(claims):
            if pending.request_id in won and pending.request_id not in winners:
                winners[pending.request_id] = i
        if not winners:
            return answers
        chosen = [claims[i] for i in winners.values()]
        names = dict(
            (
                await conn.execute(
                    select(templates.c.id, templates.c.name).where(
                        _among(db, templates.c.id, {p.template_id for p, _ in chosen})
                    )
                )
            ).all()
        )
        created = (
            await conn.execute(
                devices.insert().returning(devices.c.id, sort_by_parameter_order=True),
                [
                    {
                        "org_id": p.org_id,
                        "template_id": p.template_id,
                        "name": f"{names.get(p.template_id, p.template_id)} {p.token_last4}",
                        "token_hash": p.token_hash,
                        "token_last4": p.token_last4,
                        "created_at": now,
                        "created_by": p.user_id,
                        "info": "{}",
                        "reported_template": reported,
                    }
                    for p, reported in chosen
                ],
            )
        ).scalars()
        device_ids = list(created)
        # Each request pointed at its device, matched by the token they share (one statement).
        await conn.execute(
            update(requests)
            .where(
                _among(db, requests.c.id, winners),
                requests.c.token_hash == devices.c.token_hash,
            )
            .values(device_id=devices.c.id)
        )
    for index, device_id in zip(winners.values(), device_ids, strict=True):
        p = claims[index][0]
        answers[index] = DeviceAuth(device_id, p.org_id, p.template_id, None, p.request_id, None)
    return answers


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
