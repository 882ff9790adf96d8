"""`wifiprov device install --root DIR`: the systemd service files a Raspberry Pi gets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import wifiprov
from wifiprov.device.cli import load_settings
from wifiprov.device.service import unreachable

WIFIPROV = [sys.executable, "-m", "wifiprov"]


def install(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """A dry run into ``root``. Without ``--program`` it names the documented install's program:
    this checkout's own may live where the unit's sandbox cannot see it (/tmp, /home), which
    the install refuses (tests/unit/test_device_install.py), and tests must not depend on where
    the checkout is."""
    if "--program" not in args:
        args = (*args, "--program", "/opt/wifiprov/bin/wifiprov")
    argv = [*WIFIPROV, "device", "install", "--root", str(root), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, input=stdin)


def test_install_writes_unit_polkit_rule_config_and_dns_snippet(tmp_path: Path) -> None:
    name = 'Garden "Sensor" \\ ü\nnext line'
    done = install(
        tmp_path, "--template-id", "TMPL0001", "--template-name", name, "--country", "GB",
        "--led-pin", "17", "--button-pin", "27", "--host", "cloud.example.com",
        "--program", "/opt/wifiprov/bin/wifiprov", "--ap-passphrase-file", "-",
        stdin="printed-on-label\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "systemctl enable --now wifiprov-device.service" in done.stdout  # listed, not run

    config = tmp_path / "etc/wifiprov/device.toml"
    values = load_settings(config, {})  # the agent reads back exactly what was given
    assert values["template_name"] == name and values["radio"] == "nm"
    assert values["country"] == "GB" and values["led_pin"] == 17 and values["button_pin"] == 27
    assert values["store"] == "/var/lib/wifiprov/device.json"
    assert values["ap_passphrase"] == "printed-on-label"
    assert config.stat().st_mode & 0o777 == 0o640  # not for other users' eyes
    assert "printed-on-label" not in done.stdout + done.stderr

    unit = (tmp_path / "etc/systemd/system/wifiprov-device.service").read_text()
    assert "ExecStart=/opt/wifiprov/bin/wifiprov device --config /etc/wifiprov/device.toml" in unit
    assert "User=wifiprov" in unit and "After=NetworkManager.service" in unit
    assert "CAP_NET_BIND_SERVICE" in unit  # port 80 without root
    assert "WorkingDirectory=/var/lib/wifiprov" in unit  # lgpio's pipe: not in read-only /
    rule = (tmp_path / "etc/polkit-1/rules.d/50-wifiprov.rules").read_text()
    assert 'subject.user == "wifiprov"' in rule and "org.freedesktop.NetworkManager." in rule
    assert (tmp_path / "etc/NetworkManager/dnsmasq-shared.d/wifiprov.conf").read_text() == ""


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # An executable that exists outside /tmp and /home (systemd-analyze checks it exists; the
    # checkout's own interpreter may live where the unit's sandbox cannot see it).
    program = shutil.which("true") or "/usr/bin/true"
    assert install(tmp_path, "--template-id", "T", "--template-name", "N",
                   "--program", program).returncode == 0  # fmt: skip
    unit = tmp_path / "etc/systemd/system/wifiprov-device.service"
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_existing_config_is_kept_unless_forced(tmp_path: Path) -> None:
    assert install(tmp_path, "--template-id", "T1", "--template-name", "One").returncode == 0
    config = tmp_path / "etc/wifiprov/device.toml"
    assert install(tmp_path, "--template-id", "T2", "--template-name", "Two").returncode == 0
    assert tomllib.loads(config.read_text())["device"]["template_id"] == "T1"
    assert install(tmp_path, "--force", "--template-id", "T2",
                   "--template-name", "Two").returncode == 0  # fmt: skip
    assert tomllib.loads(config.read_text())["device"]["template_id"] == "T2"


def test_install_without_a_template_explains_and_writes_nothing(tmp_path: Path) -> None:
    done = install(tmp_path)
    assert done.returncode == 1 and "--template-id" in done.stderr
    assert not (tmp_path / "etc").exists()


OTHER_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]  # nobody


@pytest.fixture(scope="module")
def as_other_user() -> Iterator[list[str]]:
    """``python -m wifiprov`` as another user, whatever the checkout's permissions.

    The checkout (and a virtualenv in it) may sit in a folder no other user can enter, so the
    package's source is copied to a folder everyone can read and run by an interpreter that user
    may run (the one the virtualenv was made from, else the system's): ``wifiprov device
    install|uninstall`` needs only the standard library.
    """
    base = Path(tempfile.mkdtemp(prefix="wifiprov-other-user-"))
    try:
        package = Path(wifiprov.__file__).parent
        shutil.copytree(package, base / "wifiprov", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        env = [*OTHER_USER, "env", "-i", f"PYTHONPATH={base}", "PYTHONDONTWRITEBYTECODE=1"]
        pythons = [sys._base_executable, os.path.realpath(sys.executable), "/usr/bin/python3"]
        for python in pythons:
            probe = [*env, python, "-s", "-c", "import sys, wifiprov.device.service; "
                     "sys.exit(sys.version_info < (3, 11))"]  # fmt: skip
            if subprocess.run(probe, capture_output=True, timeout=30, cwd="/").returncode == 0:
                yield [*env, python, "-s", "-m", "wifiprov"]
                return
        pytest.fail(f"another user can run none of {pythons} (Python 3.11+)", pytrace=False)
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("command", ["install", "uninstall"])
def test_without_root_it_says_sudo(command: str, as_other_user: list[str]) -> None:
    argv = [*as_other_user, "device", command, "--template-id", "T", "--template-name", "N"]
    if command == "uninstall":
        argv = [*as_other_user, "device", "uninstall"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"error: {'installing' if command == 'install' else 'removing'} a " \
        "service needs root: run it with sudo\n"  # fmt: skip


def test_uninstall_removes_the_service_and_keeps_the_settings(tmp_path: Path) -> None:
    assert install(tmp_path, "--template-id", "T", "--template-name", "N").returncode == 0
    argv = [*WIFIPROV, "device", "uninstall", "--root", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "etc/systemd/system/wifiprov-device.service").exists()
    assert not (tmp_path / "etc/polkit-1/rules.d/50-wifiprov.rules").exists()
    assert (tmp_path / "etc/wifiprov/device.toml").exists() and "kept" in done.stdout


def test_the_gpio_group_is_used_only_where_it_exists(tmp_path: Path) -> None:
    pi, other = tmp_path / "pi", tmp_path / "other"
    (pi / "etc").mkdir(parents=True)
    (pi / "etc/group").write_text("root:x:0:\ngpio:x:997:pi\n")
    unit = "etc/systemd/system/wifiprov-device.service"
    for root in (pi, other):
        assert install(root, "--template-id", "T", "--template-name", "N").returncode == 0
    assert "SupplementaryGroups=gpio" in (pi / unit).read_text()
    assert "SupplementaryGroups" not in (other / unit).read_text()  # it would not start


def test_a_passphrase_wpa2_cannot_take_is_refused_and_nothing_written(tmp_path: Path) -> None:
    done = install(tmp_path, "--template-id", "T", "--template-name", "N",
                   "--ap-passphrase-file", "-", stdin="short\n")  # fmt: skip
    assert done.returncode == 1 and "8 to 63" in done.stderr and "short" not in done.stderr
    assert not (tmp_path / "etc").exists()


def test_a_program_in_a_home_folder_is_refused() -> None:
    # Checked as a function: the real install path (not --root) would change this machine.
    assert "home folder" in (unreachable("/home/pi/.venv/bin/wifiprov") or "")
    assert "home folder" in (unreachable("/root/.venv/bin/wifiprov") or "")
    assert unreachable("/opt/wifiprov/bin/wifiprov") is None
