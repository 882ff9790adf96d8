"""The database handle: one async engine, migrations, and one error for "the database is gone"."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed number works: it only has to be the same for every wifiprov process.
MIGRATION_LOCK = 0x77696669
# Driver loggers that print statements with their parameters (the token key, password and token
# hashes) at DEBUG: kept at INFO even under ``-v``, so no key material reaches a log.
QUIET_LOGGERS = ("aiosqlite",)


def inserted_id(result: Any) -> int:
    """The primary key of the row an INSERT just made."""
    key = result.inserted_primary_key
    assert key is not None, "not the result of a single-row INSERT"
    return int(key[0])


class DatabaseUnavailable(Exception):
    """The database could not be reached or failed mid-query; the operation changed nothing."""


def normalize_url(url: str) -> str:
    """Accept the URLs people write (``postgresql://``, a SQLite path); pick async drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if "://" not in url:
        return "sqlite+aiosqlite:///" + str(Path(url).expanduser().resolve())
    return url


def quiet_driver_logs() -> None:
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def private_file(path: Path) -> None:
    """Make the SQLite file readable by this user only, before SQLite opens it.

    A missing data directory is created 0700; the file is created 0600, and SQLite gives its
    ``-wal`` and ``-shm`` files the database file's mode. A file left readable by others by an
    earlier version is tightened (with its WAL and shared memory files).
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if each.stat().st_mode & 0o077:
                each.chmod(0o600)
        except FileNotFoundError:
            pass


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError))


class Database:
    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        quiet_driver_logs()
        self.url = normalize_url(url)
        if self.url.startswith("sqlite"):
            self.dialect = "sqlite"
            path = self.url.split(":///", 1)[1]
            if path and path != ":memory:":
                private_file(Path(path))
            self.engine = create_async_engine(
                self.url, connect_args={"timeout": connect_timeout}, hide_parameters=True
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.dialect = "postgresql"
            self.engine = create_async_engine(
                self.url,
                pool_size=10,
                max_overflow=10,
                pool_timeout=connect_timeout,
                hide_parameters=True,
                connect_args={"timeout": connect_timeout, "command_timeout": 10},
            )

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; an outage surfaces as ``DatabaseUnavailable`` (and rolls back)."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except Exception as exc:
            if _is_outage(exc):
                raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc
            raise

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; safe when several processes start at once."""
        async with self.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            await conn.run_sync(_upgrade)

    def upsert(self, table: Table, keys: Sequence[str], update: Sequence[str]) -> Any:
        """INSERT ... ON CONFLICT (keys) DO UPDATE SET update = excluded.update, per dialect."""
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _upgrade(conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
