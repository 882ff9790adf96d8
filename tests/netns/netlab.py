"""A device, a phone and a cloud in their own network namespaces, on real sockets.

Topology (addresses are ``Lab`` class attributes)::

    phone ns                    device ns                         cloud ns
    wlan  192.168.4.x (DHCP) -- ap    192.168.4.1  (portal, dnsmasq)
                                home  10.77.1.2  ------------  home   10.77.1.1 (gateway, DNS)
    mobile 10.77.2.2  ------------------------------------------ mobile 10.77.2.1 (HTTP API)

The device's "ap" link stands for its access point; "home" for the WiFi network it joins (its
default route goes through the cloud ns, the "internet"). The phone keeps a "mobile data" link
to the cloud, as a real phone does while on a device's AP. DHCP and DNS on the AP come from
dnsmasq started the way NetworkManager starts it (``nm_like_command``) with our snippet.

Use it from any test folder::

    from tests.netns.netlab import lab

    with lab(tmp_path) as net:             # or the ``lab`` fixture in tests/netns/conftest.py
        net.start_dnsmasq(captive=True)
        net.dhcp()                          # the phone's address, by dhclient
        net.resolve(net.phone, "example.com")
        net.start_cloud(); net.start_device()
        net.http_get(net.phone, "http://blynk.setup/")

Everything is removed on exit, even on failure: processes in the namespaces first, then the
namespaces and their /etc/netns folders. Not root, or ``ip``/``dnsmasq``/``dhclient`` missing:
``LabError`` (tests fail with the reason; they never skip).
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wifiprov.device.radio.dnsmasq import SNIPPET_NAME, nm_like_command, shared_snippet

T = TypeVar("T")
PYTHON = sys.executable
NETNS_ETC = Path("/etc/netns")
OWNER_EMAIL, OWNER_PASSWORD = "owner@example.com", "owner password 1"
HOME_SSID, HOME_PASSWORD = "Home WiFi", "correct horse"
TEMPLATE_NAME = "Lamp"
_counter = itertools.count()


class LabError(RuntimeError):
    """The lab cannot be built or a piece of it did not start: the reason is in the message."""


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise LabError(
            f"the netns tests need '{name}' (Debian: iproute2, dnsmasq-base, isc-dhcp-client)"
        )
    return path


def check_host() -> dict[str, str]:
    """Root and the tools, or a LabError naming what is missing."""
    if os.geteuid() != 0:
        raise LabError("the netns tests need root (network namespaces, veth, port 53 and 80)")
    return {name: _tool(name) for name in ("ip", "dnsmasq", "dhclient", "getent")}


@dataclass
class Process:
    """A process started in a namespace; its stdout and stderr go to ``log``."""

    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)


@dataclass
class Lab:
    tmp: Path
    device: str  # namespace names, unique per run
    phone: str
    cloud: str
    tools: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    dnsmasq: Process | None = None
    cloud_url: str = ""  # the HTTP API, as the phone reaches it
    template_id: str = ""
    store: Path | None = None  # the device agent's configuration file

    AP_ADDRESS = "192.168.4.1"
    AP_PREFIX = "192.168.4."
    DEVICE_HOME = "10.77.1.2"
    CLOUD_HOME = "10.77.1.1"  # also the home network's DNS server (an upstream dnsmasq)
    UPSTREAM_ANSWER = "10.77.1.99"  # what the upstream DNS answers for every name
    PHONE_MOBILE = "10.77.2.2"
    CLOUD_MOBILE = "10.77.2.1"
    HTTP_PORT, GATEWAY_PORT = 8080, 8442
    AP_LINK, PHONE_LINK = "ap", "wlan"  # the two ends of the "WiFi" between device and phone

    @property
    def namespaces(self) -> list[str]:
        return [self.device, self.phone, self.cloud]

    # --- running things in a namespace ---
    def run(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        timeout: float = 60,
        check: bool = False,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``ns`` to the end (bounded by ``timeout``); output captured as text."""
        done = subprocess.run(
            [self.tools["ip"], "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **(env or {})},
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise LabError(
                f"{' '.join(argv)} in {ns} failed ({done.returncode}): {done.stdout}{done.stderr}"
            )
        return done

    def spawn(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        name: str | None = None,
        **popen: Any,
    ) -> Process:
        """Start ``argv`` in ``ns``; stopped (then the namespace emptied) when the lab closes."""
        log = self.tmp / f"{name or Path(argv[0]).name}-{next(_counter)}.log"
        with log.open("wb") as out:
            options: dict[str, Any] = {
                "stdout": out,
                "stderr": subprocess.STDOUT,
                "stdin": subprocess.DEVNULL,
            }
            options.update(popen)
            proc = subprocess.Popen(
                [self.tools["ip"], "netns", "exec", ns, *argv],
                env={**self.env, **(env or {})},
                **options,
            )
        process = Process(proc, log, list(argv))
        self.processes.append(process)
        return process

    def wifiprov(
        self, ns: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run(ns, [PYTHON, "-m", "wifiprov", *args], timeout=timeout)

    def call(self, ns: str, func: Callable[[], T], timeout: float = 60) -> T:
        """Run ``func`` in this process, on a thread moved into ``ns`` (sockets only: names
        still resolve with the host's resolv.conf, so use addresses)."""
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
            raise LabError(f"{func} in {ns} took longer than {timeout} s")
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    # --- the pieces ---
    def start_dnsmasq(
        self, *, captive: bool, timeout: float = 15, conf_dir: Path | None = None
    ) -> Process:
        """The AP's DHCP and DNS as NetworkManager runs them, with our snippet; replaces a
        running one. ``conf_dir``: read that dnsmasq-shared.d as it is (what a device agent
        wrote; ``captive`` is then ignored) instead of writing ours there. Raises LabError
        naming who holds the port when it cannot start."""
        if self.dnsmasq is not None:
            self.dnsmasq.stop()
        if conf_dir is None:
            conf_dir = self.tmp / "dnsmasq-shared.d"
            conf_dir.mkdir(exist_ok=True)
            (conf_dir / SNIPPET_NAME).write_text(
                shared_snippet(address=self.AP_ADDRESS, captive=captive)
            )
        argv = nm_like_command(
            interface=self.AP_LINK,
            address=self.AP_ADDRESS,
            conf_dir=str(conf_dir),
            lease_file=str(self.tmp / f"dnsmasq-{self.AP_LINK}.leases"),
            pid_file=str(self.tmp / f"nm-dnsmasq-{self.AP_LINK}.pid"),
        )
        argv[0] = self.tools["dnsmasq"]
        self.dnsmasq = proc = self.spawn(self.device, [*argv, "--log-dhcp"], name="dnsmasq")
        self._wait_bound(proc, 53, "udp", timeout)
        return proc

    def _wait_bound(self, proc: Process, port: int, proto: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                proc.wait(5)
                culprit = self.port_in_use_message(self.device, self.AP_ADDRESS, port, proto)
                raise LabError(f"{proc.argv[0]} exited: {proc.output().strip()}; {culprit}")
            # That process's own sockets: the namespace's table also lists a culprit's.
            table = Path(f"/proc/{proc.pid}/net/{proto}")
            try:
                inodes = {
                    fields[9]
                    for fields in (line.split() for line in table.read_text().splitlines()[1:])
                    if int(fields[1].rsplit(":", 1)[1], 16) == port
                }
                owned = {
                    os.readlink(fd).removeprefix("socket:[").removesuffix("]")
                    for fd in Path(f"/proc/{proc.pid}/fd").iterdir()
                }
            except OSError:
                inodes, owned = set(), set()
            if inodes & owned:
                return
            time.sleep(0.05)
        raise LabError(f"{proc.argv[0]} did not bind {proto} port {port} in {timeout} s")

    def port_in_use_message(self, ns: str, address: str, port: int, proto: str) -> str:
        """``wifiprov.linux.ports.port_in_use_message`` as seen from inside ``ns``."""
        code = (
            "import sys; from wifiprov.linux.ports import port_in_use_message as m;"
            "print(m(sys.argv[1], int(sys.argv[2]), sys.argv[3]))"
        )
        done = self.run(ns, [PYTHON, "-c", code, address, str(port), proto], timeout=30)
        return (done.stdout or done.stderr).strip()

    def dhcp(self, timeout: float = 40) -> str:
        """The phone asks for an address on the AP with dhclient (Debian's dhclient-script
        writes the DNS server into /etc/netns/<phone>/resolv.conf); returns the address."""
        conf = self.tmp / "dhclient.conf"
        conf.write_text(
            "option captive-portal code 114 = text;\n"  # RFC 8910
            "timeout 30;\nretry 5;\n"
            "request subnet-mask, broadcast-address, routers, domain-name-servers, "
            "domain-name, captive-portal;\n"
        )
        if not (NETNS_ETC / self.phone / "resolv.conf").is_file():
            raise LabError("the phone's resolv.conf must exist before dhclient runs")
        done = self.run(
            self.phone,
            [
                self.tools["dhclient"],
                "-4",
                "-1",
                "-v",
                "-cf",
                str(conf),
                "-lf",
                str(self.phone_lease),
                "-pf",
                str(self.tmp / "dhclient.pid"),
                self.PHONE_LINK,
            ],
            timeout=timeout,
        )
        if done.returncode != 0:
            raise LabError(f"dhclient got no address: {done.stderr}")
        address = self.phone_address()
        if address is None:
            raise LabError(f"dhclient exited but {self.PHONE_LINK} has no address: {done.stderr}")
        return address

    @property
    def phone_lease(self) -> Path:
        return self.tmp / "dhclient.leases"

    def phone_address(self) -> str | None:
        done = self.run(
            self.phone, [self.tools["ip"], "-j", "-4", "addr", "show", self.PHONE_LINK], check=True
        )
        for link in json.loads(done.stdout or "[]"):
            for info in link.get("addr_info", []):
                return str(info["local"])
        return None

    def phone_resolv_conf(self) -> str:
        return (NETNS_ETC / self.phone / "resolv.conf").read_text()

    def resolve(self, ns: str, name: str) -> list[str]:
        """IPv4 addresses of ``name`` through ``ns``'s own resolver (getent); [] if none."""
        done = self.run(ns, [self.tools["getent"], "ahostsv4", name], timeout=30)
        return sorted({line.split()[0] for line in done.stdout.splitlines() if line.strip()})

    def http_get(self, ns: str, url: str, timeout: float = 15) -> dict[str, Any]:
        """GET ``url`` from ``ns`` (its name resolved there, IPv4 only: in captive mode AAAA
        queries are forwarded upstream), redirects not followed:
        {"status", "location", "body"}; {"error": "..."} when it cannot connect."""
        code = (
            "import http.client,json,sys,urllib.parse as u\n"
            "import socket\n"
            "p=u.urlsplit(sys.argv[1])\n"
            "try:\n"
            " a=socket.getaddrinfo(p.hostname,p.port or 80,socket.AF_INET)[0][4][0]\n"
            " c=http.client.HTTPConnection(a,p.port or 80,timeout=10)\n"
            " c.request('GET',(p.path or '/')+('?'+p.query if p.query else ''),"
            "headers={'Host':p.netloc})\n"
            " r=c.getresponse()\n"
            " print(json.dumps({'status':r.status,'location':r.getheader('Location'),"
            "'body':r.read(2000).decode('utf-8','replace')}))\n"
            "except OSError as e:\n"
            " print(json.dumps({'error':str(e)}))\n"
        )
        done = self.run(ns, [PYTHON, "-c", code, url], timeout=timeout)
        try:
            return json.loads(done.stdout)  # type: ignore[no-any-return]
        except ValueError:
            return {"error": done.stderr.strip() or "no output"}

    def start_cloud(self, timeout: float = 60) -> str:
        """`wifiprov cloud` in the cloud ns (devices are told host 10.77.1.1), its owner signed
        in from the phone, and a template; returns the API URL as the phone sees it."""
        (self.tmp / "owner-password").write_text(OWNER_PASSWORD + "\n")
        db = str(self.tmp / "cloud.db")
        init = self.wifiprov(
            self.cloud,
            "cloud",
            "init",
            "--db",
            db,
            "--email",
            OWNER_EMAIL,
            "--password-file",
            str(self.tmp / "owner-password"),
        )
        if init.returncode != 0:
            raise LabError(f"cloud init failed: {init.stdout}{init.stderr}")
        cloud = self.spawn(
            self.cloud,
            [
                PYTHON,
                "-m",
                "wifiprov",
                "cloud",
                "--db",
                db,
                "--http",
                f"0.0.0.0:{self.HTTP_PORT}",
                "--gateway",
                f"0.0.0.0:{self.GATEWAY_PORT}",
                "--public-host",
                self.CLOUD_HOME,
            ],
            name="cloud",
        )
        self.cloud_url = f"http://{self.CLOUD_MOBILE}:{self.HTTP_PORT}"
        self._wait_http(self.phone, self.cloud_url + "/openapi.json", cloud, timeout)
        login = self.wifiprov(
            self.phone,
            "login",
            "--cloud",
            self.cloud_url,
            "--email",
            OWNER_EMAIL,
            "--password-file",
            str(self.tmp / "owner-password"),
        )
        if login.returncode != 0:
            raise LabError(f"login failed: {login.stdout}{login.stderr}")
        template = self.api("POST", "/api/orgs/1/templates", {"name": TEMPLATE_NAME})
        self.template_id = template["id"]
        return self.cloud_url

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the cloud API as the signed-in owner, from the phone ns."""
        import httpx

        session = json.loads((Path(self.env["WIFIPROV_CONFIG_DIR"]) / "session.json").read_text())

        def request() -> Any:
            with httpx.Client(base_url=self.cloud_url, timeout=30, trust_env=False) as client:
                reply = client.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {session['token']}"}
                )
                reply.raise_for_status()
                return reply.json() if reply.content else None

        return self.call(self.phone, request)

    def start_device(self, *extra: str, timeout: float = 60, wait: bool = True) -> Process:
        """`wifiprov device --radio sim --portal 192.168.4.1:80` in the device ns, with a sim
        air that holds the home network; returns once its portal answers (``wait``)."""
        from wifiprov.sim.air import Air

        air = Air(self.tmp / "air")
        try:
            if HOME_SSID not in {n.ssid for n in air.networks()}:
                air.add_network(HOME_SSID, HOME_PASSWORD, rssi=-40)
        finally:
            air.close()
        self.store = self.tmp / "device.json"
        device = self.spawn(
            self.device,
            [
                PYTHON,
                "-m",
                "wifiprov",
                "device",
                "--radio",
                "sim",
                "--air",
                str(self.tmp / "air"),
                "--device-id",
                "lamp",
                "--template-id",
                self.template_id or "TMPLnetns01",
                "--template-name",
                TEMPLATE_NAME,
                "--store",
                str(self.store),
                "--portal",
                f"{self.AP_ADDRESS}:80",
                "--host",
                self.CLOUD_HOME,
                "--port",
                str(self.GATEWAY_PORT),
                *extra,
            ],
            name="device",
        )
        if wait:
            url = f"http://{self.AP_ADDRESS}/board_info.json"
            self._wait_http(self.device, url, device, timeout)
        return device

    def portal_json(self, path: str) -> Any:
        """GET a JSON document from the portal, from inside the device ns (always reachable)."""
        import httpx

        def get() -> Any:
            with httpx.Client(timeout=10, trust_env=False) as client:
                return client.get(f"http://{self.AP_ADDRESS}{path}").json()

        return self.call(self.device, get)

    def _wait_http(self, ns: str, url: str, proc: Process, timeout: float) -> None:
        import httpx

        def probe() -> bool:
            try:
                with httpx.Client(timeout=2, trust_env=False) as client:
                    client.get(url)
                return True
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise LabError(f"{' '.join(proc.argv[:4])} exited: {proc.output()[-3000:]}")
            if self.call(ns, probe):
                return
            time.sleep(0.2)
        raise LabError(f"{url} did not answer in {timeout} s: {proc.output()[-3000:]}")

    def set_phone_link(self, up: bool) -> None:
        """The phone walks out of (or back into) the device's WiFi."""
        self.run(
            self.phone,
            [self.tools["ip"], "link", "set", self.PHONE_LINK, "up" if up else "down"],
            check=True,
        )

    # --- building and removing ---
    def build(self) -> None:
        ip = self.tools["ip"]
        steps: list[list[str]] = []
        for ns in self.namespaces:
            steps += [["netns", "add", ns], ["-n", ns, "link", "set", "lo", "up"]]
        d, p, c = self.device, self.phone, self.cloud
        steps += [
            [
                "link",
                "add",
                self.AP_LINK,
                "netns",
                d,
                "type",
                "veth",
                "peer",
                "name",
                self.PHONE_LINK,
                "netns",
                p,
            ],
            ["link", "add", "home", "netns", d, "type", "veth", "peer", "name", "home", "netns", c],
            [
                "link",
                "add",
                "mobile",
                "netns",
                p,
                "type",
                "veth",
                "peer",
                "name",
                "mobile",
                "netns",
                c,
            ],
            ["-n", d, "addr", "add", f"{self.AP_ADDRESS}/24", "dev", self.AP_LINK],
            ["-n", d, "addr", "add", f"{self.DEVICE_HOME}/24", "dev", "home"],
            ["-n", c, "addr", "add", f"{self.CLOUD_HOME}/24", "dev", "home"],
            ["-n", c, "addr", "add", f"{self.CLOUD_MOBILE}/24", "dev", "mobile"],
            ["-n", p, "addr", "add", f"{self.PHONE_MOBILE}/24", "dev", "mobile"],
        ]
        for ns, links in (
            (d, (self.AP_LINK, "home")),
            (c, ("home", "mobile")),
            (p, (self.PHONE_LINK, "mobile")),
        ):
            steps += [["-n", ns, "link", "set", link, "up"] for link in links]
        steps.append(["-n", d, "route", "add", "default", "via", self.CLOUD_HOME])
        # `ip netns exec` bind-mounts these over /etc/resolv.conf: the phone's is filled by
        # dhclient; the device's names the home network's DNS (dnsmasq forwards to it).
        for ns, text in (
            (p, "# written by dhclient\n"),
            (d, f"nameserver {self.CLOUD_HOME}\n"),
            (c, f"nameserver {self.CLOUD_HOME}\n"),
        ):
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "resolv.conf").write_text(text)
        for step in steps:
            done = subprocess.run([ip, *step], capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                raise LabError(f"ip {' '.join(step)}: {done.stderr.strip()}")
        self.env = {
            **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
            "WIFIPROV_CONFIG_DIR": str(self.tmp / "config"),
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        self._start_upstream_dns()

    def _start_upstream_dns(self) -> None:
        """The home network's DNS (in the cloud ns): answers every name with UPSTREAM_ANSWER,
        so a forwarded query is visible as such."""
        upstream = self.spawn(
            self.cloud,
            [
                self.tools["dnsmasq"],
                "--conf-file=/dev/null",
                "--no-hosts",
                "--no-resolv",
                "--keep-in-foreground",
                "--bind-interfaces",
                f"--listen-address={self.CLOUD_HOME}",
                f"--address=/#/{self.UPSTREAM_ANSWER}",
                f"--pid-file={self.tmp}/upstream.pid",
            ],
            name="upstream-dns",
        )
        self._wait_bound(upstream, 53, "udp", 15)

    def close(self) -> list[str]:
        """Remove everything; returns what could not be removed (empty when all went)."""
        problems: list[str] = []
        ip = self.tools["ip"]
        for ns in self.namespaces:
            pids = subprocess.run(
                [ip, "netns", "pids", ns], capture_output=True, text=True, timeout=30
            ).stdout.split()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in pids:
                    try:
                        os.kill(int(pid), sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
                while pids and time.monotonic() < deadline:
                    pids = [
                        pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)
                    ]
                    if pids:
                        time.sleep(0.05)
                for proc in self.processes:  # reap our children
                    proc.popen.poll()
                if not pids:
                    break
        for proc in self.processes:
            proc.stop(timeout=5)
        for ns in self.namespaces:
            done = subprocess.run(
                [ip, "netns", "del", ns], capture_output=True, text=True, timeout=30
            )
            if done.returncode != 0 and "No such file" not in done.stderr:
                problems.append(f"ip netns del {ns}: {done.stderr.strip()}")
            shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        return problems


def _zombie(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def leftovers(lab: Lab) -> list[str]:
    """What is left of a closed lab: namespaces, /etc/netns folders (should be [])."""
    listed = subprocess.run(
        [lab.tools["ip"], "netns", "list"], capture_output=True, text=True, timeout=30
    ).stdout.split()
    left = [f"namespace {ns}" for ns in lab.namespaces if ns in listed]
    left += [f"{NETNS_ETC / ns}" for ns in lab.namespaces if (NETNS_ETC / ns).exists()]
    return left


@contextmanager
def lab(tmp: Path) -> Iterator[Lab]:
    """Build the three namespaces under a unique prefix; remove them all on exit."""
    tools = check_host()
    tag = f"wpv{os.getpid()}{next(_counter)}"
    tmp.mkdir(parents=True, exist_ok=True)
    net = Lab(tmp, device=f"{tag}d", phone=f"{tag}p", cloud=f"{tag}c", tools=tools)
    try:
        net.build()
        yield net
    finally:
        problems = net.close()
        if problems:
            raise LabError("; ".join(problems))


def phone_moves_to(net: Lab, network: str, timeout: float = 40) -> str | None:
    """The phone's WiFi changes network, as when its user picks another in Settings → WiFi:
    ``"ap"`` joins the device's access point (the home link down, the WiFi link up, an address
    by DHCP: returned); ``"home"`` goes back home (the lease released, the WiFi link down, the
    home link up; returns None). Home is the lab's "mobile" link to the cloud
    (10.77.2.0/24): the phone reaches the cloud there only, so on the AP it has no way to it.
    The namespace stays the same, so a browser running in it keeps running across moves."""
    ip = net.tools["ip"]
    if network == "ap":
        net.run(net.phone, [ip, "link", "set", "mobile", "down"], check=True)
        net.set_phone_link(True)
        return net.dhcp(timeout)
    if network != "home":
        raise ValueError(f"the phone moves to 'ap' or 'home', not {network!r}")
    if (net.tmp / "dhclient.pid").exists():  # release the lease and stop that dhclient
        net.run(
            net.phone,
            [
                net.tools["dhclient"],
                "-4",
                "-r",
                "-cf",
                str(net.tmp / "dhclient.conf"),
                "-lf",
                str(net.phone_lease),
                "-pf",
                str(net.tmp / "dhclient.pid"),
                net.PHONE_LINK,
            ],
            timeout=timeout,
        )
    net.run(net.phone, [ip, "addr", "flush", "dev", net.PHONE_LINK], check=True)
    net.set_phone_link(False)
    net.run(net.phone, [ip, "link", "set", "mobile", "up"], check=True)
    return None


def start_cloud_with(net: Lab, *extra: str, timeout: float = 60) -> str:
    """``Lab.start_cloud`` with more `wifiprov cloud` options (e.g. ``--provisioning-ttl 20``)."""
    spawn = net.spawn

    def spawn_with_extra(ns: str, argv: Sequence[str], **options: Any) -> Process:
        if options.get("name") == "cloud":
            argv = [*argv, *extra]
        return spawn(ns, argv, **options)

    net.spawn = spawn_with_extra  # type: ignore[method-assign]
    try:
        return net.start_cloud(timeout)
    finally:
        del net.spawn
