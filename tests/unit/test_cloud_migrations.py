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


async def test_longer_names_keep_the_rows_of_an_older_database(tmp_path: Path) -> None:
    """0005 widens names to 200 characters; on SQLite it rebuilds the tables (batch mode), so
    the rows an older cloud wrote must come through it whole."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from wifiprov.cloud.db.database import MIGRATIONS

    db = Database(str(tmp_path / "cloud.db"))

    def upgrade_to(revision: str) -> Any:
        def run(connection: Any) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

        return run

    try:
        async with db.begin() as conn:
            await conn.run_sync(upgrade_to("0004"))
            await conn.execute(
                text(
                    "INSERT INTO organizations (id, name, hotspot_prefix, created_at)"
                    " VALUES (1, 'Acme', 'Acme', 0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO templates (id, org_id, name, firmware_type, created_at)"
                    " VALUES ('TMPL1', 1, 'Thermostat', 'TMPL1', 0)"
                )
            )
        await db.migrate()
        long_name = "é" * 200
        async with db.begin() as conn:
            await conn.execute(text("UPDATE templates SET name = :n"), {"n": long_name})
            rows = (await conn.execute(text("SELECT id, org_id, name FROM templates"))).all()
            org = (await conn.execute(text("SELECT name FROM organizations"))).scalar_one()
    finally:
        await db.engine.dispose()
    assert [tuple(r) for r in rows] == [("TMPL1", 1, long_name)]
    assert org == "Acme"
