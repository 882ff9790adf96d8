"""python-dbusmock template: the stock ``networkmanager`` one, extended for wifiprov's tests.

The stock template activates everything instantly and cannot model an access point or a
failure. This one replaces the Manager's activation methods so that:
- an activation walks the device through PREPARE → CONFIG (→ NEED_AUTH / IP_CONFIG) → ACTIVATED
  or FAILED with a reason, emitting ``Device.StateChanged`` and ``Connection.Active.StateChanged``
  as NetworkManager does; an infrastructure profile for an SSID no AP carries fails with
  SSID_NOT_FOUND (53) unless it is hidden; ``SetActivationOutcome`` scripts any SSID
  (``ok`` / ``fail`` + reason / ``hang``), ``SetApOutcome`` the access point;
- AP-mode profiles activate with specific object "/" and get 192.168.4.1 from their settings;
- ``AddAndActivateConnection2`` with ``persist: volatile`` forgets the profile when it goes down;
- ``AddRawAccessPoint`` takes the SSID as raw bytes and the three flag words separately;
- ``AddWifi`` adds a device whose ``RequestScan`` bumps ``LastScan``; ``RemoveDevice`` unplugs it
  (``DeviceRemoved``); ``DropConnection`` takes the device's connection down with a reason.
- ``AddEthernet`` adds a wired device (``Device.Wired.Carrier`` and the ``InterfaceFlags``
  carrier bit, NM >= 1.22, say whether a cable is in); without carrier it is UNAVAILABLE with
  reason CARRIER (40), and activating a profile that needs carrier (DHCP) fails as NM 1.42's
  does: ``UnknownConnection``, "Connection 'x' is not available on device eth0 because device
  has no carrier", the added profile deleted (a static profile activates without carrier, as
  in NM). ``SetCarrier`` plugs or pulls the cable (pulling takes an active connection down,
  the device UNAVAILABLE with reason 40); ``SetWiredOutcome`` scripts its activations.
- ``ipv4.method manual`` profiles get the address, prefix, gateway and DNS of their settings in
  their IP4Config (DHCP: 192.168.1.50 on WiFi, 192.168.1.60 wired). ``SetIpLink(netns, link)``
  makes the mock also put a manual address and its default route on that real link, as NM does
  (the netns tests).
Signals are emitted before the method returns, so clients must subscribe before calling.
"""

# ruff: noqa: N802 (D-Bus method names)

from __future__ import annotations

import shutil
import socket
import struct
import subprocess

import dbus
import dbus.service
import dbusmock
from dbusmock import MOCK_IFACE
from dbusmock.templates import networkmanager as stock
from dbusmock.templates.networkmanager import *  # noqa: F403 (the stock Mock methods, for AddTemplate)
from dbusmock.templates.networkmanager import (
    ACCESS_POINT_IFACE,
    ACTIVE_CONNECTION_IFACE,
    DEVICE_IFACE,
    MANAGER_IFACE,
    MANAGER_OBJ,
    SETTINGS_OBJ,
    WIRELESS_DEVICE_IFACE,
)

BUS_NAME = stock.BUS_NAME
MAIN_OBJ = stock.MAIN_OBJ
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

IP4_IFACE = "org.freedesktop.NetworkManager.IP4Config"
PREPARE, CONFIG, NEED_AUTH, IP_CONFIG, ACTIVATED, DEACTIVATING, FAILED = (
    40,
    50,
    60,
    70,
    100,
    110,
    120,
)
UNAVAILABLE, DISCONNECTED = 20, 30
REASON_CARRIER = 40
TYPE_ETHERNET, TYPE_WIFI = 1, 2
WIRED_DEVICE_IFACE = "org.freedesktop.NetworkManager.Device.Wired"
CARRIER_FLAGS = 0x10000 | 0x2 | 0x1  # NM_DEVICE_INTERFACE_FLAG_CARRIER | LOWER_UP | UP
AC_ACTIVATING, AC_ACTIVATED, AC_DEACTIVATED = 1, 2, 4
USER_REQUESTED = 39

