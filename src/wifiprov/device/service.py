"""``wifiprov device install`` / ``uninstall``: the agent as a systemd service (Raspberry Pi OS).

What it installs, and why each piece:

- a system user ``wifiprov``: the agent never runs as root (the unit adds group ``gpio``, for
  the LED and button, where that group exists);
- ``/etc/wifiprov/device.toml``: the agent's settings (kept if it exists, unless ``--force``;
  mode 0640, group ``wifiprov``: it may hold the AP passphrase);
- ``/etc/systemd/system/wifiprov-device.service``: starts after NetworkManager, restarts on
  failure, may bind port 80 and set the WiFi country (capabilities, not root), keeps its
  configuration in ``/var/lib/wifiprov`` (mode 0700);
- ``/etc/polkit-1/rules.d/50-wifiprov.rules``: lets that user drive NetworkManager (scan, open
  the AP, join networks) without a password;
- ``/etc/NetworkManager/dnsmasq-shared.d/wifiprov.conf``, empty and owned by the user: the agent
  writes the AP's DNS rules there (NetworkManager's shared mode reads that directory).

``--root DIR`` writes the files under DIR and runs nothing (packaging, tests, a dry look).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

USER = "wifiprov"
UNIT_NAME = "wifiprov-device.service"
CONFIG = Path("/etc/wifiprov/device.toml")
UNIT = Path("/etc/systemd/system") / UNIT_NAME
POLKIT_RULE = Path("/etc/polkit-1/rules.d/50-wifiprov.rules")
DNSMASQ_SNIPPET = Path("/etc/NetworkManager/dnsmasq-shared.d/wifiprov.conf")
STATE_DIR = Path("/var/lib/wifiprov")

UNIT_TEXT = """\
[Unit]
Description=wifiprov device agent (WiFi provisioning and cloud link)
Documentation=https://github.com/wifiprov/wifiprov/blob/main/docs/raspberry-pi.md
Wants=NetworkManager.service
After=NetworkManager.service

[Service]
Type=exec
User={user}
Group={user}
{groups}ExecStart={exec_start}
Restart=on-failure
RestartSec=5
# Port 80 for the portal, and the WiFi country (iw reg set), without running as root.
AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_ADMIN
StateDirectory=wifiprov
StateDirectoryMode=0700
# lgpio (gpiozero on Bookworm) makes its notification pipe in the working directory.
WorkingDirectory=/var/lib/wifiprov
ProtectSystem=strict
ReadWritePaths={dnsmasq_dir}
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes
UMask=0077

