"""Claims under races: a device that reconnects at once after its first login (a lost link, a
crashed task) must not be told its token is invalid while its own claim is being committed (9
sends a device back to provisioning, so it is only for a token that really is no good); claims
committing together go in one transaction per batch, one winner per token; a batch that fails
half-way loses no claim and makes none twice."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select

from tests.conftest import RunningCloud
from tests.integration.support import provisioning_token, template
from wifiprov.cloud import logins
from wifiprov.cloud.db import DatabaseUnavailable, schema


async def test_a_login_racing_its_own_claim_finds_the_device(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    db = cloud.cloud.db
    real = logins.pending_claims
    commits: list[object] = []

    async def claim_commits_in_between(database: object, conn: object, hashes: set[str]) -> object:
        # This login's device lookup found nothing; now the first connection's claim commits
        # (in a transaction of its own), before this login looks for a pending claim.
        async with db.begin() as other:
            pending = (await real(db, other, hashes)).get(next(iter(hashes)))
        assert pending is not None
        commits.append(await logins.commit_claim(db, pending, template_id))
        return await real(database, conn, hashes)  # type: ignore[arg-type]

    monkeypatch.setattr(logins, "pending_claims", claim_commits_in_between)
    auth = await cloud.cloud.gateway.logins.authenticate(request["token"].encode())
    assert commits and commits[0] is not None
    assert isinstance(auth, logins.DeviceAuth)  # the device just claimed, not "invalid" (9)


async def test_an_unknown_token_is_still_refused(cloud: RunningCloud) -> None:
    assert await cloud.cloud.gateway.logins.authenticate(b"Q" * 32) is None


async def _pending(cloud: RunningCloud, template_id: str, count: int) -> list[logins.PendingClaim]:
    found = []
    for _ in range(count):
        request = await provisioning_token(cloud, template_id)
        token_hash = cloud.cloud.hasher(request["token"].encode())
        pending = await logins.pending_claim(cloud.cloud.db, token_hash)
        assert pending is not None
        found.append(pending)
    return found


async def _claimed(cloud: RunningCloud) -> tuple[int, int]:
    """(devices, claimed requests) in the database."""
    async with cloud.cloud.db.begin() as conn:
        made = await conn.scalar(select(func.count()).select_from(schema.devices))
        claimed = await conn.scalar(
            select(func.count())
            .select_from(schema.provisioning_requests)
            .where(schema.provisioning_requests.c.claimed_at.is_not(None))
        )
    return int(made or 0), int(claimed or 0)


async def test_concurrent_claims_commit_in_batches_one_winner_per_token(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    template_id = await template(cloud)
    claims = await _pending(cloud, template_id, 30)
    batches: list[int] = []
    real = logins.commit_claims

    async def counted(db: object, items: list[object]) -> object:
        batches.append(len(items))
        return await real(db, items)  # type: ignore[arg-type]

    monkeypatch.setattr(logins, "commit_claims", counted)
    gate = cloud.cloud.gateway.logins
    # every token claimed once, and the first ten a second time by a racing login
    racing = [*claims, *claims[:10]]
    answers = await asyncio.gather(*(gate.commit(p, template_id) for p in racing))
    first, second = answers[:30], answers[30:]
    assert all(isinstance(a, logins.DeviceAuth) for a in first)
    assert len({a.device_id for a in first if a is not None}) == 30
    assert second == [None] * 10  # the token is used up: its first login won it
    assert sum(batches) == 40 and len(batches) < 40  # together, not one transaction each
    assert await _claimed(cloud) == (30, 30)


async def test_a_claim_batch_failing_half_way_changes_nothing(cloud: RunningCloud) -> None:
    template_id = await template(cloud)
    claims = await _pending(cloud, template_id, 12)
    engine = cloud.cloud.db.engine.sync_engine

    def fail_on_device_insert(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DEVICES"):
            raise ConnectionResetError("injected: the database went away half-way through")

    event.listen(engine, "before_cursor_execute", fail_on_device_insert)
    try:
        gate = cloud.cloud.gateway.logins
        answers = await asyncio.gather(
            *(gate.commit(p, template_id) for p in claims), return_exceptions=True
        )
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_device_insert)
    assert all(isinstance(a, DatabaseUnavailable) for a in answers)  # told, not claimed
    assert await _claimed(cloud) == (0, 0)  # the requests were marked claimed, then rolled back
    again = await asyncio.gather(*(gate.commit(p, template_id) for p in claims))
    assert all(isinstance(a, logins.DeviceAuth) for a in again)  # no claim lost
    assert await _claimed(cloud) == (12, 12)  # and none made twice