_outcomes: dict[bytes, tuple[str, int]] = {}
_ap_outcome = ["ok", 0]
_wired_outcome = ["ok", 0]
_ip_link: list[str] = []  # [netns, link] once SetIpLink was called
_counter = [100]


def _next(kind: str) -> str:
    _counter[0] += 1
    return f"/org/freedesktop/NetworkManager/{kind}/{_counter[0]}"


def _device_state(dev, new: int, reason: int) -> None:
    old = dev.Get(DEVICE_IFACE, "State")
    dev.Set(DEVICE_IFACE, "State", dbus.UInt32(new))
    dev.Set(DEVICE_IFACE, "StateReason", dbus.Struct((dbus.UInt32(new), dbus.UInt32(reason))))
    dev.EmitSignal(
        DEVICE_IFACE, "StateChanged", "uuu", [dbus.UInt32(new), old, dbus.UInt32(reason)]
    )


def _ac_state(ac, state: int, reason: int) -> None:
    ac.Set(ACTIVE_CONNECTION_IFACE, "State", dbus.UInt32(state))
    ac.EmitSignal(
        ACTIVE_CONNECTION_IFACE, "StateChanged", "uu", [dbus.UInt32(state), dbus.UInt32(reason)]
    )


def _set_active_list(manager, change) -> None:
    active = list(manager.Get(MANAGER_IFACE, "ActiveConnections"))
    change(active)
    manager.SetProperty(
        MANAGER_OBJ, MANAGER_IFACE, "ActiveConnections", dbus.Array(active, signature="o")
    )


def _is_wifi(dev) -> bool:
    return int(dev.Get(DEVICE_IFACE, "DeviceType")) == TYPE_WIFI


def _has_carrier(dev) -> bool:
    return bool(int(dev.Get(DEVICE_IFACE, "InterfaceFlags")) & 0x10000)


def _take_down(
    manager, ac_path: str, reason: int, *, failed: bool, final: int = DISCONNECTED
) -> None:
    """The active connection ``ac_path`` goes away (deactivated or failed); the device ends in
    ``final`` (UNAVAILABLE when its cable was pulled)."""
    if ac_path not in dbusmock.mockobject.objects:
        return
    ac = dbusmock.get_object(ac_path)
    conn_path = str(ac.Get(ACTIVE_CONNECTION_IFACE, "Connection"))
    for dev_path in ac.Get(ACTIVE_CONNECTION_IFACE, "Devices"):
        dev = dbusmock.get_object(dev_path)
        if dev.Get(DEVICE_IFACE, "ActiveConnection") == ac_path:
            _device_state(dev, FAILED if failed else DEACTIVATING, reason)
            dev.Set(DEVICE_IFACE, "ActiveConnection", dbus.ObjectPath("/"))
            dev.Set(DEVICE_IFACE, "Ip4Config", dbus.ObjectPath("/"))
            if _is_wifi(dev):
                dev.Set(WIRELESS_DEVICE_IFACE, "ActiveAccessPoint", dbus.ObjectPath("/"))
            _device_state(dev, final, reason)
    _ac_state(ac, AC_DEACTIVATED, 2 if failed else 3)
    _set_active_list(manager, lambda a: a.remove(ac_path) if ac_path in a else None)
    manager.RemoveObject(ac_path)
    if conn_path in dbusmock.mockobject.objects:
        conn = dbusmock.get_object(conn_path)
        if getattr(conn, "volatile", False):
            stock.ConnectionDelete(conn)


def _outcome(settings, dev) -> tuple[str, int]:
    if not _is_wifi(dev):
        return _wired_outcome[0], _wired_outcome[1]
    wifi = settings.get("802-11-wireless", {})
    if str(wifi.get("mode", "infrastructure")) == "ap":
        return _ap_outcome[0], _ap_outcome[1]
    ssid = bytes(bytearray(wifi.get("ssid", [])))
    if ssid in _outcomes:
        return _outcomes[ssid]
    seen = any(
        bytes(dbusmock.get_object(p).Get(ACCESS_POINT_IFACE, "Ssid")) == ssid
        for p in _in_range(dev)
    )
    if not seen and not bool(wifi.get("hidden", False)):
        return "fail", 53
    return "ok", 0


