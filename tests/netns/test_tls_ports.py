"""The TLS gateway where newer Edgent looks for it (443, then 9443), run as a non-root service.

Newer Edgent firmware ignores the ports it is given and connects with TLS to 443, then 9443
(PROTOCOLS.md §4; docs/provisioning.md). These tests run the real ``wifiprov cloud`` as ``nobody``
in a network namespace of their own (nothing on the host can collide with 443 or 9443):

- on 9443, with no privilege at all;
- on 443, with only CAP_NET_BIND_SERVICE, granted the way docs/examples/wifiprov-cloud.service
  grants it (AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges=: setpriv does the
  same), with that unit's listeners;
- on 443 without the capability: the cloud exits 1 and says why.

A device that behaves like newer Edgent (TLS to 443, then 9443, whatever it was told) and the
device agent's own link (``port_ssl`` from the provisioning token) log in over TLS, verifying a
test CA's certificate. Tests run as root (here and in CI); not root, or ``ip``/``setpriv``
missing, or no interpreter ``nobody`` can run: the test fails with the reason (never skips).
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import pwd
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trustme

import wifiprov
from wifiprov.device.link import CloudLink, LinkSettings
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status

T = TypeVar("T")
UNIT = Path(__file__).parents[2] / "docs" / "examples" / "wifiprov-cloud.service"
EMAIL, PASSWORD = "owner@example.com", "owner password 1"
HTTP = "127.0.0.1:8080"
EDGENT_TLS_PORTS = (443, 9443)  # newer Edgent's order, whatever port it was given
CAP_NET_BIND_SERVICE = 1 << 10
_counter = itertools.count()


def _need(condition: bool, reason: str) -> None:
    if not condition:
        pytest.fail(reason, pytrace=False)


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    _need(path is not None, f"these tests need '{name}' (Debian: iproute2, util-linux)")
    assert path is not None
    return path


# --- the unit file the docs show ---
def unit_service() -> dict[str, list[str]]:
    """The [Service] keys of docs/examples/wifiprov-cloud.service (a key may repeat)."""
    keys: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def unit_listeners() -> list[str]:
    """The unit's listener options (--http, --gateway, --gateway-tls with their values)."""
    argv = shlex.split(unit_service()["ExecStart"][0])
    options = {a: b for a, b in itertools.pairwise(argv) if a.startswith("--")}
    return [x for opt in ("--http", "--gateway", "--gateway-tls") for x in (opt, options[opt])]


