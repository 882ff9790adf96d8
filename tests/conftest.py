"""Shared fixtures: a PostgreSQL database per test run (dropped afterwards), and a cloud in-process
on SQLite or on PostgreSQL (every API and gateway test runs on both)."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import hypothesis
import pytest

from wifiprov.cloud import accounts
from wifiprov.cloud.app import Cloud
from wifiprov.cloud.db import Database
from wifiprov.cloud.settings import CloudSettings

# Shared, noisy machines: a slow example is not a failure.
hypothesis.settings.register_profile("wifiprov", deadline=None)
hypothesis.settings.load_profile("wifiprov")

PG_ADMIN = os.environ.get("WIFIPROV_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE = PG_ADMIN.rsplit("/", 1)[0]
PASSWORD = "correct horse battery"


async def _pg_admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is required for the tests and is not reachable at {PG_ADMIN}: {exc}"
        ) from exc
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro: object) -> None:
    """Run a coroutine to completion on its own loop, even when called from inside a loop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database for this run, used as a template for per-test copies."""
    name = f"wifiprov_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def setup() -> None:
        await _pg_admin(f'CREATE DATABASE "{name}"')
        db = Database(f"{PG_BASE}/{name}")
        await db.migrate()
        await db.close()

    _run(setup())
    yield name
    _run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_db(pg_template: str) -> AsyncIterator[str]:
    """A fresh migrated PostgreSQL database for one test (a copy of the run's template)."""
    name = f"wifiprov_test_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "cloud.sqlite3")
        return
    template = request.getfixturevalue("pg_template")
    name = f"wifiprov_test_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RunningCloud:
    cloud: Cloud
    http_url: str
    gateway: tuple[str, int]
    owner_token: str
    org_id: int

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=30)

    async def user(self, email: str, role: str | None = None, org_id: int | None = None) -> str:
        """A new user (a member of the owner's organization with ``role``, if given); its token."""
        db = self.cloud.db
        user_id = await accounts.create_user(db, email, PASSWORD)
        if role is not None:
            owner = await accounts.authenticate(db, self.cloud.hasher, self.owner_token)
            await accounts.set_member(db, owner, org_id or self.org_id, email, role)
        else:
            await accounts.create_org(db, f"{email}'s org", user_id)
        return await accounts.sign_in(db, self.cloud.hasher, email, PASSWORD)


async def start_cloud(settings: CloudSettings) -> tuple[Cloud, asyncio.Task[None]]:
    cloud = await Cloud.open(settings)
    ready = asyncio.Event()
    task = asyncio.create_task(cloud.serve(ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        await task
    return cloud, task


async def stop_cloud(cloud: Cloud, task: asyncio.Task[None]) -> None:
    cloud.http_server.should_exit = True
    await asyncio.wait_for(task, 10)


async def with_owner(cloud: Cloud, hotspot_prefix: str = "Blynk") -> RunningCloud:
    """A started cloud with its first user (owner@example.com) and organization (Acme)."""
    owner_id = await accounts.create_user(cloud.db, "owner@example.com", PASSWORD)
    org_id = await accounts.create_org(cloud.db, "Acme", owner_id, hotspot_prefix)
    token = await accounts.sign_in(cloud.db, cloud.hasher, "owner@example.com", PASSWORD)
    host, port = cloud.http_address
    return RunningCloud(cloud, f"http://{host}:{port}", cloud.gateway.addresses()[0], token, org_id)


@pytest.fixture
async def settings(db_url: str) -> CloudSettings:
    return CloudSettings(
        db_url=db_url,
        http=("127.0.0.1", 0),
        gateway=("127.0.0.1", 0),
        public_host="cloud.test",
        login_timeout=2.0,
        flush_interval=0.05,
    )


@pytest.fixture
async def cloud(settings: CloudSettings) -> AsyncIterator[RunningCloud]:
    running, task = await start_cloud(settings)
    try:
        yield await with_owner(running, hotspot_prefix="Acme")
    finally:
        await stop_cloud(running, task)