def _needs_carrier(settings) -> bool:
    """NM's connection_requires_carrier, for the methods our profiles use: DHCP needs it;
    a manual IPv4 address does not (IPv6 ``auto`` may fail)."""
    return str(settings.get("ipv4", {}).get("method", "auto")) == "auto"


def _check_available(settings, dev) -> None:
    """NM 1.42's check before activating (nm-manager.c, _internal_activate_device)."""
    if _is_wifi(dev) or _has_carrier(dev) or not _needs_carrier(settings):
        return
    raise dbus.exceptions.DBusException(
        f"Connection '{settings['connection']['id']}' is not available on device "
        f"{dev.Get(DEVICE_IFACE, 'Interface')} because device has no carrier",
        name="org.freedesktop.NetworkManager.UnknownConnection",
    )


def _dns_text(value) -> str:
    return socket.inet_ntoa(struct.pack("=I", int(value)))


def _apply_to_link(address: str, prefix: int, gateway: str) -> None:
    """Put a manual address (and its default route) on the real link of ``SetIpLink``."""
    if not _ip_link:
        return
    ns, link = _ip_link
    for argv in (
        ["addr", "flush", "dev", link],
        ["addr", "add", f"{address}/{prefix}", "dev", link],
        ["route", "replace", "default", "via", gateway, "dev", link],
    ):
        ip = shutil.which("ip") or "/usr/sbin/ip"
        subprocess.run([ip, "-n", ns, *argv], check=True, capture_output=True, timeout=30)