def test_the_example_unit_runs_as_a_user_with_only_the_bind_capability() -> None:
    service = unit_service()
    assert service["User"] == ["wifiprov"] and service["Group"] == ["wifiprov"]
    assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert service["NoNewPrivileges"] == ["yes"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[1] == "cloud" and "--gateway-tls" in argv
    assert unit_listeners()[-1] == "0.0.0.0:443"


# --- `python -m wifiprov` as nobody ---
@dataclass
class Runner:
    base: Path  # readable by everyone: the package copy; data/ belongs to nobody (0700)
    python: str
    pythonpath: str

    @property
    def data(self) -> Path:
        return self.base / "data"

    def argv(self, *args: str, caps: bool = False) -> list[str]:
        """``setpriv`` as nobody; with ``caps``, CAP_NET_BIND_SERVICE as the example unit gives it
        (ambient + inheritable, bounding set reduced to it, no new privileges)."""
        setpriv = [_tool("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        if caps:
            setpriv += [
                "--inh-caps=-all,+net_bind_service",
                "--ambient-caps=-all,+net_bind_service",
                "--bounding-set=-all,+net_bind_service",
                "--no-new-privs",
            ]
        env = [
            "env",
            "-i",
            f"PYTHONPATH={self.pythonpath}",
            "PYTHONDONTWRITEBYTECODE=1",
            f"HOME={self.data}",
            f"WIFIPROV_CONFIG_DIR={self.data / 'config'}",
            "COLUMNS=200",
            "NO_COLOR=1",
            "LANG=C.UTF-8",
        ]
        return [*setpriv, *env, self.python, "-s", "-m", "wifiprov", *args]


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    """The package copied to a folder everyone can read (the checkout may sit where ``nobody``
    cannot enter), its dependencies from this virtualenv's site-packages (copied too when
    ``nobody`` cannot read them), run by an interpreter ``nobody`` may run of this Python's
    minor version (the compiled dependencies are built for it)."""
    _need(os.geteuid() == 0, "these tests need root (network namespaces, setpriv to nobody)")
    _need(pwd.getpwnam("nobody").pw_uid == 65534, "these tests need the user nobody (65534)")
    base = Path(tempfile.mkdtemp(prefix="wifiprov-tls-ports-"))
    try:
        package = Path(wifiprov.__file__).parent
        shutil.copytree(package, base / "wifiprov", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (base / "data").mkdir(mode=0o700)
        os.chown(base / "data", 65534, 65534)
        site = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
        _need(bool(site), f"no site-packages on {sys.path}")
        base_python: str = sys._base_executable  # type: ignore[attr-defined]
        pythons = [base_python, os.path.realpath(sys.executable), "/usr/bin/python3"]
        version = f"sys.version_info[:2] == {tuple(sys.version_info[:2])}"
        probe = f"import sys, uvloop, wifiprov.cloud.app; sys.exit(not {version})"
        tried: list[str] = []
        for attempt in ("as is", "copied"):
            if attempt == "copied":  # site-packages nobody cannot read: a readable copy
                copies = []
                for i, folder in enumerate(site):
                    copy = base / f"site-{i}"
                    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("__pycache__"))
                    for p in [copy, *copy.rglob("*")]:
                        if not p.is_symlink():
                            p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))
                    copies.append(str(copy))
                site = copies
            pythonpath = ":".join([str(base), *site])
            for python in pythons:
                candidate = Runner(base, python, pythonpath)
                done = subprocess.run(
                    candidate.argv()[:-2] + ["-c", probe],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    cwd="/",
                )
                if done.returncode == 0:
                    yield candidate
                    return
                tried.append(f"{python} ({attempt}): {done.stderr.strip()[-300:]}")
        pytest.fail(
            "nobody can run none of these interpreters with wifiprov's dependencies "
            f"(Python {sys.version_info[0]}.{sys.version_info[1]} needed): " + "; ".join(tried),
            pytrace=False,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- a namespace of our own ---
@contextmanager
def namespace() -> Iterator[str]:
    """A fresh network namespace (loopback up, the kernel's default that ports below 1024 need
    privilege stated explicitly); every process in it is killed and it is removed on exit."""
    ip = _tool("ip")
    ns = f"wpvtls{os.getpid()}{next(_counter)}"
    steps = [
        ["netns", "add", ns],
        ["-n", ns, "link", "set", "lo", "up"],
        ["netns", "exec", ns, _tool("sysctl"), "-qw", "net.ipv4.ip_unprivileged_port_start=1024"],
    ]
    try:
        for step in steps:
            done = subprocess.run([ip, *step], capture_output=True, text=True, timeout=30)
            _need(done.returncode == 0, f"ip {' '.join(step)}: {done.stderr.strip()}")
        yield ns
    finally:
        pids = subprocess.run(
            [ip, "netns", "pids", ns], capture_output=True, text=True, timeout=30
        ).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        done = subprocess.run([ip, "netns", "del", ns], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 or "No such file" in done.stderr, done.stderr


def in_ns(ns: str, func: Callable[[], T], timeout: float = 60) -> T:
    """Run ``func`` on a thread moved into ``ns`` (its sockets are the namespace's)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET: this thread only
                    raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
            finally:
                os.close(fd)
            box["value"] = func()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{func} in {ns} took longer than {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# --- the cloud, its certificate, its API ---
@pytest.fixture
def cloud_files(runner: Runner) -> Iterator[tuple[Path, Path]]:
    """A fresh database with its owner, and a certificate for "localhost" from a test CA: all
    owned by nobody, the key 0600. Returns (server.pem, ca.pem)."""
    data = runner.data
    for child in data.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server, ca_pem = data / "server.pem", data / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(server))
    ca.cert_pem.write_to_path(str(ca_pem))
    (data / "password").write_text(PASSWORD + "\n")
    for path in (server, data / "password"):
        path.chmod(0o600)
        os.chown(path, 65534, 65534)
    init = subprocess.run(
        runner.argv(
            "cloud",
            "init",
            "--db",
            str(data / "cloud.db"),
            "--email",
            EMAIL,
            "--password-file",
            str(data / "password"),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert init.returncode == 0, init.stdout + init.stderr
    yield server, ca_pem


def start_cloud(
    runner: Runner, ns: str, listeners: list[str], server_pem: Path, *, caps: bool
) -> subprocess.Popen[str]:
    argv = runner.argv(
        "cloud",
        "--db",
        str(runner.data / "cloud.db"),
        *listeners,
        "--cert",
        str(server_pem),
        "--key",
        str(server_pem),
        "--public-host",
        "localhost",
        caps=caps,
    )
    # `ip netns exec` enters the namespace as root, then setpriv drops to nobody and execs python.
    return subprocess.Popen(
        [_tool("ip"), "netns", "exec", ns, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd="/",
    )


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=15)
    return out


def wait_ready(ns: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    def probe() -> bool:
        try:
            with httpx.Client(timeout=2, trust_env=False) as client:
                client.get(f"http://{HTTP}/openapi.json")
            return True
        except httpx.HTTPError:
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"wifiprov cloud exited {proc.returncode}: {stop(proc)}")
        if in_ns(ns, probe):
            return
        time.sleep(0.2)
    raise AssertionError(f"wifiprov cloud did not answer in {timeout} s: {stop(proc)}")


def provisioning_token() -> dict[str, Any]:
    """Sign in as the owner, make a template, ask for a provisioning token (in the namespace)."""
    with httpx.Client(base_url=f"http://{HTTP}", timeout=30, trust_env=False) as api:
        signed = api.post("/api/auth/sign-in", json={"email": EMAIL, "password": PASSWORD})
        signed.raise_for_status()
        api.headers["Authorization"] = f"Bearer {signed.json()['token']}"
        template = api.post("/api/orgs/1/templates", json={"name": "Lamp"})
        template.raise_for_status()
        request = api.post(f"/api/templates/{template.json()['id']}/provisioning")
        request.raise_for_status()
        return request.json()  # type: ignore[no-any-return]


def devices() -> list[dict[str, Any]]:
    with httpx.Client(base_url=f"http://{HTTP}", timeout=30, trust_env=False) as api:
        signed = api.post("/api/auth/sign-in", json={"email": EMAIL, "password": PASSWORD})
        api.headers["Authorization"] = f"Bearer {signed.json()['token']}"
        listed = api.get("/api/devices")
        listed.raise_for_status()
        return listed.json()  # type: ignore[no-any-return]


# --- devices ---
def edgent_login(token: str, ca_pem: Path) -> int:
    """Newer Edgent's way: TLS to 443, then 9443, on the host it was given, whatever port came
    with it, verifying the certificate; HW_LOGIN. Returns the port that took the login."""
    ctx = ssl.create_default_context(cafile=str(ca_pem))
    refused: list[str] = []
    for port in EDGENT_TLS_PORTS:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as exc:
            refused.append(f"{port}: {exc}")
            continue
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(blynk.encode(Command.HW_LOGIN, 1, token))
            reply = b""
            while len(reply) < 5:
                chunk = tls.recv(5 - len(reply))
                assert chunk, f"the cloud closed the TLS connection on {port} at login"
                reply += chunk
            assert reply == blynk.encode_response(1, Status.OK), (port, reply)
            return port
    raise AssertionError(f"no TLS gateway on {EDGENT_TLS_PORTS}: {refused}")


def agent_login(token: str, port_ssl: int, ca_pem: Path) -> None:
    """The device agent's link, told ``port_ssl`` by the provisioning token, trusting the CA."""

    async def login() -> None:
        link = CloudLink(
            LinkSettings(
                token=token, host="localhost", port=None, port_ssl=port_ssl, ca_file=str(ca_pem)
            )
        )
        await link.open(timeout=15)
        assert link.tls and link.port == port_ssl
        await link.close()

    asyncio.run(login())


def capabilities(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
    return {
        "uid": int(fields["Uid"].split()[1]),  # effective
        "eff": int(fields["CapEff"], 16),
        "amb": int(fields["CapAmb"], 16),
        "bnd": int(fields["CapBnd"], 16),
        "nnp": int(fields.get("NoNewPrivs", "0")),
    }


# --- the tests ---
def test_as_nobody_on_9443_without_any_privilege(
    runner: Runner, cloud_files: tuple[Path, Path]
) -> None:
    server_pem, ca_pem = cloud_files
    listeners = ["--http", HTTP, "--gateway", "127.0.0.1:8442", "--gateway-tls", "0.0.0.0:9443"]
    with namespace() as ns:
        proc = start_cloud(runner, ns, listeners, server_pem, caps=False)
        try:
            wait_ready(ns, proc)
            held = capabilities(proc.pid)
            assert (held["uid"], held["eff"], held["amb"]) == (65534, 0, 0), held
            request = in_ns(ns, provisioning_token)
            assert request["port_ssl"] == 9443  # what the provisioner hands classic firmware
            # Newer Edgent: 443 is refused (nothing listens there), 9443 takes the login.
            assert in_ns(ns, lambda: edgent_login(request["token"], ca_pem)) == 9443
            in_ns(ns, lambda: agent_login(request["token"], request["port_ssl"], ca_pem))
            assert len(in_ns(ns, devices)) == 1
        finally:
            out = stop(proc)
        assert proc.returncode == 0, out
        assert "gateway listening on 0.0.0.0:9443" in out


def test_as_nobody_on_443_with_the_units_capability(
    runner: Runner, cloud_files: tuple[Path, Path]
) -> None:
    server_pem, ca_pem = cloud_files
    listeners = unit_listeners()  # --http 127.0.0.1:8080 --gateway … --gateway-tls 0.0.0.0:443
    assert listeners[-1] == "0.0.0.0:443" and listeners[1] == HTTP
    with namespace() as ns:
        proc = start_cloud(runner, ns, listeners, server_pem, caps=True)
        try:
            wait_ready(ns, proc)
            # nobody, holding CAP_NET_BIND_SERVICE and nothing else, unable to gain more.
            assert capabilities(proc.pid) == {
                "uid": 65534,
                "eff": CAP_NET_BIND_SERVICE,
                "amb": CAP_NET_BIND_SERVICE,
                "bnd": CAP_NET_BIND_SERVICE,
                "nnp": 1,
            }
            request = in_ns(ns, provisioning_token)
            assert request["port_ssl"] == 443
            assert in_ns(ns, lambda: edgent_login(request["token"], ca_pem)) == 443
            in_ns(ns, lambda: agent_login(request["token"], request["port_ssl"], ca_pem))
            assert len(in_ns(ns, devices)) == 1
        finally:
            out = stop(proc)
        assert proc.returncode == 0, out
        assert "gateway listening on 0.0.0.0:443" in out


def test_as_nobody_on_443_without_the_capability_it_says_why(
    runner: Runner, cloud_files: tuple[Path, Path]
) -> None:
    server_pem, _ = cloud_files
    with namespace() as ns:
        proc = start_cloud(runner, ns, unit_listeners(), server_pem, caps=False)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the cloud did not stop: {stop(proc)}") from None
    said = " ".join(out.split())
    assert proc.returncode == 1, out
    assert "error: cannot start the cloud:" in said
    assert "('0.0.0.0', 443): permission denied" in said.lower(), out
    assert "ports below 1024 need CAP_NET_BIND_SERVICE" in said, out  # the real cause
    assert "another process" not in said
    assert "Traceback" not in out
