"""The NetworkManager radio: the device's WiFi through NM over D-Bus (``wifiprov.linux``).

- One interface does one thing (``ap_and_station`` is False): ``connect`` closes the AP, and
  ``start_ap`` leaves the network. ``scan`` while the AP is up returns the scan taken before it
  (the agent scans right before ``start_ap``): scanning would drop the AP's clients.
- The AP is an NM profile in ``ipv4.method shared`` mode at 192.168.4.1/24: NM starts dnsmasq for
  DHCP and DNS, which reads our snippet from ``dnsmasq-shared.d`` (written before activating,
  removed on ``stop_ap``/``close``).
- Every profile made here is ``wifiprov-…``, carries ``user.data[org.wifiprov.owner]`` and its
  uuid is remembered; nothing else is ever deleted or deactivated. A failed join deletes only the
  profile it made. The interface carrying the default route for someone else's connection is
  taken for the AP only with ``takeover=True``.
- NetworkManager leaving the bus, or the interface being removed, ends any wait with an error
  (``ConnectError(OTHER)`` in ``connect``) and, while joined, fires the link-lost callbacks.
- ``static``: the profile has ``ipv4.method manual`` with the address, gateway and DNS servers
  (the gateway when none is given); never DHCP for IPv4.
- Ethernet (``wired_interface``, default: the first one NM manages): ``connect_wired`` checks
  the carrier (none: NO_CABLE, 721) and activates a ``wifiprov-wired`` ``802-3-ethernet``
  profile, DHCP or static; NM taking the device down with reason CARRIER (40) is NO_CABLE too.
  One uplink at a time: joining WiFi takes our wired profile down and the reverse; a working
  profile supersedes (deletes) our older WiFi and wired ones, as joins do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from dbus_fast import Message, Variant
from dbus_fast.errors import DBusError

from wifiprov.device.radio.base import (
    AP_ADDRESS,
    ApInfo,
    ConnectError,
    ConnectFailure,
    Radio,
    RadioStatus,
    ScanEntry,
    StaticIp,
    StationInfo,
    check_static,
)
from wifiprov.device.radio.dnsmasq import NM_CONF_DIR, SNIPPET_NAME, shared_snippet
from wifiprov.linux import nm_settings as nms
from wifiprov.linux import supplicant
from wifiprov.linux.networkmanager import (
    I_ACTIVE,
    I_DEVICE,
    ActivationFailed,
    DeviceGone,
    NetworkManagerStopped,
    NetworkManagerUnavailable,
    NmClient,
    NmDevice,
    NmError,
    WifiDevice,
    is_nm_owner_change,
)
from wifiprov.linux.ports import port_owners
from wifiprov.linux.wifi_host import ap_clients, set_country, sysfs_mac

log = logging.getLogger(__name__)

_FAILURES = {
    nms.Failure.AUTH: ConnectFailure.AUTH_FAILED,
    nms.Failure.NOT_FOUND: ConnectFailure.NOT_FOUND,
    nms.Failure.NO_ADDRESS: ConnectFailure.NO_ADDRESS,
    nms.Failure.OTHER: ConnectFailure.OTHER,
}
_DOWN_STATES = {
    nms.DEVICE_UNMANAGED,
    nms.DEVICE_UNAVAILABLE,
    nms.DEVICE_DISCONNECTED,
    nms.DEVICE_FAILED,
}
_Profile = tuple[str, str, str]  # settings path, uuid, active-connection path


class TakeoverRefused(NmError):
    """The AP would take the interface that carries this machine's default route."""