[Install]
WantedBy=multi-user.target
"""

POLKIT_TEXT = """\
// wifiprov's device agent drives NetworkManager: scan, open its access point, join networks.
polkit.addRule(function(action, subject) {{
    if (action.id.indexOf("org.freedesktop.NetworkManager.") == 0 && subject.user == "{user}") {{
        return polkit.Result.YES;
    }}
}});
"""

# Config keys `install` writes from its flags (the rest keep the agent's defaults).
INSTALL_KEYS = (
    "template_id",
    "template_name",
    "vendor",
    "board",
    "host",
    "port",
    "port_ssl",
    "interface",
    "country",
    "led_pin",
    "button_pin",
    "ap_passphrase",
)


@dataclass(frozen=True)
class Plan:
    files: dict[Path, tuple[str, int]]  # path -> (text, mode)
    commands: list[list[str]]  # run in order after the files are written (not with --root)


def config_text(values: dict[str, object]) -> str:
    lines = ["# wifiprov device agent: `wifiprov device --help` lists every key", "[device]"]
    lines.append('radio = "nm"')
    lines.append(f'store = "{STATE_DIR / "device.json"}"')
    for key in INSTALL_KEYS:
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, int):  # ports and pins
            lines.append(f"{key} = {value}")
        else:  # a JSON string (ASCII, escaped) is a valid TOML basic string
            lines.append(f"{key} = {json.dumps(str(value))}")
    return "\n".join(lines) + "\n"


def plan(values: dict[str, object], program: str, force: bool, root: Path | None) -> Plan:
    """The files and commands of an install; ``program`` is the ``wifiprov`` executable."""
    exec_start = shlex.join([program, "device", "--config", str(CONFIG)])
    files: dict[Path, tuple[str, int]] = {
        UNIT: (
            UNIT_TEXT.format(
                user=USER,
                exec_start=exec_start,
                dnsmasq_dir=DNSMASQ_SNIPPET.parent,
                # The LED and button (Raspberry Pi OS's group); a unit naming a missing group
                # would not start at all.
                groups="SupplementaryGroups=gpio\n" if _has_group(root, "gpio") else "",
            ),
            0o644,
        ),
        POLKIT_RULE: (POLKIT_TEXT.format(user=USER), 0o644),
    }
    if force or not _under(root, CONFIG).exists():
        files[CONFIG] = (config_text(values), 0o640)  # may hold the AP passphrase
    if not _under(root, DNSMASQ_SNIPPET).exists():
        files[DNSMASQ_SNIPPET] = ("", 0o644)
    commands = []
    if values.get("country") and shutil.which("raspi-config"):
        # As root, once: sets the country for good and lifts the rfkill block Raspberry Pi OS
        # keeps until then (the service, not root, can only `iw reg set` until the next boot).
        commands.append(["raspi-config", "nonint", "do_wifi_country", str(values["country"])])
    commands += [
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        ["chown", f"{USER}:{USER}", str(DNSMASQ_SNIPPET)],
        ["chown", f"root:{USER}", str(CONFIG)],  # readable by the service, not by other users
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", UNIT_NAME],
    ]
    return Plan(files, commands)


def _has_group(root: Path | None, name: str) -> bool:
    try:
        lines = _under(root, Path("/etc/group")).read_text().splitlines()
    except OSError:
        return False
    return any(line.split(":", 1)[0] == name for line in lines)


def _under(root: Path | None, path: Path) -> Path:
    return path if root is None else root / path.relative_to("/")


def _user_exists() -> bool:
    import pwd

    try:
        pwd.getpwnam(USER)
    except KeyError:
        return False
    return True


def write_files(p: Plan, root: Path | None) -> list[Path]:
    written = []
    for path, (text, mode) in p.files.items():
        target = _under(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # O_CREAT keeps an old file's mode: start afresh
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # never readable first
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)  # the umask may have taken bits away
        os.replace(tmp, target)  # whole or not at all
        written.append(target)
    return written


def install(args: argparse.Namespace) -> int:
    root = args.root
    if root is None and os.geteuid() != 0:
        return _error("installing a service needs root: run it with sudo")
    if root is None and shutil.which("systemctl") is None:
        return _error("systemd is not running here (no systemctl): use --root DIR to write files")
    values = {k: getattr(args, k, None) for k in INSTALL_KEYS}
    if not (values["template_id"] and values["template_name"]) and (
        not _under(root, CONFIG).exists() or args.force
    ):
        return _error("give --template-id and --template-name (from your cloud's template)")
    program = args.program or _program()
    # With --root too (the unit written would not start), by its path only: the files may be
    # for another system, whose links and interpreters are not this machine's.
    if problem := unreachable(program, follow=root is None):
        return _error(problem)
    if args.ap_passphrase_file is not None:
        try:
            values["ap_passphrase"] = _read_secret(args.ap_passphrase_file)
        except (OSError, ValueError) as exc:
            return _error(f"cannot use the AP passphrase: {exc}")
    config = _under(root, CONFIG)
    had_config = config.exists()
    p = plan(values, program, args.force, root)
    for path in write_files(p, root):
        replaced = path == config and had_config
        print(f"wrote {path}" + (" (replaced the one there: --force)" if replaced else ""))
    if CONFIG not in p.files:
        given = any(v is not None for v in values.values())
        print(
            f"kept {config} as it was"
            + (": the settings given here are not in it" if given else "")
            + " (--force replaces it; or edit it)"
        )
    if root is not None:
        print("not run (--root):")
        for command in p.commands:
            print("  " + shlex.join(command))
        return 0
    for command in p.commands:
        if command[0] == "useradd" and _user_exists():
            continue
        if subprocess.run(command, check=False).returncode != 0:
            return _error(f"`{shlex.join(command)}` failed (see above)")
        print(f"ran {shlex.join(command)}")
    print(f"\nthe agent runs now; follow it with: journalctl -fu {UNIT_NAME}")
    return 0


def uninstall(args: argparse.Namespace) -> int:
    root = args.root
    if root is None and os.geteuid() != 0:
        return _error("removing a service needs root: run it with sudo")
    if root is None:
        subprocess.run(["systemctl", "disable", "--now", UNIT_NAME], check=False)
    for path in (UNIT, POLKIT_RULE, DNSMASQ_SNIPPET):
        target = _under(root, path)
        if target.exists():
            target.unlink()
            print(f"removed {target}")
    if root is None:
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    kept = [str(_under(root, p)) for p in (CONFIG, STATE_DIR) if _under(root, p).exists()]
    if kept:
        print(f"kept {' and '.join(kept)} (settings and the device's configuration)")
    return 0


# What the unit's sandbox (UNIT_TEXT) hides from the service: a program there cannot start.
HIDDEN = (
    ("/tmp", "the service has its own, empty /tmp (PrivateTmp=yes)"),
    ("/var/tmp", "the service has its own, empty /var/tmp (PrivateTmp=yes)"),
    ("/home", "the service cannot reach home folders (ProtectHome=yes)"),
    ("/root", "the service cannot reach home folders (ProtectHome=yes)"),
    ("/run/user", "the service cannot reach /run/user (ProtectHome=yes)"),
)


def unreachable(program: str, follow: bool = True) -> str | None:
    """Why the service could not start ``program``, if it could not: the path as given and,
    with ``follow`` and where it exists on this machine, what it leads to (symbolic links, a
    script's interpreter, as a virtualenv's ``wifiprov`` names its ``python``)."""
    if "/" in program and not program.startswith("/"):
        return f"{program} is a relative path: give the wifiprov executable's absolute path"
    for path, how in _leads_to(program) if follow else [(os.path.normpath(program), "")]:
        for hidden, why in HIDDEN:
            if path == hidden or path.startswith(hidden + "/"):
                return (
                    f"{program}{how} is under {hidden}, and {why}: install wifiprov in /opt "
                    "(see docs/raspberry-pi.md), or give --program"
                )
    return None


def _leads_to(program: str) -> list[tuple[str, str]]:
    """``program`` and, if it exists here, its real path, its interpreter (``#!``) and the
    interpreter's real path, each with how ``program`` leads to it."""
    found = [(os.path.normpath(program), "")]
    if not program.startswith("/") or not os.path.lexists(program):
        return found
    real = os.path.realpath(program)
    found.append((real, f" (a link to {real})"))
    try:
        with open(real, "rb") as f:
            first = f.readline(512)
    except OSError:
        return found
    words = first[2:].decode(errors="replace").split() if first.startswith(b"#!") else []
    if words and words[0].startswith("/"):
        interpreter, real = words[0], os.path.realpath(words[0])
        found.append((interpreter, f" (its interpreter, {interpreter})"))
        found.append((real, f" (its interpreter, {interpreter}, is {real})"))
    return found


def _read_secret(source: str) -> str:
    """A passphrase from a file, or standard input for ``-``: never from the command line,
    which sudo logs and other users can see."""
    text = sys.stdin.readline() if source == "-" else Path(source).read_text()
    secret = text.strip("\r\n")
    if not (8 <= len(secret) <= 63 and secret.isascii()):
        raise ValueError("a WPA2 passphrase is 8 to 63 ASCII characters")
    return secret


def _program() -> str:
    found = Path(sys.executable).with_name("wifiprov")
    return str(found) if found.exists() else (shutil.which("wifiprov") or "wifiprov")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wifiprov device",
        description="Install or remove the device agent as a systemd service.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("install", help="install and start the service")
    i.add_argument("--template-id")
    i.add_argument("--template-name")
    i.add_argument("--vendor", help="hotspot prefix (default Blynk)")
    i.add_argument("--board")
    i.add_argument("--host", help="the cloud's host name")
    i.add_argument("--port", type=int, help="the cloud's plain TCP port")
    i.add_argument("--port-ssl", type=int, help="the cloud's TLS port")
    i.add_argument("--interface", help="WiFi interface (default: the first one)")
    i.add_argument("--country", help="WiFi country, e.g. GB (WiFi stays blocked until set)")
    i.add_argument("--led-pin", type=int, help="GPIO of the status LED")
    i.add_argument("--button-pin", type=int, help="GPIO of the reset button")
    i.add_argument(
        "--ap-passphrase-file",
        metavar="FILE",
        help="file holding the WPA2 passphrase of the device's AP, or - for standard input "
        "(default: an open AP)",
    )
    i.add_argument("--program", help="the wifiprov executable (default: this one)")
    i.add_argument("--force", action="store_true", help="overwrite an existing device.toml")
    i.add_argument("--root", type=Path, help="write the files under this folder; run nothing")
    u = sub.add_parser("uninstall", help="stop and remove the service (settings are kept)")
    u.add_argument("--root", type=Path, help="remove the files under this folder; run nothing")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return install(args) if args.command == "install" else uninstall(args)
