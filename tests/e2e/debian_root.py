"""A clean Debian 12 (bookworm) root file system for install tests, like a fresh Raspberry Pi OS
Lite: built once with ``debootstrap`` from the Debian mirror and cached as a tarball under
``build/``, then unpacked afresh for every test, which runs its commands in it with ``chroot`` in
a private mount namespace (``unshare``), so nothing it mounts outlives it.

Raspberry Pi OS Lite ships ``python3``, ``sudo`` and ``ca-certificates``; so does this base, and
nothing else of Python. The packages the docs then install (``python3-venv``, ``git``, and
``zsh`` for the completion test) are downloaded into the base's apt cache when it is built (not
installed), so a test's ``apt install`` installs them from disk; its ``apt update`` still reads
the mirror.

Each copy gets this machine's DNS servers and the certificate authorities it added to Debian's
(nothing else of its configuration: no pip settings, no wheels).

``python tests/e2e/debian_root.py`` builds the cache (the tests do it too, on first use).
Needs root and the network to the Debian mirror: without them it fails and says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
SUITE = "bookworm"
MIRROR = os.environ.get("WIFIPROV_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE = BUILD / f"debian-{SUITE}-base.tar"
PIP_CACHE = BUILD / "debian-pip-cache"  # PyPI downloads, shared by runs (a cache only)
INCLUDE = ["python3", "sudo", "ca-certificates"]  # as on Raspberry Pi OS Lite
PREFETCH = ["python3-venv", "git", "zsh"]  # downloaded into apt's cache, not installed


class Unavailable(RuntimeError):
    """The Debian root cannot be built or entered here (the message says why)."""


def _run(argv: list[str], timeout: float) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise Unavailable(f"`{' '.join(argv)}` failed ({done.returncode}):\n"
                          f"{done.stdout[-3000:]}{done.stderr[-3000:]}")  # fmt: skip


def _apt_get_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "debootstrap"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
        if done.returncode != 0:
            raise Unavailable(f"cannot install debootstrap: {done.stderr[-2000:]}")


def ensure_base() -> Path:
    """The cached base tarball, built if missing (under a lock: test runs may race)."""
    if os.geteuid() != 0:
        raise Unavailable("building and entering a Debian chroot needs root: run the tests as root")
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        raise Unavailable("unshare and chroot (util-linux, coreutils) are needed")
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / f"debian-{SUITE}-base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if BASE.exists():
            return BASE
        _apt_get_debootstrap()
        with tempfile.TemporaryDirectory(dir=BUILD, prefix="debootstrap-") as tmp:
            root = Path(tmp) / "root"
            _run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
                  SUITE, str(root), MIRROR], timeout=1800)  # fmt: skip
            with entered(root) as run:
                prefetch = " ".join(PREFETCH)
                run(f"apt-get update -qq && apt-get install -y -qq --download-only {prefetch} "
                    "&& rm -rf /var/lib/apt/lists/*", timeout=900)  # fmt: skip
            partial = BASE.with_suffix(".tar.partial")
            _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], 600)
            partial.replace(BASE)
    return BASE


@contextlib.contextmanager
def fresh_root(parent: Path) -> Iterator[Path]:
    """A new copy of the base under ``parent``, removed afterwards."""
    base = ensure_base()
    root = parent / "debian-root"
    root.mkdir()
    try:
        _run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(base)], timeout=600)
        # This machine's network, as a Pi on it would have it: its DNS servers, its name in
        # /etc/hosts (sudo looks it up), and the certificate authorities it added to Debian's
        # (a TLS-inspecting proxy's, say), without which PyPI's certificate does not verify.
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        with open(root / "etc/hosts", "a") as hosts:
            hosts.write(f"127.0.1.1\t{os.uname().nodename}\n")
        local_cas = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
        if local_cas:
            for ca in local_cas:
                shutil.copy(ca, root / "usr/local/share/ca-certificates")
            with entered(root) as run:
                run("update-ca-certificates >/dev/null", timeout=120)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Result:
    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.returncode, self.stdout, self.stderr = done.returncode, done.stdout, done.stderr

    def __repr__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@contextlib.contextmanager
def entered(root: Path) -> Iterator[Runner]:
    """A function running a bash script as root inside ``root`` (proc, dev and a pip cache
    mounted in a private mount namespace for each call)."""
    PIP_CACHE.mkdir(parents=True, exist_ok=True)

    def run(script: str, timeout: float = 600, check: bool = True, cwd: str = "/root") -> Result:
        (root / "root/.cache/pip").mkdir(parents=True, exist_ok=True)
        mounts = (
            f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
            f"mount --bind {PIP_CACHE} {root}/root/.cache/pip"
        )
        inner = ["env", "-i", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
                 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "DEBIAN_FRONTEND=noninteractive", "bash", "-euo", "pipefail", "-c",
                 f"cd {cwd}\n{script}"]  # fmt: skip
        argv = ["unshare", "--mount", "--propagation", "private", "--fork", "sh", "-ec",
                f'{mounts} && exec chroot {root} "$@"', "sh", *inner]  # fmt: skip
        done = Result(subprocess.run(argv, capture_output=True, text=True, timeout=timeout))
        if check and done.returncode != 0:
            raise AssertionError(f"in the Debian root:\n{script}\n{done!r}")
        return done

    yield run


class Runner:  # the type of ``entered``'s function, for annotations
    def __call__(
        self, script: str, timeout: float = 600, check: bool = True, cwd: str = "/root"
    ) -> Result: ...


if __name__ == "__main__":
    try:
        print(ensure_base())
    except Unavailable as exc:
        sys.exit(f"error: {exc}")
