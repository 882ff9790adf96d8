"""The SQLite database is private to its user; no key material reaches the logs (issue 11.11)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from wifiprov.cloud.db import Database
from wifiprov.cloud.tokens import TokenHasher


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_directory_0700_and_database_files_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "cloud.sqlite3"
    db = Database(str(path))
    try:
        await db.migrate()
        async with db.begin() as conn:  # the WAL and shared memory files exist while open
            await TokenHasher.load(db)
            files = sorted(path.parent.iterdir())
            assert {p.name for p in files} >= {"cloud.sqlite3", "cloud.sqlite3-wal"}
            assert conn is not None
        assert mode(path.parent) == 0o700
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        await db.close()


async def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "cloud.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    db = Database(str(path))
    await db.migrate()
    await db.close()
    assert mode(path) == 0o600
    assert mode(tmp_path) == 0o755  # an existing directory is not the cloud's to change


async def test_the_token_key_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # what `wifiprov cloud -v` sets
    db = Database(str(tmp_path / "cloud.sqlite3"))
    try:
        await db.migrate()
        hasher = await TokenHasher.load(db)  # first start: the key is made and stored
        await TokenHasher.load(db)
    finally:
        await db.close()
    key = hasher._key.hex()
    assert caplog.records  # the debug log did run
    assert key not in caplog.text
