"""Unit tests for wifiprov.device.identity: Edgent's UID form, persistence, bad files, no crash."""

from __future__ import annotations

import logging
import os
import stat
import uuid
from pathlib import Path

import pytest

from wifiprov.device.identity import is_uid, load_or_create_uid, new_uid


def test_a_uid_has_edgents_form() -> None:
    uids = {new_uid() for _ in range(200)}
    assert len(uids) == 200  # random
    for uid in uids:
        assert is_uid(uid) and uid == uid.lower() and len(uid) == 36
        parsed = uuid.UUID(uid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert not is_uid("0F8E2A4C-1B3D-4E5F-8A9B-0C1D2E3F4A5B")  # Edgent writes lowercase
    assert not is_uid("0f8e2a4c-1b3d-1e5f-8a9b-0c1d2e3f4a5b")  # version 1
    assert not is_uid("0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b")  # no dashes


def test_it_is_created_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "device.json.uid"
    old_umask = os.umask(0o077)  # a strict umask must not make the file private
    try:
        uid = load_or_create_uid(path)
    finally:
        os.umask(old_umask)
    assert is_uid(uid)
    assert path.read_text() == uid + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert load_or_create_uid(path) == uid  # a restart keeps it
    assert load_or_create_uid(path) == uid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.json.uid"]  # no temp left


def test_a_stored_uid_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "uid"
    path.write_text("0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b\n")
    assert load_or_create_uid(path) == "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b"
    assert path.read_text() == "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b\n"  # left alone


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"not a uuid\n",
        b"0f8e2a4c-1b3d-4e5f-8a9b",  # torn
        b"0F8E2A4C-1B3D-4E5F-8A9B-0C1D2E3F4A5B\n",
        b"\xff\xfe\x00garbage",
        b"0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b" * 20,
    ],
)
def test_a_corrupt_file_is_replaced(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "uid"
    path.write_bytes(content)
    uid = load_or_create_uid(path)
    assert is_uid(uid)
    assert path.read_text() == uid + "\n"
    assert load_or_create_uid(path) == uid
    assert "replacing it" in caplog.text or "cannot read" in caplog.text


@pytest.mark.parametrize("where", ["a directory", "no parent directory"])
def test_an_unwritable_place_gives_a_fresh_uid_and_a_warning(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    if where == "a directory":
        path = tmp_path / "uid"
        path.mkdir()
    else:
        path = tmp_path / "missing" / "uid"
    caplog.set_level(logging.WARNING, "wifiprov.device.identity")
    first = load_or_create_uid(path)
    second = load_or_create_uid(path)
    assert is_uid(first) and is_uid(second) and first != second  # fresh each start, never empty
    assert "cannot store the device UID" in caplog.text
    assert first in caplog.text  # says which UID serves this run
    assert not (tmp_path / "uid.tmp").exists()


def test_a_failed_rename_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "uid"
    path.write_text("torn")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    uid = load_or_create_uid(path)
    assert is_uid(uid)
    assert path.read_text() == "torn"  # whole or not at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uid"]
    assert "Permission denied" in caplog.text


def test_a_failed_fsync_is_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    uid = load_or_create_uid(tmp_path / "uid")
    assert is_uid(uid)
    assert list(tmp_path.iterdir()) == []


def test_a_path_with_a_nul_does_not_crash(tmp_path: Path) -> None:
    assert is_uid(load_or_create_uid(tmp_path / "u\0id"))