def _activate(manager, conn_path, dev_path, _specific):
    conn = dbusmock.get_object(conn_path)
    dev = dbusmock.get_object(dev_path)
    settings = conn.settings
    _check_available(settings, dev)
    old = dev.Get(DEVICE_IFACE, "ActiveConnection")
    if old != "/":
        _take_down(manager, old, USER_REQUESTED, failed=False)
    wifi = settings.get("802-11-wireless", {})
    ap_mode = str(wifi.get("mode", "")) == "ap"
    ipv4 = settings.get("ipv4", {})
    ac_path = _next("ActiveConnection")
    manager.AddObject(
        ac_path,
        ACTIVE_CONNECTION_IFACE,
        {
            "Devices": dbus.Array([dbus.ObjectPath(dev_path)], signature="o"),
            "Default": False,
            "Default6": False,
            "Type": settings["connection"]["type"],
            "Vpn": False,
            "Connection": dbus.ObjectPath(conn_path),
            "SpecificObject": dbus.ObjectPath("/"),
            "Uuid": settings["connection"]["uuid"],
            "Id": settings["connection"]["id"],
            "State": dbus.UInt32(AC_ACTIVATING),
            "StateFlags": dbus.UInt32(0),
            "Ip4Config": dbus.ObjectPath("/"),
        },
        [],
    )
    _set_active_list(manager, lambda a: a.append(dbus.ObjectPath(ac_path)))
    dev.Set(DEVICE_IFACE, "ActiveConnection", dbus.ObjectPath(ac_path))
    if ap_mode:  # NM: "Scanning not done in AP mode; clear the scan list" (nm-device-wifi.c)
        dev.access_points.clear()
        dev.Set(WIRELESS_DEVICE_IFACE, "AccessPoints", dbus.Array([], signature="o"))
    _device_state(dev, PREPARE, 0)
    kind, reason = _outcome(settings, dev)
    if kind == "hang":
        return dbus.ObjectPath(ac_path)
    _device_state(dev, CONFIG, 0)
    if kind == "fail":
        if reason in (7, 8, 10, 11):
            _device_state(dev, NEED_AUTH, 8)
        elif reason in (5, 15, 16, 17):
            _device_state(dev, IP_CONFIG, 0)
        _take_down(manager, ac_path, reason, failed=True)
        return dbus.ObjectPath(ac_path)
    _device_state(dev, IP_CONFIG, 0)
    prefix, gateway, dns = 24, "" if ap_mode else "192.168.1.1", []
    if ap_mode or str(ipv4.get("method", "")) == "manual":
        address = str(ipv4["address-data"][0]["address"])
        prefix = int(ipv4["address-data"][0]["prefix"])
        if not ap_mode:
            gateway = str(ipv4.get("gateway", ""))
            dns = [_dns_text(d) for d in ipv4.get("dns", [])]
            _apply_to_link(address, prefix, gateway)
    else:
        address = "192.168.1.50" if _is_wifi(dev) else "192.168.1.60"
    if _is_wifi(dev) and not ap_mode:
        ssid = bytes(bytearray(wifi.get("ssid", [])))
        for p in _in_range(dev):
            if bytes(dbusmock.get_object(p).Get(ACCESS_POINT_IFACE, "Ssid")) == ssid:
                dev.Set(WIRELESS_DEVICE_IFACE, "ActiveAccessPoint", dbus.ObjectPath(p))
                break
    ip4 = _next("IP4Config")
    manager.AddObject(
        ip4,
        IP4_IFACE,
        {
            "AddressData": dbus.Array(
                [{"address": dbus.String(address), "prefix": dbus.UInt32(prefix)}],
                signature="a{sv}",
            ),
            "Gateway": gateway,
            "NameserverData": dbus.Array(
                [{"address": dbus.String(d)} for d in dns], signature="a{sv}"
            ),
        },
        [],
    )
    dev.Set(DEVICE_IFACE, "Ip4Config", dbus.ObjectPath(ip4))
    ac = dbusmock.get_object(ac_path)
    default = not ap_mode and not bool(ipv4.get("never-default", False))
    ac.Set(ACTIVE_CONNECTION_IFACE, "Default", dbus.Boolean(default))
    ac.Set(ACTIVE_CONNECTION_IFACE, "Ip4Config", dbus.ObjectPath(ip4))
    _ac_state(ac, AC_ACTIVATED, 0)
    _device_state(dev, ACTIVATED, 0)
    return dbus.ObjectPath(ac_path)


def _add_and_activate(manager, settings, dev_path, specific, options):
    _check_available(settings, dbusmock.get_object(dev_path))  # NM deletes what it added
    settings_obj = dbusmock.get_object(SETTINGS_OBJ)
    conn_path = stock.SettingsAddConnection(settings_obj, settings)
    conn = dbusmock.get_object(conn_path)
    conn.volatile = str(options.get("persist", "")) == "volatile"
    return dbus.ObjectPath(conn_path), _activate(manager, conn_path, dev_path, specific)


def _deactivate(manager, ac_path):
    if ac_path not in dbusmock.mockobject.objects:
        raise dbus.exceptions.DBusException(
            "Not active", name="org.freedesktop.NetworkManager.ConnectionNotActive"
        )
    _take_down(manager, str(ac_path), USER_REQUESTED, failed=False)


def _in_range(dev) -> list[str]:
    """The APs on the air (activation finds them by scanning), listed by NM or not."""
    return list(dict.fromkeys([*getattr(dev, "in_range", []), *dev.access_points]))


def _request_scan(dev, _options):
    active = str(dev.Get(DEVICE_IFACE, "ActiveConnection"))
    serving = (
        active != "/"
        and str(
            dbusmock.get_object(
                str(dbusmock.get_object(active).Get(ACTIVE_CONNECTION_IFACE, "Connection"))
            )
            .settings.get("802-11-wireless", {})
            .get("mode", "")
        )
        == "ap"
    )
    if not serving:  # a scan lists what is on the air again
        dev.access_points[:] = _in_range(dev)
        dev.Set(WIRELESS_DEVICE_IFACE, "AccessPoints", dbus.Array(dev.access_points, "o"))
    dev.Set(
        WIRELESS_DEVICE_IFACE,
        "LastScan",
        dbus.Int64(dev.Get(WIRELESS_DEVICE_IFACE, "LastScan") + 1),
    )


