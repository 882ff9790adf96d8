"""Boot a qemu guest (TCG) that runs one scenario group against the kernel's real WiFi stack.

The guest is Debian's own kernel over this machine's root file system (9p, read-only, with a
tmpfs overlay: every host package and the project's venv are there at the same paths), with
``mac80211_hwsim`` radios and real NetworkManager, wpa_supplicant, hostapd and dnsmasq (see
docs/realradio.md). ``build.sh`` makes what it boots, once, under build/realradio/. A group
script writes its results to ``/out``, a host folder shared over 9p; ``boot`` returns it.
Anything that stops the tier from running raises ``GuestError``: the tier fails, never skips.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD = ROOT / "build" / "realradio"
GUEST = HERE / "guest"
_9P = "security_model=none,multidevs=remap"


class GuestError(RuntimeError):
    """The guest could not be built, booted or did not finish its script."""


@dataclass
class Run:
    """One finished guest: its ``/out`` folder, the script's exit status, wall time."""

    name: str
    out: Path
    rc: int | None
    wall: float

    def text(self, name: str) -> str:
        path = self.out / name
        return path.read_text(errors="replace") if path.exists() else ""

    def describe(self) -> str:
        """The tail of the script's output and of the console, for an assertion message."""
        script = self.text("script.log")[-6000:]
        console = self.text("console.log")[-2000:]
        head = f"guest {self.name}: rc={self.rc}, {self.wall:.0f} s"
        return f"{head}\n{script}\n--- console\n{console}"


def build() -> str:
    """Build (or reuse) the kernel and initramfs; returns the kernel version. One build at a
    time across processes (a lock file)."""
    if os.geteuid() != 0:
        raise GuestError("the real-radio tier needs root (apt-get, qemu's 9p passthrough)")
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            ["sh", str(HERE / "build.sh"), str(BUILD)],
            capture_output=True,
            text=True,
            timeout=900,
        )
    if done.returncode != 0:
        raise GuestError(f"build.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
    # The guests import the project from this tree: compiled here (fast), or else each Python
    # process in a guest compiles every module it imports under emulation, 15-40 s a start
    # (PYTHONDONTWRITEBYTECODE, set in some environments, keeps the host's imports from it).
    compiled = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "src"), str(GUEST)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if compiled.returncode != 0:
        raise GuestError(f"compileall failed:\n{compiled.stdout[-3000:]}{compiled.stderr[-2000:]}")
    return done.stdout.split()[-1]


def start(
    kernel: str,
    script: str,
    *,
    name: str,
    memory: int = 384,
    timeout: int = 420,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], Path, float]:
    """Start qemu running ``guest/<script>``; see ``wait``. Its ``/out`` is
    build/realradio/out/<name>-<this process's pid> (two test runs at once never share one)."""
    out = BUILD / "out" / f"{name}-{os.getpid()}"
    for old in (BUILD / "out").glob(f"{name}-*"):
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() or old == out:
            subprocess.run(["rm", "-rf", str(old)], check=True)  # a finished run's
    out.mkdir(parents=True)
    append = [
        "console=ttyS0", "loglevel=4", "panic=-1", "quiet",
        f"rr_init={HERE / 'init.sh'}", f"rr_kdir={BUILD / 'kroot'}",
        f"rr_script={GUEST / script}", f"rr_timeout={timeout - 60}", f"rr_root={ROOT}",
    ]  # fmt: skip
    for key, value in (env or {}).items():
        if any(c in value for c in " \"'"):
            raise ValueError(f"{key}: kernel command line values cannot hold spaces or quotes")
        append.append(f"rr_{key}={value}")
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", str(memory),
        "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(BUILD / "kroot" / "boot" / f"vmlinuz-{kernel}"),
        "-initrd", str(BUILD / f"initrd-{kernel}.gz"), "-append", " ".join(append),
        "-virtfs", f"local,path=/,mount_tag=hostroot,readonly=on,{_9P}",
        "-virtfs", f"local,path={out},mount_tag=out,{_9P}",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip
    console = open(out / "console.log", "wb")  # noqa: SIM115 (closed by the child's exit)
    (out / "qemu.argv").write_text(shlex.join(argv) + "\n")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                            start_new_session=True)  # fmt: skip
    console.close()
    return proc, out, time.monotonic()


def wait(
    proc: subprocess.Popen[bytes], out: Path, started: float, *, name: str, timeout: int = 420
) -> Run:
    """Wait for the guest to power off (killing it after ``timeout`` s)."""
    try:
        proc.wait(max(1.0, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    rc_file = out / "rc"
    rc = int(rc_file.read_text()) if rc_file.exists() and rc_file.read_text().strip() else None
    return Run(name=name, out=out, rc=rc, wall=time.monotonic() - started)


def latest(name: str) -> Run:
    """The last run of group ``name`` (for tests.realradio.report)."""
    runs = sorted((BUILD / "out").glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise GuestError(f"no run of {name} in {BUILD / 'out'}: run the tier first")
    return Run(name=name, out=runs[-1], rc=None, wall=0)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
