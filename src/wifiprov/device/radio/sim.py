"""The sim radio: a device's WiFi in the virtual air (``wifiprov.sim.air``).

- ``scan`` lists the air's networks, strongest first, except those with the ``not_found`` fault
  (out of range). A hidden network shows as ``ssid=b""``, ``hidden=True``, as real radios see the
  beacons of hidden networks. Other devices' access points are not listed.
- ``connect`` picks the strongest network with that SSID and applies its faults in the order a
  real join meets them: no such network, ``not_found``, or hidden and ``hidden=False`` → 720;
  ``assoc_delay`` (a sleep on the event loop; past ``timeout`` → 701); ``wrong_password``, a
  password that differs (open networks take any), or an enterprise identity that differs → 722;
  ``dhcp_fail`` → 723. Success records the station in the air; removing the network (or scripting
  ``not_found``, or removing the station's file) then fires the link-lost callbacks.
- ``start_ap`` publishes the AP in the air; sim phones (``wifiprov.sim.phone``) reach the portal at
  the address the agent gives to ``publish_portal`` (or the fixed ``portal`` given here).
  ``stop_ap`` withdraws it and drops its clients.
- With ``ap_and_station=False`` one radio does one thing: ``connect`` closes the AP and
  ``start_ap`` leaves the network, as a single-interface NetworkManager device does.
- ``static``: ``connect`` reports that address instead of a DHCP one (a configuration that cannot
  work raises STATIC_INVALID, 700, before anything changes).
- ``wired=True`` adds an Ethernet interface (MAC: the station's + 3, as an ESP32 numbers it) and
  a cable that tests steer, as gpiozero's mock pins: ``plug_cable()``, ``unplug_cable()``
  (plugged at start unless ``cable=False``). ``connect_wired`` without the cable → NO_CABLE
  (721); unplugging it while connected fires the link-lost callbacks. The wired link is not in
  the air (phones never see it).
Delays default to zero, so tests run fast.
"""

from __future__ import annotations

import asyncio
import logging
import os

