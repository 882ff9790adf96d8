"""A small asyncio NetworkManager client over D-Bus (dbus-fast), shared by the device radio and
the provisioner's laptop WiFi.

It finds the WiFi device (and an Ethernet one, with its carrier), lists access points (SSIDs as
raw bytes), adds and activates profiles, follows the device's ``StateChanged`` signal until an
activation succeeds or fails, and notices NetworkManager leaving the bus (``NameOwnerChanged``)
or the device going away (``DeviceRemoved``) so that no wait hangs. Which profiles it may touch
is the callers' rule: ``delete_own`` refuses any profile that does not carry the caller's marker.
The system bus is ``$DBUS_SYSTEM_BUS_ADDRESS`` when set (tests point it at a private bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from wifiprov.linux import nm_settings as nms
from wifiprov.linux.nm_settings import AccessPoint, Failure, Settings

log = logging.getLogger(__name__)

NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
SETTINGS_PATH = NM_PATH + "/Settings"
I_DEVICE = NM + ".Device"
I_WIRELESS = NM + ".Device.Wireless"
I_WIRED = NM + ".Device.Wired"
I_AP = NM + ".AccessPoint"
I_ACTIVE = NM + ".Connection.Active"
I_SETTINGS = NM + ".Settings"
I_CONNECTION = NM + ".Settings.Connection"
I_IP4 = NM + ".IP4Config"
PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"
DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"
DEVICE_TYPE_ETHERNET = 1
DEVICE_TYPE_WIFI = 2
INTERFACE_FLAG_CARRIER = 0x10000  # NMDeviceInterfaceFlags (NM >= 1.22)
CALL_TIMEOUT = 25.0  # NM answers in milliseconds; this only stops a wedged daemon hanging us

_GONE_ERRORS = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Disconnected",
}


# Device states that end an activation that had started (the device fell back, or someone
# unmanaged it) without NM saying FAILED.
_FELL_BACK = {nms.DEVICE_DISCONNECTED, nms.DEVICE_UNAVAILABLE, nms.DEVICE_UNMANAGED}


class NmError(Exception):
    """Something about NetworkManager stops the operation; the message says what to do."""


class NetworkManagerUnavailable(NmError):
    """No system bus, or no NetworkManager on it."""


class NetworkManagerStopped(NmError):
    """NetworkManager left the bus during an operation."""


class NoWifiDevice(NmError):
    """No (such) WiFi device managed by NetworkManager."""


class DeviceGone(NmError):
    """The WiFi device was removed (unplugged, driver reset) during an operation."""


class RadioBlocked(NmError):
    """WiFi is switched off (rfkill, or NetworkManager's radio switch)."""


class ActivationFailed(NmError):
    def __init__(self, failure: Failure, reason: int, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.reason = reason


@dataclass(frozen=True)
class NmDevice:
    """A device NM manages (WiFi or Ethernet): its object path, interface name and MAC."""

    path: str
    interface: str
    hw_address: str


WifiDevice = NmDevice  # the name its first users know


def system_bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Variant) else value


Listener = Callable[[Message], None]


class NmClient:
    """One connection to the system bus, talking to NetworkManager. Open with ``NmClient.open``."""

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus
        self._listeners: list[Listener] = []
        self.generation = 0  # bumped each time NM leaves the bus: object paths are stale then
        self.running = True
        bus.add_message_handler(self._on_message)

    @classmethod
    async def open(cls, bus_address: str | None = None) -> NmClient:
        address = bus_address or system_bus_address()
        try:
            async with asyncio.timeout(10):
                bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        except Exception as exc:  # any failure to reach the bus means the same to the user
            raise NetworkManagerUnavailable(
                f"cannot reach the system D-Bus at {address} ({exc.__class__.__name__}: {exc}); "
                "NetworkManager runs on the system bus: is dbus running?"
            ) from None
        client = cls(bus)
        try:
            await client._add_matches()
            if not await client.nm_running():
                raise NetworkManagerUnavailable(
                    f"NetworkManager is not running (no {NM} on the system bus at {address}): "
                    "start it with `sudo systemctl start NetworkManager`, or use --radio sim"
                )
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        self._bus.remove_message_handler(self._on_message)
        self._bus.disconnect()

    # -- plumbing

    async def call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
        *,
        destination: str = NM,
    ) -> list[Any]:
        message = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                reply = await self._bus.call(message)
        except TimeoutError:
            raise NmError(
                f"NetworkManager did not answer {member} within {CALL_TIMEOUT:g} s"
            ) from None
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            name = reply.error_name or ""
            text = str(reply.body[0]) if reply.body else name
            if destination == NM and name in _GONE_ERRORS:
                raise NetworkManagerStopped(f"NetworkManager is not on the bus ({name})")
            raise DBusError(name, text, reply)
        return list(reply.body)

    async def get(self, path: str, interface: str, name: str) -> Any:
        body = await self.call(path, PROPERTIES, "Get", "ss", [interface, name])
        return _unwrap(body[0])

    async def get_all(self, path: str, interface: str) -> dict[str, Any]:
        body = await self.call(path, PROPERTIES, "GetAll", "s", [interface])
        return {k: _unwrap(v) for k, v in body[0].items()}

    async def _add_matches(self) -> None:
        rules = [
            f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',"
            f"arg0='{NM}'",
            f"type='signal',sender='{NM}',interface='{NM}',member='DeviceRemoved'",
            f"type='signal',sender='{NM}',interface='{I_DEVICE}',member='StateChanged'",
            f"type='signal',sender='{NM}',interface='{I_ACTIVE}',member='StateChanged'",
            f"type='signal',sender='{NM}',interface='{PROPERTIES}',member='PropertiesChanged',"
            f"arg0='{I_WIRELESS}'",
        ]
        for rule in rules:
            await self.call(
                "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule], destination=DBUS
            )

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if is_nm_owner_change(msg):
            stopped = not msg.body[2]
            if stopped and self.running:
                self.generation += 1
                log.warning("NetworkManager left the system bus")
            self.running = not stopped
        for listener in list(self._listeners):
            try:
                listener(msg)
            except Exception:
                log.exception("NetworkManager signal listener failed")

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(message)`` for every NM signal; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[Message]]:
        """NM signals received while inside, queued: subscribe before acting, then read."""
        queue: asyncio.Queue[Message] = asyncio.Queue()
        remove = self.add_listener(queue.put_nowait)
        try:
            yield queue
        finally:
            remove()

    # -- manager and devices

    async def nm_running(self) -> bool:
        body = await self.call(
            "/org/freedesktop/DBus", DBUS, "NameHasOwner", "s", [NM], destination=DBUS
        )
        self.running = bool(body[0])
        return self.running

    async def check_radio(self) -> None:
        """Raise RadioBlocked when WiFi is off by rfkill or by NetworkManager's switch."""
        props = await self.get_all(NM_PATH, NM)
        if not props.get("WirelessHardwareEnabled", True):
            raise RadioBlocked(
                "the WiFi radio is blocked (rfkill): set the WiFi country (--country) or run "
                "`rfkill unblock wifi`"
            )
        if not props.get("WirelessEnabled", True):
            raise RadioBlocked(
                "the WiFi radio is blocked (rfkill, or switched off in NetworkManager): set the "
                "WiFi country (--country) or run `rfkill unblock wifi` and `nmcli radio wifi on`"
            )

    async def wifi_device(self, interface: str | None = None) -> WifiDevice:
        """The WiFi device named ``interface``, or the first managed one."""
        names = []
        for path in (await self.call(NM_PATH, NM, "GetDevices"))[0]:
            props = await self.get_all(path, I_DEVICE)
            if props.get("DeviceType") != DEVICE_TYPE_WIFI:
                continue
            names.append(str(props.get("Interface")))
            if interface and props.get("Interface") != interface:
                continue
            if not interface and not props.get("Managed", True):
                continue
            # The permanent MAC: NM randomizes the current one while scanning disconnected,
            # and the device's name (its AP's chip code) must not change between starts.
            wireless = await self.get_all(path, I_WIRELESS)
            hw = wireless.get("PermHwAddress") or wireless.get("HwAddress", "")
            return WifiDevice(path, str(props["Interface"]), str(hw).lower())
        if interface:
            raise NoWifiDevice(
                f"NetworkManager has no WiFi device {interface!r} (WiFi devices: "
                f"{', '.join(names) or 'none'}); check --interface and `nmcli device`"
            )
        raise NoWifiDevice(
            "NetworkManager manages no WiFi device: is the adapter present and managed "
            "(`nmcli device`)?"
        )

    async def ethernet_device(self, interface: str | None = None) -> NmDevice | None:
        """The Ethernet device named ``interface``, or the first managed one; None when there
        is none."""
        for path in (await self.call(NM_PATH, NM, "GetDevices"))[0]:
            props = await self.get_all(path, I_DEVICE)
            if props.get("DeviceType") != DEVICE_TYPE_ETHERNET:
                continue
            if interface and props.get("Interface") != interface:
                continue
            if not interface and not props.get("Managed", True):
                continue
            wired = await self.get_all(path, I_WIRED)
            hw = wired.get("PermHwAddress") or wired.get("HwAddress", "")
            return NmDevice(path, str(props["Interface"]), str(hw).lower())
        return None

    async def carrier(self, device: NmDevice) -> bool:
        """Whether the Ethernet device has carrier (a cable to something that is on)."""
        try:
            flags = await self.get(device.path, I_DEVICE, "InterfaceFlags")
        except DBusError:  # NM < 1.22
            return bool(await self.get(device.path, I_WIRED, "Carrier"))
        return bool(int(flags) & INTERFACE_FLAG_CARRIER)

    async def device_state(self, device: WifiDevice) -> tuple[int, int]:
        state, reason = await self.get(device.path, I_DEVICE, "StateReason")
        return int(state), int(reason)

    # -- access points

    async def request_scan(self, device: WifiDevice, timeout: float) -> None:
        """Ask for a fresh scan and wait (at most ``timeout``) for it; NM refuses scans at times
        (AP mode, a scan just done): the cached list is used then."""
        with self.listen() as queue:
            try:
                await self.call(device.path, I_WIRELESS, "RequestScan", "a{sv}", [{}])
            except DBusError as exc:
                log.debug("no fresh scan: %s", exc.text)
                return
            try:
                await self.get(device.path, I_WIRELESS, "LastScan")
            except DBusError:
                return  # NM < 1.12 cannot tell when a scan ends
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while True:
                        msg = await queue.get()
                        if msg.member == "PropertiesChanged" and msg.path == device.path:
                            if "LastScan" in msg.body[1]:
                                return

    async def access_points(self, device: WifiDevice) -> list[AccessPoint]:
        paths = (await self.call(device.path, I_WIRELESS, "GetAllAccessPoints"))[0]
        found = []
        for path in paths:
            try:
                p = await self.get_all(path, I_AP)
            except DBusError:
                continue  # went out of range while we read the list
            found.append(
                AccessPoint(
                    path=path,
                    ssid=bytes(p.get("Ssid", b"")),
                    bssid=str(p.get("HwAddress", "")).lower(),
                    flags=int(p.get("Flags", 0)),
                    wpa_flags=int(p.get("WpaFlags", 0)),
                    rsn_flags=int(p.get("RsnFlags", 0)),
                    strength=int(p.get("Strength", 0)),
                    frequency=int(p.get("Frequency", 0)),
                )
            )
        return found

    async def active_access_point(self, device: WifiDevice) -> AccessPoint | None:
        path = await self.get(device.path, I_WIRELESS, "ActiveAccessPoint")
        if not path or path == "/":
            return None
        for ap in await self.access_points(device):
            if ap.path == path:
                return ap
        return None

    async def ip4_address(self, device: WifiDevice) -> str:
        path = await self.get(device.path, I_DEVICE, "Ip4Config")
        if not path or path == "/":
            return ""
        data = await self.get(path, I_IP4, "AddressData")
        return str(_unwrap(data[0]["address"])) if data else ""

    # -- profiles and activation

    async def connection_settings(self, path: str) -> dict[str, dict[str, Any]]:
        return nms.plain((await self.call(path, I_CONNECTION, "GetSettings"))[0])

    async def connections(self) -> list[str]:
        return [str(p) for p in (await self.call(SETTINGS_PATH, I_SETTINGS, "ListConnections"))[0]]

    async def connection_by_uuid(self, uuid: str) -> str | None:
        try:
            body = await self.call(SETTINGS_PATH, I_SETTINGS, "GetConnectionByUuid", "s", [uuid])
        except DBusError:
            return None
        return str(body[0])

    async def active_connection(self, device: WifiDevice) -> tuple[str, dict[str, Any]] | None:
        """The device's active connection: its path and properties (Uuid, Id, Connection,
        Default, Default6, State ...), or None."""
        path = await self.get(device.path, I_DEVICE, "ActiveConnection")
        if not path or path == "/":
            return None
        try:
            return str(path), await self.get_all(path, I_ACTIVE)
        except DBusError:
            return None  # deactivated while we looked

    async def add_and_activate(
        self, settings: Settings, device: WifiDevice, *, volatile: bool = False
    ) -> tuple[str, str, bool]:
        """Add a profile and activate it on ``device``: (profile path, active path, volatile).
        ``volatile`` asks NM (>= 1.16) to forget the profile once it goes down."""
        if volatile:
            try:
                body = await self.call(
                    NM_PATH,
                    NM,
                    "AddAndActivateConnection2",
                    "a{sa{sv}}ooa{sv}",
                    [settings, device.path, "/", {"persist": Variant("s", "volatile")}],
                )
                return str(body[0]), str(body[1]), True
            except DBusError as exc:
                if exc.type != "org.freedesktop.DBus.Error.UnknownMethod":
                    raise
        body = await self.call(
            NM_PATH, NM, "AddAndActivateConnection", "a{sa{sv}}oo", [settings, device.path, "/"]
        )
        return str(body[0]), str(body[1]), False

    async def activate(self, connection: str, device: WifiDevice) -> str:
        body = await self.call(
            NM_PATH, NM, "ActivateConnection", "ooo", [connection, device.path, "/"]
        )
        return str(body[0])

    async def deactivate(self, active: str) -> None:
        try:
            await self.call(NM_PATH, NM, "DeactivateConnection", "o", [active])
        except DBusError as exc:
            log.debug("deactivate %s: %s", active, exc.text)  # already down

    async def delete_own(self, path: str, owner: str, uuid: str | None = None) -> bool:
        """Delete the profile at ``path`` only if ``owner`` created it (and it has ``uuid``
        when given); False when it is someone else's or gone."""
        try:
            settings = await self.connection_settings(path)
        except DBusError:
            return False
        if nms.owner_of(settings) != owner:
            log.warning("not deleting %s: wifiprov did not create it", path)
            return False
        if uuid is not None and settings["connection"].get("uuid") != uuid:
            return False
        try:
            await self.call(path, I_CONNECTION, "Delete")
        except DBusError as exc:
            log.debug("delete %s: %s", path, exc.text)
            return False
        return True

    async def own_connections(self, owner: str) -> list[tuple[str, dict[str, dict[str, Any]]]]:
        found = []
        for path in await self.connections():
            try:
                settings = await self.connection_settings(path)
            except DBusError:
                continue
            if nms.owner_of(settings) == owner:
                found.append((path, settings))
        return found

    async def wait_activated(
        self, device: WifiDevice, active: str, queue: asyncio.Queue[Message]
    ) -> None:
        """Follow ``queue`` (from ``listen``, opened before activating) until ``active`` is up on
        ``device``. Raises ActivationFailed, NetworkManagerStopped or DeviceGone; the caller
        bounds the wait with ``asyncio.timeout``."""
        associated = started = False
        while True:
            msg = await queue.get()
            if is_nm_owner_change(msg) and not msg.body[2]:
                raise NetworkManagerStopped("NetworkManager stopped")
            if msg.member == "DeviceRemoved" and msg.body and msg.body[0] == device.path:
                raise DeviceGone(f"the interface {device.interface} disappeared")
            if msg.interface == I_DEVICE and msg.path == device.path:
                new, _old, reason = (int(x) for x in msg.body)
                started = started or nms.DEVICE_PREPARE <= new <= nms.DEVICE_ACTIVATED
                associated = associated or nms.DEVICE_CONFIG <= new < nms.DEVICE_ACTIVATED
                if new == nms.DEVICE_ACTIVATED:
                    if await self.get(device.path, I_DEVICE, "ActiveConnection") == active:
                        return
                elif new == nms.DEVICE_FAILED or (started and new in _FELL_BACK):
                    failure = nms.failure_for_reason(reason, associated=associated)
                    raise ActivationFailed(failure, reason, f"device state reason {reason}")
            elif msg.interface == I_ACTIVE and msg.path == active:
                state = int(msg.body[0])
                if state == nms.AC_DEACTIVATED:
                    _, reason = await self.device_state(device)
                    failure = nms.failure_for_reason(reason, associated=associated)
                    raise ActivationFailed(failure, reason, f"device state reason {reason}")


def is_nm_owner_change(msg: Message) -> bool:
    return (
        msg.member == "NameOwnerChanged"
        and msg.interface == DBUS
        and bool(msg.body)
        and msg.body[0] == NM
    )