def load(mock, parameters):
    stock.load(mock, parameters)
    manager = dbusmock.get_object(MANAGER_OBJ)
    manager.wp_activate = _activate
    manager.wp_add_and_activate = _add_and_activate
    manager.wp_deactivate = _deactivate
    manager.AddMethods(
        MANAGER_IFACE,
        [
            ("ActivateConnection", "ooo", "o", "ret = self.wp_activate(self, *args)"),
            (
                "AddAndActivateConnection",
                "a{sa{sv}}oo",
                "oo",
                "ret = self.wp_add_and_activate(self, args[0], args[1], args[2], {})",
            ),
            (
                "AddAndActivateConnection2",
                "a{sa{sv}}ooa{sv}",
                "ooa{sv}",
                "ret = (*self.wp_add_and_activate(self, *args), {})",
            ),
            ("DeactivateConnection", "o", "", "self.wp_deactivate(self, args[0])"),
        ],
    )
    manager.AddProperties(MANAGER_IFACE, {"PrimaryConnection": dbus.ObjectPath("/")})


@dbus.service.method(MOCK_IFACE, in_signature="sss", out_signature="s")
def AddWifi(self, name, iface, mac):
    path = stock.AddWiFiDevice(self, name, iface, DISCONNECTED)
    dev = dbusmock.get_object(path)
    dev.Set(WIRELESS_DEVICE_IFACE, "HwAddress", mac)
    dev.Set(WIRELESS_DEVICE_IFACE, "PermHwAddress", mac)
    dev.AddProperties(
        WIRELESS_DEVICE_IFACE,
        {"LastScan": dbus.Int64(1000), "ActiveAccessPoint": dbus.ObjectPath("/")},
    )
    dev.AddProperties(DEVICE_IFACE, {"Ip4Config": dbus.ObjectPath("/")})
    dev.request_scan = _request_scan
    dev.AddMethod(
        WIRELESS_DEVICE_IFACE, "RequestScan", "a{sv}", "", "self.request_scan(self, args[0])"
    )
    return path


@dbus.service.method(MOCK_IFACE, in_signature="sssb", out_signature="s")
def AddEthernet(self, name, iface, mac, carrier):
    path = stock.AddEthernetDevice(self, name, iface, DISCONNECTED if carrier else UNAVAILABLE)
    dev = dbusmock.get_object(path)
    dev.Set(WIRED_DEVICE_IFACE, "HwAddress", mac)
    dev.Set(WIRED_DEVICE_IFACE, "PermHwAddress", mac)
    dev.Set(WIRED_DEVICE_IFACE, "Carrier", dbus.Boolean(carrier))
    dev.AddProperties(
        DEVICE_IFACE,
        {
            "HwAddress": mac,
            "Ip4Config": dbus.ObjectPath("/"),
            "InterfaceFlags": dbus.UInt32(CARRIER_FLAGS if carrier else 0x1),
        },
    )
    if not carrier:
        state = dbus.UInt32(UNAVAILABLE)
        dev.Set(DEVICE_IFACE, "StateReason", dbus.Struct((state, dbus.UInt32(REASON_CARRIER))))
    return path


