"""A private system bus with a mock NetworkManager (python-dbusmock + ``nm_template.py``).

``nm`` spawns a fresh mock per test with one WiFi device, ``wlan0``; its helpers add access
points, script activation outcomes, add someone else's profiles, and read back what NM was
given. The tests drive the real clients (dbus-fast) against it. They fail, never skip, when
dbus-daemon or python-dbusmock is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from wifiprov.device.radio.nm import NmRadio

TEMPLATE = Path(__file__).with_name("nm_template.py")
NM = "org.freedesktop.NetworkManager"
MANAGER = "/org/freedesktop/NetworkManager"
SETTINGS = MANAGER + "/Settings"
MOCK = "org.freedesktop.DBus.Mock"
MAC = "02:00:00:aa:bb:01"
ETH_MAC = "02:00:00:aa:bb:04"

PSK = 0x100 | 0x8 | 0x80  # key-mgmt PSK, CCMP
SAE = 0x400 | 0x8 | 0x80
EAP = 0x200 | 0x8 | 0x80
PRIVACY = 0x1


def _require() -> None:
    if shutil.which("dbus-daemon") is None:
        pytest.fail("the NetworkManager tests need dbus-daemon: apt-get install dbus")
    try:
        import dbus  # noqa: F401
        import dbusmock  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"the NetworkManager tests need python-dbusmock and dbus-python: {exc}")


@pytest.fixture(scope="session")
def system_bus() -> Iterator[str]:
    """A private system bus; DBUS_SYSTEM_BUS_ADDRESS points at it while the tests run."""
    _require()
    from dbusmock.testcase import BusType, PrivateDBus

    before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    bus = PrivateDBus(BusType.SYSTEM)
    bus.start()  # sets DBUS_SYSTEM_BUS_ADDRESS
    try:
        yield bus.address
    finally:
        bus.stop()
        if before is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = before


class NmMock:
    """The mock NetworkManager process and handles to steer and inspect it (dbus-python)."""

    def __init__(self, address: str, log: Path) -> None:
        import dbus
        from dbusmock.testcase import BusType, SpawnedMock

        self.dbus = dbus
        self._log = log.open("w")
        server = SpawnedMock.spawn_with_template(
            str(TEMPLATE), {}, BusType.SYSTEM, stdout=subprocess.DEVNULL, stderr=self._log
        )
        self.process = server.process
        self.bus = dbus.bus.BusConnection(address)
        self.mock = dbus.Interface(self.bus.get_object(NM, "/org/freedesktop"), MOCK)
        self.manager_mock = dbus.Interface(self.bus.get_object(NM, MANAGER), MOCK)
        self.device = str(self.mock.AddWifi("wlan0", "wlan0", MAC))
        self.ethernet = ""  # add_ethernet

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._log.close()

    # -- steering

    def add_ap(
        self,
        name: str,
        ssid: bytes,
        *,
        wpa: int = 0,
        rsn: int = PSK,
        flags: int | None = None,
        strength: int = 70,
        frequency: int = 2437,
        bssid: str = "",
    ) -> str:
        if flags is None:
            flags = PRIVACY if (wpa or rsn) else 0
        digest = zlib.crc32(name.encode()).to_bytes(4, "big")
        bssid = bssid or "02:11:22:" + ":".join(f"{b:02x}" for b in digest[1:])
        return str(
            self.mock.AddRawAccessPoint(
                self.device,
                name,
                self.dbus.ByteArray(ssid),
                bssid,
                self.dbus.UInt32(frequency),
                self.dbus.Byte(strength),
                self.dbus.UInt32(flags),
                self.dbus.UInt32(wpa),
                self.dbus.UInt32(rsn),
                signature="ssaysuyuuu",
            )
        )

    def outcome(self, ssid: bytes, kind: str, reason: int = 0) -> None:
        self.mock.SetActivationOutcome(self.dbus.ByteArray(ssid), kind, self.dbus.UInt32(reason))

    def ap_outcome(self, kind: str, reason: int = 0) -> None:
        self.mock.SetApOutcome(kind, self.dbus.UInt32(reason))

    def set_manager(self, name: str, value: Any) -> None:
        self.mock.SetProperty(MANAGER, NM, name, value)

    def add_foreign(self, ssid: bytes, *, activate: bool = False) -> tuple[str, str]:
        """Someone else's profile (an Imager-made "preconfigured"), optionally active."""
        dbus = self.dbus
        uuid = f"f0f0f0f0-0000-4000-8000-{len(self.connections()):012d}"
        settings = dbus.Dictionary(
            {
                "connection": dbus.Dictionary(
                    {
                        "id": "preconfigured",
                        "uuid": uuid,
                        "type": "802-11-wireless",
                        "autoconnect": dbus.Boolean(False),
                    },
                    signature="sv",
                ),
                "802-11-wireless": dbus.Dictionary(
                    {"ssid": dbus.ByteArray(ssid), "mode": "infrastructure"}, signature="sv"
                ),
                "ipv4": dbus.Dictionary({"method": "auto"}, signature="sv"),
            },
            signature="sa{sv}",
        )
        settings_iface = dbus.Interface(self.bus.get_object(NM, SETTINGS), NM + ".Settings")
        path = str(settings_iface.AddConnection(settings))
        if activate:
            manager = dbus.Interface(self.bus.get_object(NM, MANAGER), NM)
            manager.ActivateConnection(path, self.device, "/")
        return path, uuid

    def add_ethernet(self, *, carrier: bool = True, name: str = "eth0") -> str:
        """A wired device ``eth0`` (MAC ``ETH_MAC``), its cable plugged in or not."""
        self.ethernet = str(self.mock.AddEthernet(name, name, ETH_MAC, carrier))
        return self.ethernet

    def set_carrier(self, carrier: bool) -> None:
        self.mock.SetCarrier(self.ethernet, carrier)

    def wired_outcome(self, kind: str, reason: int = 0) -> None:
        self.mock.SetWiredOutcome(kind, self.dbus.UInt32(reason))

    def drop(self, reason: int) -> None:
        self.mock.DropConnection(self.device, self.dbus.UInt32(reason))

    def remove_device(self) -> None:
        self.mock.RemoveDevice(self.device)

    # -- inspecting

    def connections(self) -> list[str]:
        settings_iface = self.dbus.Interface(self.bus.get_object(NM, SETTINGS), NM + ".Settings")
        return [str(p) for p in settings_iface.ListConnections()]

    def settings_of(self, path: str) -> dict[str, dict[str, Any]]:
        conn = self.dbus.Interface(self.bus.get_object(NM, path), NM + ".Settings.Connection")
        return _plain(conn.GetSettings(byte_arrays=True))

    def all_settings(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {p: self.settings_of(p) for p in self.connections()}

    def added(self) -> list[dict[str, dict[str, Any]]]:
        """Settings NM received in AddAndActivateConnection(2), oldest first (with secrets)."""
        return [
            _plain(args[0])
            for _, method, args in self.manager_mock.GetCalls()
            if str(method).startswith("AddAndActivateConnection")
        ]

    def dev_prop_wireless(self, name: str) -> Any:
        props = self.dbus.Interface(
            self.bus.get_object(NM, self.device), "org.freedesktop.DBus.Properties"
        )
        return list(props.Get(NM + ".Device.Wireless", name))

    def device_prop(self, name: str, device: str | None = None) -> Any:
        props = self.dbus.Interface(
            self.bus.get_object(NM, device or self.device), "org.freedesktop.DBus.Properties"
        )
        return props.Get(NM + ".Device", name)


def _plain(value: Any) -> Any:
    """dbus-python values as plain Python (ay → bytes)."""
    import dbus

    if isinstance(value, dbus.ByteArray | bytes):
        return bytes(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, dbus.Byte) for v in value):
            return bytes(int(v) for v in value)
        return [_plain(v) for v in value]
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


@pytest.fixture
def nm(system_bus: str, tmp_path: Path) -> Iterator[NmMock]:
    mock = NmMock(system_bus, tmp_path / "nm-mock.log")
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
async def wired_radio(nm: NmMock, tmp_path: Path) -> AsyncIterator[NmRadio]:
    """The radio on a machine that also has Ethernet (``eth0``, cable plugged in)."""
    nm.add_ethernet()
    r = NmRadio("wlan0", snippet_dir=tmp_path / "dnsmasq-shared.d", scan_timeout=5)
    await r.open()
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
async def radio(nm: NmMock, tmp_path: Path) -> AsyncIterator[NmRadio]:
    r = NmRadio("wlan0", snippet_dir=tmp_path / "dnsmasq-shared.d", scan_timeout=5)
    await r.open()
    try:
        yield r
    finally:
        await r.close()