from wifiprov.device.radio.base import (
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
from wifiprov.sim.air import (
    AccessPoint,
    Air,
    AirError,
    Network,
    Station,
    address_in,
    check_name,
    derived_mac,
    next_mac,
)
from wifiprov.sim.watch import ChangeFeed

log = logging.getLogger(__name__)

_UNSPECIFIED = {"", "0.0.0.0", "::"}


class SimRadio(Radio):
    """Device ``device_id``'s radio in ``air`` (an ``Air``, or its folder: then the radio owns it
    and closes it). ``mac`` defaults to one derived from the id; the AP's is the MAC + 1.
    ``portal``: a fixed address for the portal (default: the agent binds a free loopback port).
    ``wired``: the device also has Ethernet (MAC + 3), its cable plugged in unless ``cable`` is
    False."""

    def __init__(
        self,
        air: Air | str | os.PathLike[str],
        device_id: str,
        mac: str | None = None,
        *,
        ap_and_station: bool = True,
        scan_delay: float = 0.0,
        portal: tuple[str, int] | None = None,
        wired: bool = False,
        cable: bool = True,
    ) -> None:
        super().__init__()
        self._owns_air = not isinstance(air, Air)
        self.air = air if isinstance(air, Air) else Air(air)
        self.device_id = check_name(device_id, "device id")
        self._mac = (mac or derived_mac(f"device:{device_id}")).lower()
        self._ap_mac = next_mac(self._mac)
        self._wired_mac = next_mac(next_mac(self._ap_mac)) if wired else None
        self._cable = cable
        self._wired: StationInfo | None = None
        self._ap_and_station = ap_and_station
        self.scan_delay = scan_delay
        self.portal = portal
        self._ap: ApInfo | None = None
        self._published: AccessPoint | None = None
        self._station: StationInfo | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SimRadio({self.air!r}, {self.device_id!r})"

    @property
    def station_mac(self) -> str:
        return self._mac

    @property
    def ap_mac(self) -> str:
        return self._ap_mac

    @property
    def wired_mac(self) -> str | None:
        return self._wired_mac

    @property
    def cable_plugged(self) -> bool:
        return self._cable

    def plug_cable(self) -> None:
        """Plug the Ethernet cable in (nothing joins by itself: ``connect_wired`` does)."""
        self._cable = True

    def unplug_cable(self) -> None:
        """Pull the Ethernet cable; a wired connection is lost (link-lost callbacks)."""
        self._cable = False
        if self._wired is not None:
            self._wired = None
            log.info("%s: link lost: the Ethernet cable was unplugged", self.device_id)
            self._link_lost("the Ethernet cable was unplugged")

    @property
    def ap_and_station(self) -> bool:
        return self._ap_and_station

    async def scan(self) -> list[ScanEntry]:
        self._check_open()
        if self.scan_delay > 0:
            await asyncio.sleep(self.scan_delay)
        entries = [
            ScanEntry(
                ssid=b"" if n.hidden else n.ssid,
                bssid=n.bssid,
                rssi=n.rssi,
                security=n.security,
                channel=n.channel,
                hidden=n.hidden,
            )
            for n in self.air.networks()
            if not n.faults.not_found
        ]
        return sorted(entries, key=lambda e: e.rssi, reverse=True)

    # -- access point

    async def start_ap(
        self, ssid: str, passphrase: str | None = None, *, captive: bool = False
    ) -> ApInfo:
        self._check_open()
        _check_ap(ssid, passphrase)
        if self._ap is not None:
            await self.stop_ap()
        if self._station is not None and not self._ap_and_station:
            await self.disconnect()
        fixed = self.portal if self.portal is not None and self.portal[1] else None
        self._published = AccessPoint(
            self.device_id, ssid, self._ap_mac, portal=fixed, passphrase=passphrase, captive=captive
        )
        self.air.publish_ap(self._published)
        self._ap = ApInfo(
            ssid=ssid,
            bssid=self._ap_mac,
            portal_bind=self.portal or ("127.0.0.1", 0),
            secured=passphrase is not None,
            captive=captive,
        )
        log.info("%s: access point %r up", self.device_id, ssid)
        return self._ap

    async def publish_portal(self, host: str, port: int) -> None:
        self._check_open()
        if self._published is None:
            raise RuntimeError("publish_portal needs the access point up (start_ap)")
        host = "127.0.0.1" if host in _UNSPECIFIED else host
        self._published = AccessPoint(
            self._published.device,
            self._published.ssid,
            self._published.bssid,
            portal=(host, port),
            passphrase=self._published.passphrase,
            captive=self._published.captive,
        )
        self.air.publish_ap(self._published)

    async def stop_ap(self) -> None:
        if self._ap is None:
            return
        self.air.withdraw_ap(self.device_id)
        for station in self.air.stations():
            if station.ap == self.device_id:
                self.air.remove_station(station.name)
        log.info("%s: access point %r down", self.device_id, self._ap.ssid)
        self._ap = self._published = None

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
        self._check_open()
        check_static(static)
        if self._station is not None or self._wired is not None:
            await self.disconnect()
        if self._ap is not None and not self._ap_and_station:
            await self.stop_ap()
        log.info("%s: joining %r", self.device_id, ssid)
        try:
            async with asyncio.timeout(timeout):
                network = await self._associate(ssid, password, identity, hidden)
        except TimeoutError:
            raise ConnectError(
                ConnectFailure.TIMEOUT, f"no association with {ssid!r} within {timeout:g} s"
            ) from None
        return self._joined(network, static)

    async def _associate(self, ssid: bytes, password: str, identity: str, hidden: bool) -> Network:
        candidates = [
            n
            for n in self.air.networks()
            if n.ssid == ssid and not n.faults.not_found and (hidden or not n.hidden)
        ]
        if not candidates:
            raise ConnectError(ConnectFailure.NOT_FOUND, f"no network {ssid!r} in range")
        network = max(candidates, key=lambda n: n.rssi)
        if network.faults.assoc_delay > 0:
            await asyncio.sleep(network.faults.assoc_delay)
            if self._gone(network.id):
                raise ConnectError(ConnectFailure.NOT_FOUND, f"{ssid!r} went away")
        if (
            network.faults.wrong_password
            or (not network.open and password != network.password)
            or (network.enterprise and network.identity and identity != network.identity)
        ):
            raise ConnectError(ConnectFailure.AUTH_FAILED, f"{ssid!r} rejected the credentials")
        if network.faults.dhcp_fail:
            raise ConnectError(ConnectFailure.NO_ADDRESS, f"no DHCP lease on {ssid!r}")
        return network

    def _joined(self, network: Network, static: StaticIp | None) -> StationInfo:
        # before recording: no change after this goes unseen; woken by its network and station only
        feed = self.air.changes(("networks", network.id), ("stations", self.device_id))
        ip = static.ip if static else address_in("10.42.0", f"{self._mac}@{network.id}")
        self.air.record_station(
            Station(self.device_id, self._mac, ip, network.ssid, network.bssid, network=network.id)
        )
        self._station = StationInfo(network.ssid, network.bssid, ip, network.rssi, network.channel)
        self._monitor = asyncio.create_task(self._watch_link(feed, network.id))
        log.info("%s: joined %r (%s) as %s", self.device_id, network.ssid, network.id, ip)
        return self._station

    async def _watch_link(self, feed: ChangeFeed, network_id: str) -> None:
        try:
            while (reason := self._gone(network_id)) is None:
                await feed.wait()
        finally:
            feed.close()
        self._monitor = None
        self._station = None
        self.air.remove_station(self.device_id)
        log.info("%s: link lost: %s", self.device_id, reason)
        self._link_lost(reason)

    def _gone(self, network_id: str) -> str | None:
        """Why the station cannot stay on the network, or None when it can."""
        try:
            network = self.air.network(network_id)
            if network is None:
                return f"network {network_id!r} was removed from the air"
            if network.faults.not_found:
                return f"network {network_id!r} went out of range (not_found)"
            if self._station is not None and self.air.station(self.device_id) is None:
                return "the station was removed from the air"
        except AirError:
            pass  # a file being edited by hand: the next change will tell
        return None

    async def connect_wired(
        self, *, static: StaticIp | None = None, timeout: float = 30.0
    ) -> StationInfo:
        self._check_open()
        if self._wired_mac is None:
            return await super().connect_wired(static=static, timeout=timeout)
        check_static(static)
        if not self._cable:
            raise ConnectError(ConnectFailure.NO_CABLE, "no cable in the Ethernet port")
        await self.disconnect()
        ip = static.ip if static else address_in("10.42.1", f"{self._wired_mac}@wired")
        self._wired = StationInfo(ssid=b"", bssid="", ip=ip, rssi=0, channel=0)
        log.info("%s: wired, as %s", self.device_id, ip)
        return self._wired

    async def disconnect(self) -> None:
        if self._wired is not None:
            log.info("%s: wired connection down", self.device_id)
            self._wired = None
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.cancel()
            await asyncio.wait([monitor])
        if self._station is not None:
            self.air.remove_station(self.device_id)
            log.info("%s: left %r", self.device_id, self._station.ssid)
        self._station = None

    async def status(self) -> RadioStatus:
        clients = 0
        if self._ap is not None:
            clients = sum(1 for s in self.air.stations() if s.ap == self.device_id)
        station = self._station or self._wired
        return RadioStatus(ap=self._ap, station=station, ap_clients=clients)

    async def close(self) -> None:
        if self._closed:
            return
        await self.disconnect()
        await self.stop_ap()
        self._closed = True
        if self._owns_air:
            self.air.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")


def _check_ap(ssid: str, passphrase: str | None) -> None:
    if not 1 <= len(ssid.encode()) <= 32:
        raise ValueError(f"an AP name is 1 to 32 bytes, not {len(ssid.encode())}")
    if passphrase is not None and not (8 <= len(passphrase) <= 63 and passphrase.isascii()):
        raise ValueError("an AP passphrase is 8 to 63 ASCII characters (or None: an open AP)")
