"""The real device agent on the NetworkManager radio, end to end: `wifiprov device --radio nm`
runs in the device namespace against python-dbusmock's NetworkManager (the template in
tests/nm) on a private system bus, and a phone provisions it over the AP's DHCP and DNS.

The mock runs in the host's namespace; the agent reaches it through the bus's socket file
(a filesystem path crosses network namespaces, an abstract socket would not). The mock's WiFi
device is named like the lab's AP link and carries that link's MAC, so the agent names its AP
after it. NM's shared mode starts dnsmasq with the files in its dnsmasq-shared.d when the AP
comes up: the test does the same, with the directory the agent wrote its snippet into.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netns.netlab import (
    HOME_PASSWORD,
    HOME_SSID,
    PYTHON,
    TEMPLATE_NAME,
    Lab,
    Process,
)
from tests.nm.conftest import PSK, NmMock
from wifiprov.device.radio.dnsmasq import SNIPPET_NAME, shared_snippet
from wifiprov.wire import naming
from wifiprov.wire.errors import explain

WIFI, SEC = "802-11-wireless", "802-11-wireless-security"
SSID = HOME_SSID.encode()
OWNER_KEY = "org.wifiprov.owner"
NM_ACTIVATED, NM_NO_SECRETS = 100, 7  # NMDeviceState, NMDeviceStateReason


# --- the private system bus and the mock NetworkManager ---


@contextmanager
def private_system_bus() -> Iterator[str]:
    """A private system bus listening on a socket file (tests/nm's ``system_bus`` fixture as a
    plain function, scoped to one test); DBUS_SYSTEM_BUS_ADDRESS points at it meanwhile, which
    is what the mock's spawner reads. Fails, never skips, when a piece is missing."""
    if shutil.which("dbus-daemon") is None:
        pytest.fail("the NetworkManager netns tests need dbus-daemon: apt-get install dbus")
    try:
        import dbus  # noqa: F401
        from dbusmock.testcase import BusType, PrivateDBus
    except ImportError as exc:
        pytest.fail(f"the NetworkManager netns tests need python-dbusmock and dbus-python: {exc}")
    before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    bus = PrivateDBus(BusType.SYSTEM)
    try:
        bus.start()
        address = bus.address
        if not address.startswith("unix:path="):
            pytest.fail(f"the private bus must listen on a socket file (netns): {address}")
        yield address
    finally:
        bus.stop()  # also removes its folder and socket
        if before is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = before