@dbus.service.method(MOCK_IFACE, in_signature="sb", out_signature="")
def SetCarrier(_self, dev_path, carrier):
    """Plug (or pull) the cable: NM follows the carrier into DISCONNECTED (or UNAVAILABLE,
    taking an active connection down), reason CARRIER."""
    dev = dbusmock.get_object(dev_path)
    dev.Set(WIRED_DEVICE_IFACE, "Carrier", dbus.Boolean(carrier))
    dev.Set(DEVICE_IFACE, "InterfaceFlags", dbus.UInt32(CARRIER_FLAGS if carrier else 0x1))
    active = str(dev.Get(DEVICE_IFACE, "ActiveConnection"))
    if carrier:
        if int(dev.Get(DEVICE_IFACE, "State")) == UNAVAILABLE:
            _device_state(dev, DISCONNECTED, REASON_CARRIER)
    elif active != "/":
        manager = dbusmock.get_object(MANAGER_OBJ)
        _take_down(manager, active, REASON_CARRIER, failed=False, final=UNAVAILABLE)
    else:
        _device_state(dev, UNAVAILABLE, REASON_CARRIER)


@dbus.service.method(MOCK_IFACE, in_signature="su", out_signature="")
def SetWiredOutcome(_self, kind, reason):
    _wired_outcome[:] = [str(kind), int(reason)]


@dbus.service.method(MOCK_IFACE, in_signature="ss", out_signature="")
def SetIpLink(_self, netns, link):
    _ip_link[:] = [str(netns), str(link)]


@dbus.service.method(MOCK_IFACE, in_signature="ssaysuyuuu", out_signature="s")
def AddRawAccessPoint(self, dev_path, name, ssid, bssid, frequency, strength, flags, wpa, rsn):
    dev = dbusmock.get_object(dev_path)
    path = "/org/freedesktop/NetworkManager/AccessPoint/" + name
    self.AddObject(
        path,
        ACCESS_POINT_IFACE,
        {
            "Ssid": dbus.ByteArray(bytes(bytearray(ssid))),
            "HwAddress": dbus.String(bssid),
            "Flags": dbus.UInt32(flags),
            "WpaFlags": dbus.UInt32(wpa),
            "RsnFlags": dbus.UInt32(rsn),
            "Frequency": dbus.UInt32(frequency),
            "Strength": dbus.Byte(strength),
            "MaxBitrate": dbus.UInt32(54000),
            "Mode": dbus.UInt32(2),
            "LastSeen": dbus.Int32(1),
        },
        [],
    )
    dev.access_points.append(path)
    dev.in_range = [*getattr(dev, "in_range", []), path]
    aps = dev.Get(WIRELESS_DEVICE_IFACE, "AccessPoints")
    aps.append(path)
    dev.Set(WIRELESS_DEVICE_IFACE, "AccessPoints", aps)
    dev.EmitSignal(WIRELESS_DEVICE_IFACE, "AccessPointAdded", "o", [path])
    return path


@dbus.service.method(MOCK_IFACE, in_signature="aysu", out_signature="")
def SetActivationOutcome(_self, ssid, kind, reason):
    _outcomes[bytes(bytearray(ssid))] = (str(kind), int(reason))


@dbus.service.method(MOCK_IFACE, in_signature="su", out_signature="")
def SetApOutcome(_self, kind, reason):
    _ap_outcome[:] = [str(kind), int(reason)]


@dbus.service.method(MOCK_IFACE, in_signature="su", out_signature="")
def DropConnection(_self, dev_path, reason):
    manager = dbusmock.get_object(MANAGER_OBJ)
    ac = dbusmock.get_object(dev_path).Get(DEVICE_IFACE, "ActiveConnection")
    if ac != "/":
        _take_down(manager, str(ac), int(reason), failed=True)


@dbus.service.method(MOCK_IFACE, in_signature="s", out_signature="")
def RemoveDevice(self, dev_path):
    manager = dbusmock.get_object(MANAGER_OBJ)
    devices = [d for d in manager.Get(MANAGER_IFACE, "Devices") if d != dev_path]
    manager.Set(MANAGER_IFACE, "Devices", dbus.Array(devices, signature="o"))
    manager.EmitSignal(MANAGER_IFACE, "DeviceRemoved", "o", [dbus.ObjectPath(dev_path)])
    self.object_manager_emit_removed(dev_path)
    self.RemoveObject(dev_path)
