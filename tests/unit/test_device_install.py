"""`wifiprov device install` run again, and a program the service's sandbox would hide (issue 12
item 9), through the real command with `--root DIR` (a dry run that writes under DIR)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from wifiprov.device.service import unreachable

WIFIPROV = [sys.executable, "-m", "wifiprov"]
PROGRAM = "/opt/wifiprov/bin/wifiprov"  # where docs/raspberry-pi.md installs it


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*WIFIPROV, "device", "install", "--root", str(root), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_a_second_install_keeps_the_config_and_says_so(tmp_path: Path) -> None:
    first = install(tmp_path, "--template-id", "T1", "--template-name", "One", "--program", PROGRAM)
    assert first.returncode == 0, first.stderr
    config = tmp_path / "etc/wifiprov/device.toml"
    assert f"wrote {config}\n" in first.stdout and "kept" not in first.stdout
    before = config.read_bytes()

    again = install(tmp_path, "--template-id", "T2", "--template-name", "Two", "--program", PROGRAM)
    assert again.returncode == 0, again.stderr
    assert config.read_bytes() == before  # untouched
    assert f"wrote {config}" not in again.stdout
    assert f"kept {config} as it was: the settings given here are not in it " \
        "(--force replaces it; or edit it)\n" in again.stdout  # fmt: skip
    assert f"wrote {tmp_path / 'etc/systemd/system/wifiprov-device.service'}" in again.stdout

    # Without settings (refreshing the unit): kept, and nothing to say about ignored flags.
    bare = install(tmp_path, "--program", PROGRAM)
    assert bare.returncode == 0, bare.stderr
    assert f"kept {config} as it was (--force replaces it; or edit it)\n" in bare.stdout


def test_force_replaces_the_config_and_says_so(tmp_path: Path) -> None:
    assert install(tmp_path, "--template-id", "T1", "--template-name", "One",
                   "--program", PROGRAM).returncode == 0  # fmt: skip
    config = tmp_path / "etc/wifiprov/device.toml"
    forced = install(tmp_path, "--force", "--template-id", "T2", "--template-name", "Two",
                     "--program", PROGRAM)  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert f"wrote {config} (replaced the one there: --force)\n" in forced.stdout
    assert "kept" not in forced.stdout
    assert 'template_id = "T2"' in config.read_text()
    assert config.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("/tmp/venv/bin/wifiprov", "own, empty /tmp (PrivateTmp=yes)"),
        ("/var/tmp/venv/bin/wifiprov", "own, empty /var/tmp (PrivateTmp=yes)"),
        ("/home/pi/.venv/bin/wifiprov", "cannot reach home folders (ProtectHome=yes)"),
        ("/root/venv/bin/wifiprov", "cannot reach home folders (ProtectHome=yes)"),
        ("/run/user/1000/wifiprov", "cannot reach /run/user (ProtectHome=yes)"),
        ("/opt/../tmp/wifiprov", "own, empty /tmp (PrivateTmp=yes)"),
    ],
)
def test_a_program_the_sandbox_hides_is_refused_in_a_dry_run(
    tmp_path: Path, program: str, reason: str
) -> None:
    done = install(tmp_path, "--template-id", "T", "--template-name", "N", "--program", program)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {program} is under /") and reason in done.stderr
    assert "install wifiprov in /opt" in done.stderr
    assert not (tmp_path / "etc").exists()  # nothing written


def test_a_relative_program_is_refused(tmp_path: Path) -> None:
    done = install(tmp_path, "--template-id", "T", "--template-name", "N",
                   "--program", "venv/bin/wifiprov")  # fmt: skip
    assert done.returncode == 1 and "absolute path" in done.stderr
    assert not (tmp_path / "etc").exists()


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder the service could see (not /tmp, /var/tmp or a home folder): /dev/shm."""
    if not os.path.isdir("/dev/shm"):
        pytest.fail("/dev/shm is missing: this test needs a folder outside the hidden ones")
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="wifiprov-test-"))
    yield path
    shutil.rmtree(path)


def test_where_a_program_leads_is_checked_when_installing_for_real(
    outside: Path, tmp_path: Path
) -> None:
    # A virtualenv's console script names its python, whose link may lead into a home folder
    # (pyenv) or /tmp: the unit would fail at start with "No such file or directory".
    (tmp_path / "python3").write_text("")
    (outside / "python3").symlink_to(tmp_path / "python3")
    script = outside / "wifiprov"
    script.write_text(f"#!{outside / 'python3'}\nimport wifiprov\n")
    why = unreachable(str(script)) or ""
    assert f"(its interpreter, {outside / 'python3'}, is {tmp_path / 'python3'}) is under /tmp" \
        in why  # fmt: skip
    assert unreachable(str(script), follow=False) is None  # --root: the path alone

    (outside / "link").symlink_to("/home/pi/venv/bin/wifiprov")
    assert "(a link to /home/pi/venv/bin/wifiprov) is under /home" in (
        unreachable(str(outside / "link")) or ""
    )

    (outside / "python3").unlink()
    (outside / "python3").symlink_to("/usr/bin/env")  # anything outside the hidden folders
    assert unreachable(str(script)) is None