class LabNm(NmMock):
    """tests/nm's mock NetworkManager with its one WiFi device named ``interface`` (the lab's
    AP link) and carrying ``mac`` instead of ``wlan0``."""

    def __init__(self, address: str, log: Path, interface: str, mac: str) -> None:
        super().__init__(address, log)
        try:
            self.remove_device()  # the stock "wlan0"
            self.device = str(self.mock.AddWifi(interface, interface, mac))
        except BaseException:
            self.stop()
            raise

    def ours(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The profiles NM holds that the device agent made."""
        return {
            path: settings
            for path, settings in self.all_settings().items()
            if settings.get("user", {}).get("data", {}).get(OWNER_KEY) == "device"
        }

    def ap_profiles(self) -> list[dict[str, dict[str, Any]]]:
        return [s for s in self.all_settings().values() if s[WIFI].get("mode") == "ap"]

    def active_uuid(self) -> str | None:
        """The uuid of the device's active connection (None when there is none)."""
        active = str(self.device_prop("ActiveConnection"))
        if active == "/":
            return None
        props = self.dbus.Interface(
            self.bus.get_object("org.freedesktop.NetworkManager", active),
            "org.freedesktop.DBus.Properties",
        )
        return str(props.Get("org.freedesktop.NetworkManager.Connection.Active", "Uuid"))


@dataclass
class World:
    lab: Lab
    nm: LabNm
    bus: str  # the bus address the agent is given
    mac: str  # the AP link's MAC, which the mock's device reports
    snippets: Path  # the agent's --dnsmasq-dir (NM's dnsmasq-shared.d)
    agent: Process | None = None

    @property
    def ap_name(self) -> str:
        code = naming.chip_code(naming.mac_chip_id(self.mac))
        return naming.ap_name("Blynk", TEMPLATE_NAME, code)

    @property
    def snippet(self) -> Path:
        return self.snippets / SNIPPET_NAME

    def start_agent(self, timeout: float = 60) -> Process:
        """`wifiprov device --radio nm` in the device ns; returns once its portal answers."""
        lab = self.lab
        lab.store = lab.tmp / "device.json"
        argv = [
            PYTHON, "-m", "wifiprov", "device", "--radio", "nm", "--interface", lab.AP_LINK,
            "--dnsmasq-dir", str(self.snippets), "--template-id", lab.template_id,
            "--template-name", TEMPLATE_NAME, "--store", str(lab.store),
            "--host", lab.CLOUD_HOME, "--port", str(lab.GATEWAY_PORT), "--verbose",
        ]  # fmt: skip
        self.agent = lab.spawn(
            lab.device, argv, env={"DBUS_SYSTEM_BUS_ADDRESS": self.bus}, name="device-nm"
        )
        lab._wait_http(lab.device, f"http://{lab.AP_ADDRESS}/board_info.json", self.agent, timeout)
        return self.agent

    def logs(self) -> str:
        """The agent's and the mock's output, for assertion messages."""
        agent = self.agent.output()[-4000:] if self.agent else "(not started)"
        mock = (self.lab.tmp / "nm-mock.log").read_text(errors="replace")[-2000:]
        return f"\n--- agent ---\n{agent}\n--- NM mock ---\n{mock}"

    def until(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}{self.logs()}")
            if self.agent is not None and not self.agent.alive():
                raise AssertionError(f"the agent exited while waiting for {what}{self.logs()}")
            time.sleep(0.1)


def _link_mac(lab: Lab, ns: str, link: str) -> str:
    done = lab.run(ns, [lab.tools["ip"], "-j", "link", "show", link], check=True)
    return str(json.loads(done.stdout)[0]["address"]).lower()


@pytest.fixture
def world(lab: Lab) -> Iterator[World]:
    """The lab with a cloud, a private system bus and the mock NM (a WiFi device "ap" that sees
    "Home WiFi", WPA2). Teardown: the agent first (SIGTERM: it closes its AP through NM), then
    the mock, then the bus; the lab fixture then empties and removes the namespaces."""
    lab.start_cloud()
    with private_system_bus() as bus:
        mac = _link_mac(lab, lab.device, lab.AP_LINK)
        nm = LabNm(bus, lab.tmp / "nm-mock.log", lab.AP_LINK, mac)
        snippets = lab.tmp / "nm-dnsmasq-shared.d"
        snippets.mkdir()
        w = World(lab, nm, bus, mac, snippets)
        try:
            nm.add_ap("home", SSID, rsn=PSK, strength=80)
            yield w
        finally:
            try:
                if w.agent is not None:
                    w.agent.stop(timeout=10)
            finally:
                nm.stop()


# --- the flow ---


def _provision_argv(lab: Lab, password: str, *extra: str) -> list[str]:
    """`wifiprov provision --wifi joined` as the phone runs it (portal: http://blynk.setup)."""
    secret = lab.tmp / "wifi-password"
    secret.write_text(password + "\n")
    return [
        PYTHON, "-m", "wifiprov", "provision", "--wifi", "joined", "--cloud", lab.cloud_url,
        "--template", lab.template_id, "--ssid", HOME_SSID, "--password-file", str(secret),
        "--json", *extra,
    ]  # fmt: skip


def _events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _open_ap_and_join_it_from_the_phone(w: World) -> None:
    """The agent opens its AP through NM and writes its snippet; dnsmasq starts on that
    directory as NM's shared mode would; the phone gets an address and the portal's names."""
    lab, nm = w.lab, w.nm
    w.start_agent()
    (ap,) = [s for s in nm.added() if s[WIFI]["mode"] == "ap"]  # one AP-mode activation
    assert ap[WIFI]["ssid"] == w.ap_name.encode(), w.logs()
    assert ap["connection"]["interface-name"] == lab.AP_LINK
    assert ap["ipv4"]["method"] == "shared"
    assert ap["ipv4"]["address-data"] == [{"address": lab.AP_ADDRESS, "prefix": 24}]
    assert SEC not in ap  # an open AP, as Edgent's
    assert ap["user"]["data"][OWNER_KEY] == "device"
    assert nm.active_uuid() == ap["connection"]["uuid"]
    assert nm.device_prop("State") == NM_ACTIVATED
    info = lab.portal_json("/board_info.json")
    assert info["ssid"] == w.ap_name and info["ap_sta"] is False, info
    assert {n["ssid"] for n in lab.portal_json("/wifi_scan.json")} == {HOME_SSID}

    assert w.snippet.read_text() == shared_snippet(address=lab.AP_ADDRESS, captive=True)
    lab.start_dnsmasq(captive=True, conf_dir=w.snippets)  # captive unused: the agent's file
    assert lab.dhcp().startswith(lab.AP_PREFIX)
    assert f"nameserver {lab.AP_ADDRESS}" in lab.phone_resolv_conf()
    assert 'option captive-portal "http://192.168.4.1/";' in lab.phone_lease.read_text()
    for name in ("blynk.setup", "example.com", "connectivitycheck.gstatic.com"):
        assert lab.resolve(lab.phone, name) == [lab.AP_ADDRESS], name


def _devices(lab: Lab) -> list[dict[str, Any]]:
    done = lab.run(
        lab.phone, [PYTHON, "-m", "wifiprov", "devices", "--json", "--cloud", lab.cloud_url]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_nm_agent_is_provisioned_from_the_phone_and_comes_online(world: World) -> None:
    lab, nm = world.lab, world.nm
    foreign, _ = nm.add_foreign(b"Neighbour")
    foreign_settings = nm.settings_of(foreign)
    _open_ap_and_join_it_from_the_phone(world)

    done = lab.run(lab.phone, _provision_argv(lab, HOME_PASSWORD, "--name", "Kitchen"), timeout=180)
    output = done.stdout + done.stderr
    events = _events(done.stdout)
    assert done.returncode == 0, output + world.logs()
    steps = [e["step"] for e in events]
    for step in ("find", "join", "board_info", "scan", "config", "online", "done"):
        assert step in steps, steps
    assert events[steps.index("find")]["device"] == world.ap_name
    assert HOME_PASSWORD not in output  # secrets never shown

    # NM was asked to join "Home WiFi" with the password the phone gave.
    modes = [s[WIFI]["mode"] for s in nm.added()]
    assert modes == ["ap", "infrastructure"], modes
    station = nm.added()[1]
    assert station[WIFI]["ssid"] == SSID
    assert station[SEC]["key-mgmt"] == "wpa-psk"
    assert station[SEC]["psk"] == HOME_PASSWORD
    assert station["connection"]["interface-name"] == lab.AP_LINK
    assert station["user"]["data"][OWNER_KEY] == "device"
    assert nm.active_uuid() == station["connection"]["uuid"]

    # ... and reached the cloud over the home link: online, named.
    assert [(d["name"], d["online"]) for d in _devices(lab)] == [("Kitchen", True)]

    # The AP is gone from NM, and so is the snippet; the working station profile stays.
    world.until(lambda: not nm.ap_profiles(), "the AP profile to be removed from NM")
    world.until(
        lambda: not world.snippet.exists() or not world.snippet.read_text(),
        "the dnsmasq snippet to be removed",
    )
    assert [s["connection"]["uuid"] for s in nm.ours().values()] == [station["connection"]["uuid"]]
    assert nm.settings_of(foreign) == foreign_settings  # someone else's profile untouched
    assert world.agent is not None and world.agent.alive(), world.logs()
    assert "logged in to the cloud" in world.agent.output(), world.logs()


def test_nm_agent_wrong_password_reports_722_and_reopens_its_ap(world: World) -> None:
    lab, nm = world.lab, world.nm
    foreign, foreign_uuid = nm.add_foreign(b"Neighbour")
    foreign_settings = nm.settings_of(foreign)
    nm.outcome(SSID, "fail", NM_NO_SECRETS)  # NM: the network wants other secrets
    _open_ap_and_join_it_from_the_phone(world)
    wrong = "not the password"

    # The provisioner runs while NM fails the join; when the agent reopens its AP, NM would
    # start a new dnsmasq on the snippet rewritten for it: so does the test, and the
    # provisioner's diagnosis then reaches the portal by name through it.
    argv = _provision_argv(lab, wrong, "--timeout", "15")  # then it asks the device why
    provisioner = lab.spawn(lab.phone, argv, name="provision")

    def modes() -> list[str]:
        return [str(s[WIFI]["mode"]) for s in nm.added()]

    world.until(lambda: modes() == ["ap", "infrastructure", "ap"], "NM to reopen the AP", 90)
    world.until(lambda: nm.device_prop("State") == NM_ACTIVATED, "the new AP to be active")
    assert world.snippet.read_text() == shared_snippet(address=lab.AP_ADDRESS, captive=True)
    lab.start_dnsmasq(captive=True, conf_dir=world.snippets)
    try:
        provisioner.wait(180)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the provisioner did not finish: {provisioner.output()}") from None
    output = provisioner.output()
    events = _events(output)

    # The provisioner says what went wrong, in words, with the code.
    assert provisioner.popen.returncode == 1, output + world.logs()
    assert events[-1]["step"] == "failed", events
    assert events[-1]["code"] == 722, events
    assert events[-1]["message"] == explain(722).what, events
    assert "diagnose" in [e["step"] for e in events], events
    assert wrong not in output

    # NM was asked for "Home WiFi" with the password given, then the AP again.
    first_ap, attempt, second_ap = nm.added()
    assert attempt[WIFI]["ssid"] == SSID
    assert attempt[SEC]["key-mgmt"] == "wpa-psk" and attempt[SEC]["psk"] == wrong
    assert second_ap[WIFI]["ssid"] == first_ap[WIFI]["ssid"] == world.ap_name.encode()
    assert second_ap["connection"]["uuid"] != first_ap["connection"]["uuid"]
    assert nm.active_uuid() == second_ap["connection"]["uuid"]
    # Of ours, only the new AP is left (the failed station profile was deleted) ...
    assert [s["connection"]["uuid"] for s in nm.ours().values()] == [
        second_ap["connection"]["uuid"]
    ]
    # ... and nothing of anyone else's was touched.
    assert foreign in nm.connections()
    assert nm.settings_of(foreign) == foreign_settings
    assert nm.settings_of(foreign)["connection"]["uuid"] == foreign_uuid

    # The device is back in setup mode with the reason, reachable by name, not in the cloud.
    status = lab.portal_json("/status.json")
    assert status["state"] in ("WAIT_CONFIG", "CONFIGURING"), status
    assert status["last_error"] == 722, status
    assert lab.http_get(lab.phone, "http://blynk.setup/board_info.json").get("status") == 200
    assert _devices(lab) == []

    # `systemctl stop` (SIGTERM): the agent closes its AP through NM and removes its snippet,
    # still touching nothing else.
    agent = world.agent
    assert agent is not None and agent.alive(), world.logs()
    agent.stop(timeout=30)
    assert agent.popen.returncode == 0, world.logs()
    assert nm.ours() == {} and nm.active_uuid() is None, world.logs()
    assert not world.snippet.exists() or not world.snippet.read_text()
    assert nm.settings_of(foreign) == foreign_settings
