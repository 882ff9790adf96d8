"""The WiFi host around NetworkManager: the regulatory country, the stations on our AP (``iw``),
an interface's MAC (sysfs). Small subprocess and file effects, each bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def sysfs_mac(interface: str | None) -> str | None:
    net = Path("/sys/class/net")
    names = (
        [interface]
        if interface
        else sorted(p.name for p in net.glob("*") if (p / "wireless").exists())
    )
    for name in names:
        with contextlib.suppress(OSError):
            return (net / name / "address").read_text().strip().lower()
    return None


async def _run(*argv: str, timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"no answer within {timeout:g} s"
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def set_country(country: str) -> None:
    """Raspberry Pi OS keeps WiFi blocked until a country is set; raspi-config (root only) also
    unblocks rfkill and persists it. ``iw reg set`` (CAP_NET_ADMIN) sets it until the next boot."""
    raspi, iw = shutil.which("raspi-config"), shutil.which("iw")
    commands = []
    if raspi and os.geteuid() == 0:
        commands.append([raspi, "nonint", "do_wifi_country", country])
    if iw:
        commands.append([iw, "reg", "set", country])
    if not commands:
        log.warning("cannot set the WiFi country to %s: install iw (`apt install iw`)", country)
        return
    for argv in commands:
        code, out = await _run(*argv, timeout=20)
        if code == 0:
            log.info("WiFi country set to %s (%s)", country, " ".join(argv))
            return
        log.warning("setting the WiFi country with %s failed: %s", " ".join(argv), out)


async def ap_clients(interface: str) -> int:
    """Stations on our AP: NM does not say over D-Bus, ``iw`` does."""
    iw = shutil.which("iw")
    if iw is None:
        return 0
    try:
        code, out = await _run(iw, "dev", interface, "station", "dump", timeout=3)
    except OSError:
        return 0
    return sum(line.startswith("Station ") for line in out.splitlines()) if code == 0 else 0