class NmRadio(Radio):
    """The WiFi device ``interface`` (default: the first one NM manages).

    ``takeover``: allow the AP on an interface whose (foreign) connection carries the default
    route. ``country``: ISO 3166 code (``GB``) set with ``raspi-config`` or ``iw reg set``.
    ``snippet_dir``: NM's ``dnsmasq-shared.d``. ``owner`` marks our profiles. ``bus_address``
    defaults to the system bus (``$DBUS_SYSTEM_BUS_ADDRESS``). ``wired_interface``: the
    Ethernet device (default: the first one NM manages; ``wired_mac`` is known after
    ``open()``)."""

    def __init__(
        self,
        interface: str | None = None,
        *,
        takeover: bool = False,
        country: str | None = None,
        snippet_dir: str | os.PathLike[str] = NM_CONF_DIR,
        owner: str = "device",
        bus_address: str | None = None,
        scan_timeout: float = 10.0,
        ap_timeout: float = 30.0,
        wired_interface: str | None = None,
    ) -> None:
        super().__init__()
        if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
            raise ValueError(f"a WiFi country is a two-letter code such as GB, not {country!r}")
        self.interface = interface
        self.takeover = takeover
        self.country = country.upper() if country else None
        self.snippet = Path(snippet_dir) / SNIPPET_NAME
        self.owner = owner
        self.scan_timeout = scan_timeout
        self.ap_timeout = ap_timeout
        self._bus_address = bus_address
        self._client: NmClient | None = None
        self._device: WifiDevice | None = None
        self._generation = -1
        self._mac: str | None = None
        self._created: set[str] = set()  # uuids of the profiles this radio made
        self._ap: ApInfo | None = None
        self._ap_profile: _Profile | None = None
        self._station: StationInfo | None = None
        self._station_profile: _Profile | None = None
        self.wired_interface = wired_interface
        self._wired_device: NmDevice | None = None
        self._wired: StationInfo | None = None
        self._wired_profile: _Profile | None = None
        self._scan_cache: list[ScanEntry] | None = None
        self._scanned: list[nms.AccessPoint] = []  # the last scan as NM gave it (with flags)
        self._busy = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"NmRadio(interface={self.interface!r})"

    @property
    def station_mac(self) -> str:
        if self._mac is None:
            self._mac = sysfs_mac(self.interface)
        if self._mac is None:
            raise RuntimeError("the WiFi MAC is not known yet: `await radio.open()` first")
        return self._mac

    @property
    def ap_mac(self) -> str:
        return self.station_mac  # one interface: the AP's BSSID is its MAC

    @property
    def wired_mac(self) -> str | None:
        return self._wired_device.hw_address if self._wired_device else None

    @property
    def ap_and_station(self) -> bool:
        return False

    async def open(self) -> None:
        """Reach NM, find the device, set the country, and refuse an interface that carries
        someone else's default route (unless ``takeover``). Other methods do this on demand;
        the CLI calls it first so that errors show before the agent starts."""
        client, device = await self._ready()
        await self._check_takeover(client, device)

    async def _ready(self) -> tuple[NmClient, WifiDevice]:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._client is None:
            self._client = await NmClient.open(self._bus_address)
            self._client.add_listener(self._on_signal)
            if self.country:
                await set_country(self.country)
        client = self._client
        if not client.running and not await client.nm_running():
            raise NetworkManagerUnavailable(
                "NetworkManager is not running: start it with `sudo systemctl start NetworkManager`"
            )
        device = self._device
        if device is None or self._generation != client.generation:
            # A local: the device can be removed (a signal clears self._device) while we await.
            device = self._device = await client.wifi_device(self.interface)
            self._wired_device = await client.ethernet_device(self.wired_interface)
            self._generation = client.generation
            self._mac = device.hw_address
        await client.check_radio()
        return client, device

    @contextlib.asynccontextmanager
    async def _operation(self) -> AsyncIterator[None]:
        """Our own state changes are not a lost link."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    # -- scan

    async def scan(self) -> list[ScanEntry]:
        if self._ap is not None and self._scan_cache is not None:
            return list(self._scan_cache)
        client, device = await self._ready()
        await client.request_scan(device, self.scan_timeout)
        entries = []
        self._scanned = await client.access_points(device)
        for ap in self._scanned:
            hidden = not ap.ssid.strip(b"\0")  # hidden networks beacon an empty or NUL SSID
            entries.append(
                ScanEntry(
                    ssid=b"" if hidden else ap.ssid,
                    bssid=ap.bssid,
                    rssi=ap.rssi,
                    security=ap.security,
                    channel=ap.channel,
                    hidden=hidden,
                )
            )
        entries.sort(key=lambda e: e.rssi, reverse=True)
        self._scan_cache = entries
        return list(entries)

    # -- access point

    async def start_ap(
        self, ssid: str, passphrase: str | None = None, *, captive: bool = False
    ) -> ApInfo:
        _check_ap(ssid, passphrase)
        client, device = await self._ready()
        async with self._operation():
            if self._ap_profile is not None:
                await self._stop_ap(client)
            if self._station_profile is not None:
                await self._disconnect(client)
            await self._check_takeover(client, device)
            await self._forget_stale_aps(client)
            self._install_snippet(captive)
            uuid = nms.new_uuid()
            self._created.add(uuid)
            settings = nms.ap_settings(
                ssid, passphrase, owner=self.owner, uuid=uuid, interface=device.interface
            )
            try:
                self._ap_profile = await self._activate(client, device, settings, self.ap_timeout)
            except ActivationFailed as exc:
                self._remove_snippet()
                raise NmError(
                    f"NetworkManager could not open the access point {ssid!r} on "
                    f"{device.interface}: {nms.reason_text(exc.reason)}{_port_53_culprits()}"
                ) from None
            except TimeoutError:
                self._remove_snippet()
                raise NmError(
                    f"the access point {ssid!r} on {device.interface} did not come up within "
                    f"{self.ap_timeout:g} s{_port_53_culprits()}"
                ) from None
            except BaseException:
                self._remove_snippet()
                raise
        self._ap = ApInfo(
            ssid=ssid, bssid=device.hw_address, secured=passphrase is not None, captive=captive
        )
        log.info("access point %r up on %s at %s", ssid, device.interface, AP_ADDRESS)
        return self._ap

    async def _check_takeover(self, client: NmClient, device: WifiDevice) -> None:
        current = await client.active_connection(device)
        if current is None:
            return
        _, props = current
        if props.get("Uuid") in self._created:
            return
        with contextlib.suppress(DBusError):  # ours from an earlier run (a crash, a SIGKILL)
            settings = await client.connection_settings(str(props.get("Connection")))
            if nms.owner_of(settings) == self.owner:
                return
        name, uuid = props.get("Id"), props.get("Uuid")
        if not (props.get("Default") or props.get("Default6")):
            log.warning("%s: the access point replaces connection %r", device.interface, name)
            return
        if not self.takeover:
            raise TakeoverRefused(
                f"{device.interface} carries this machine's default route (connection {name!r}, "
                f"uuid {uuid}); an access point there would cut the machine off that network. "
                "Start with --takeover to allow it (the connection itself is left untouched: "
                f"`nmcli connection up {uuid}` brings it back)"
            )
        log.warning(
            "%s: taking the interface from connection %r (--takeover)", device.interface, name
        )

    async def _forget_stale_aps(self, client: NmClient) -> None:
        """AP profiles a previous run of ours left behind (a crash, a power cut)."""
        for path, settings in await client.own_connections(self.owner):
            if settings.get("802-11-wireless", {}).get("mode") == "ap":
                await client.delete_own(path, self.owner)

    def _install_snippet(self, captive: bool) -> None:
        text = shared_snippet(address=AP_ADDRESS, captive=captive)
        try:
            self.snippet.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.snippet.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(self.snippet)  # NM's dnsmasq never reads half a file
        except PermissionError:
            # As a service user (`wifiprov device install`) we own only the file, not the
            # root-owned directory: write it in place. NM reads it only when the AP starts.
            self.snippet.write_text(text)

    def _remove_snippet(self) -> None:
        try:
            self.snippet.unlink(missing_ok=True)
        except PermissionError:
            self.snippet.write_text("")  # our file in a directory we cannot change: empty it

    async def stop_ap(self) -> None:
        if self._ap_profile is None:
            self._ap = None
            self._remove_snippet()
            return
        client, _ = await self._ready()
        async with self._operation():
            await self._stop_ap(client)

    async def _stop_ap(self, client: NmClient) -> None:
        profile, self._ap_profile, self._ap = self._ap_profile, None, None
        try:
            if profile is not None:
                await self._discard(client, profile)
                log.info("access point down")
        finally:
            self._remove_snippet()

    # -- station

    async def connect(
        self,
        ssid: bytes,
        password: str,
        *,
        identity: str = "",
        eap: str = "",
        hidden: bool = False,
        timeout: float,
        static: StaticIp | None = None,
    ) -> StationInfo:
        check_static(static)
        name = repr(ssid.decode("utf-8", "replace"))
        try:
            client, device = await self._ready()
        except NmError as exc:
            raise ConnectError(ConnectFailure.OTHER, str(exc)) from None
        except DBusError as exc:  # back on the bus, its objects not yet there (a restart)
            raise ConnectError(
                ConnectFailure.OTHER, f"NetworkManager is not ready: {exc.text}"
            ) from None
        async with self._operation():
            try:
                return await self._join(
                    client, device, ssid, password, identity, eap, hidden, timeout, static
                )
            except TimeoutError:
                raise ConnectError(
                    ConnectFailure.TIMEOUT,
                    f"NetworkManager did not join {name} within {timeout:g} s",
                ) from None
            except ActivationFailed as exc:
                raise ConnectError(
                    _FAILURES[exc.failure],
                    f"NetworkManager could not join {name}: {nms.reason_text(exc.reason)}",
                ) from None
            except NetworkManagerStopped:
                raise ConnectError(
                    ConnectFailure.OTHER,
                    f"NetworkManager stopped while joining {name}; it may be restarting",
                ) from None
            except DeviceGone as exc:
                raise ConnectError(ConnectFailure.OTHER, f"{exc} while joining {name}") from None
            except NmError as exc:
                raise ConnectError(ConnectFailure.OTHER, str(exc)) from None
            except DBusError as exc:
                text = exc.text.replace(password, "***") if password else exc.text
                raise ConnectError(
                    ConnectFailure.OTHER, f"NetworkManager refused the profile for {name}: {text}"
                ) from None

    async def _join(
        self,
        client: NmClient,
        device: WifiDevice,
        ssid: bytes,
        password: str,
        identity: str,
        eap: str,
        hidden: bool,
        timeout: float,
        static: StaticIp | None,
    ) -> StationInfo:
        if self._ap_profile is not None:
            await self._stop_ap(client)
        if self._wired_profile is not None:
            await self._disconnect_wired(client)  # one uplink: NM would route by the wire
        self._station = None  # the previous profile stays until the new one works
        # NM empties its AP list while serving an AP and has not rescanned yet when we get
        # here after closing it: the last scan's flags then tell the key management.
        current = await client.access_points(device)
        seen = [ap for ap in current if ap.ssid == ssid] or [
            ap for ap in self._scanned if ap.ssid == ssid
        ]
        best = max(seen, key=lambda ap: ap.strength) if seen else None
        key_mgmt = nms.key_mgmt_for(best, password, identity, eap)
        if key_mgmt in ("wpa-psk", "sae") and not nms.psk_valid(password):
            raise ConnectError(
                ConnectFailure.AUTH_FAILED,
                f"{ssid.decode('utf-8', 'replace')!r} needs a WPA password of 8 to 63 characters",
            )
        uuid = nms.new_uuid()
        self._created.add(uuid)
        settings = nms.station_settings(
            ssid,
            password,
            key_mgmt=key_mgmt,
            owner=self.owner,
            uuid=uuid,
            interface=device.interface,
            identity=identity,
            eap=eap,
            hidden=hidden,
            ipv4=_ipv4(static),
        )
        log.info("joining %r (%s) on %s", ssid, key_mgmt or "open", device.interface)
        profile = await self._activate(client, device, settings, timeout)
        self._station_profile = profile
        ap = await client.active_access_point(device)
        self._station = StationInfo(
            ssid=ssid,
            bssid=ap.bssid if ap else "",
            ip=await client.ip4_address(device),
            rssi=ap.rssi if ap else 0,
            channel=ap.channel if ap else 0,
        )
        await self._delete_superseded(client, profile)
        log.info("joined %r as %s", ssid, self._station.ip)
        return self._station

    async def _delete_superseded(self, client: NmClient, profile: _Profile) -> None:
        """Our uplink profiles (WiFi and wired) other than ``profile``, which works."""
        for path, other in await client.own_connections(self.owner):
            if path != profile[0] and other.get("802-11-wireless", {}).get("mode") != "ap":
                await client.delete_own(path, self.owner)

    # -- Ethernet

    async def connect_wired(
        self, *, static: StaticIp | None = None, timeout: float = 30.0
    ) -> StationInfo:
        check_static(static)
        try:
            client, _ = await self._ready()
        except NmError as exc:
            raise ConnectError(ConnectFailure.OTHER, str(exc)) from None
        except DBusError as exc:  # back on the bus, its objects not yet there (a restart)
            raise ConnectError(
                ConnectFailure.OTHER, f"NetworkManager is not ready: {exc.text}"
            ) from None
        wired = self._wired_device
        if wired is None:
            if self.wired_interface:
                raise ConnectError(
                    ConnectFailure.OTHER,
                    f"NetworkManager has no Ethernet device {self.wired_interface!r}",
                )
            return await super().connect_wired(static=static, timeout=timeout)
        name = wired.interface
        no_cable = ConnectError(ConnectFailure.NO_CABLE, f"no cable in {name} (no carrier)")
        async with self._operation():
            try:
                if not await client.carrier(wired):
                    raise no_cable
                return await self._wire(client, wired, static, timeout)
            except TimeoutError:
                raise ConnectError(
                    ConnectFailure.TIMEOUT,
                    f"NetworkManager did not bring {name} up within {timeout:g} s",
                ) from None
            except ActivationFailed as exc:
                if exc.reason == nms.REASON_CARRIER:
                    raise no_cable from None
                raise ConnectError(
                    _FAILURES[exc.failure],
                    f"NetworkManager could not bring {name} up: {nms.reason_text(exc.reason)}",
                ) from None
            except NetworkManagerStopped:
                raise ConnectError(
                    ConnectFailure.OTHER,
                    f"NetworkManager stopped while bringing {name} up; it may be restarting",
                ) from None
            except NmError as exc:
                raise ConnectError(ConnectFailure.OTHER, f"{exc} ({name})") from None
            except DBusError as exc:
                if "carrier" in exc.text:  # "... not available ... because device has no carrier"
                    raise no_cable from None
                raise ConnectError(
                    ConnectFailure.OTHER,
                    f"NetworkManager refused the profile for {name}: {exc.text}",
                ) from None

    async def _wire(
        self, client: NmClient, wired: NmDevice, static: StaticIp | None, timeout: float
    ) -> StationInfo:
        if self._station_profile is not None:
            await self._disconnect(client)  # one uplink at a time
        self._wired = None
        uuid = nms.new_uuid()
        self._created.add(uuid)
        settings = nms.wired_settings(
            owner=self.owner, uuid=uuid, interface=wired.interface, ipv4=_ipv4(static)
        )
        log.info("bringing %s up (%s)", wired.interface, "static" if static else "DHCP")
        profile = await self._activate(client, wired, settings, timeout)
        self._wired_profile = profile
        self._wired = StationInfo(
            ssid=b"", bssid="", ip=await client.ip4_address(wired), rssi=0, channel=0
        )
        await self._delete_superseded(client, profile)
        log.info("wired on %s as %s", wired.interface, self._wired.ip)
        return self._wired

    async def _disconnect_wired(self, client: NmClient) -> None:
        profile, self._wired_profile, self._wired = self._wired_profile, None, None
        if profile is not None and client.running:
            _, uuid, active = profile
            await _deactivate_if_ours(client, active, uuid)  # the profile stays: it works

    async def _activate(
        self, client: NmClient, device: WifiDevice, settings: nms.Settings, timeout: float
    ) -> _Profile:
        """Add and activate our profile; on any failure delete it (ours only) and re-raise."""
        uuid = str(settings["connection"]["uuid"].value)
        path = active = ""
        with client.listen() as queue:
            try:
                async with asyncio.timeout(timeout):
                    watch = await _supplicant_for(client, device, settings)
                    path, active, _ = await client.add_and_activate(settings, device)
                    await supplicant.wait_activated(client, device, active, queue, watch)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._discard(client, (path, uuid, active))
                raise
        return path, uuid, active

    async def _discard(self, client: NmClient, profile: _Profile) -> None:
        """Take down and delete a profile of ours (found by uuid: NM may have restarted)."""
        path, uuid, active = profile
        if not client.running:
            return
        if active:
            await _deactivate_if_ours(client, active, uuid)
        path = await client.connection_by_uuid(uuid) or path
        if path:
            await client.delete_own(path, self.owner, uuid)

    async def disconnect(self) -> None:
        if self._station_profile is None and self._wired_profile is None:
            self._station = self._wired = None
            return
        client, _ = await self._ready()
        async with self._operation():
            await self._disconnect(client)
            await self._disconnect_wired(client)

    async def _disconnect(self, client: NmClient) -> None:
        profile, self._station_profile, self._station = self._station_profile, None, None
        if profile is not None and client.running:
            _, uuid, active = profile
            await _deactivate_if_ours(client, active, uuid)  # the profile stays: it works

    async def status(self) -> RadioStatus:
        clients = await ap_clients(self._device.interface) if self._ap and self._device else 0
        station = self._station or self._wired
        return RadioStatus(ap=self._ap, station=station, ap_clients=clients)

    async def close(self) -> None:
        if self._closed:
            return
        try:
            if self._client is not None and self._client.running:
                async with self._operation():
                    await self._stop_ap(self._client)
                    await self._disconnect(self._client)
                    await self._disconnect_wired(self._client)
        except (NmError, DBusError) as exc:
            log.warning("closing the radio: %s", exc)
        finally:
            self._remove_snippet()
            self._closed = True
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- signals

    def _on_signal(self, msg: Message) -> None:
        device, wired = self._device, self._wired_device
        if self._busy or device is None:
            return
        if wired is not None and msg.path == wired.path:
            if (
                self._wired is not None
                and msg.interface == I_DEVICE
                and msg.member == "StateChanged"
            ):
                new, _, reason = (int(x) for x in msg.body)
                if new in _DOWN_STATES:
                    why = "the cable was unplugged" if reason == nms.REASON_CARRIER else ""
                    words = f"{wired.interface} went down: {why or nms.reason_text(reason)}"
                    log.warning("link lost: %s", words)
                    self._wired = self._wired_profile = None
                    self._link_lost(words)
            return
        if is_nm_owner_change(msg) and not msg.body[2]:
            self._lost("NetworkManager stopped")
        elif msg.member == "DeviceRemoved" and msg.body and msg.body[0] == device.path:
            self._device = None
            self._lost(f"the WiFi interface {device.interface} disappeared")
        elif msg.interface == I_DEVICE and msg.member == "StateChanged" and msg.path == device.path:
            new, _, reason = (int(x) for x in msg.body)
            if new in _DOWN_STATES:
                self._lost(f"{device.interface} went down: {nms.reason_text(reason)}")

    def _lost(self, reason: str) -> None:
        if self._ap is not None:
            log.error("access point down: %s", reason)
            self._ap = self._ap_profile = None
            self._ap_lost(reason)
        if self._station is not None:
            log.warning("link lost: %s", reason)
            self._station = self._station_profile = None
            self._link_lost(reason)


async def _supplicant_for(
    client: NmClient, device: WifiDevice, settings: nms.Settings
) -> str | None:
    """wpa_supplicant's interface to watch for a rejected password: joins with a WPA password
    (a WPA3-SAE rejection is otherwise reported late, as "not found"; an EAP one late)."""
    security = settings.get("802-11-wireless-security", {})
    wireless = settings.get("802-11-wireless", {})
    mode = wireless["mode"].value if "mode" in wireless else "infrastructure"
    key_mgmt = security["key-mgmt"].value if "key-mgmt" in security else ""
    if mode == "ap" or key_mgmt not in ("wpa-psk", "sae", "wpa-eap"):
        return None
    return await supplicant.interface_path(client, device.interface)


def _ipv4(static: StaticIp | None) -> dict[str, Variant] | None:
    """The ``ipv4`` setting for ``static`` (None: DHCP)."""
    if static is None:
        return None
    return nms.static_ipv4(static.ip, static.prefix, static.gw, static.dns_servers)


async def _deactivate_if_ours(client: NmClient, active: str, uuid: str) -> None:
    """Deactivate ``active`` if it still is our profile ``uuid`` (NM may have moved on)."""
    with contextlib.suppress(DBusError):
        if await client.get(active, I_ACTIVE, "Uuid") == uuid:
            await client.deactivate(active)


def _check_ap(ssid: str, passphrase: str | None) -> None:
    if not 1 <= len(ssid.encode()) <= 32:
        raise ValueError(f"an AP name is 1 to 32 bytes, not {len(ssid.encode())}")
    if passphrase is not None and not (8 <= len(passphrase) <= 63 and passphrase.isascii()):
        raise ValueError("an AP passphrase is 8 to 63 ASCII characters (or None: an open AP)")


def _port_53_culprits() -> str:
    """Who holds DNS's port, which NM's dnsmasq needs (a common reason the AP fails)."""
    try:
        owners = sorted(set(port_owners(53, "udp")) | set(port_owners(53, "tcp")))
    except OSError:
        return ""
    if not owners:
        return ""
    return (
        f"; port 53 (DNS), which NetworkManager's dnsmasq needs, is held by {', '.join(owners)}: "
        "stop it (for example `sudo systemctl disable --now dnsmasq`)"
    )
