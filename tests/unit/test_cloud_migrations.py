"""The migrations build exactly the tables ``schema.py`` describes (on SQLite; the PostgreSQL
tiers migrate a fresh database for every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from wifiprov.cloud.db.database import Database
from wifiprov.cloud.db.schema import metadata


async def test_migrations_match_the_schema(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "cloud.db"))
    try:
        await db.migrate()

        def diff(connection: Any) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))

        async with db.engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await db.engine.dispose()
    assert differences == []
