"""The radio interface the device agent uses, whatever drives the WiFi hardware.

Backends: ``sim`` (the virtual air, ``wifiprov.sim``) now; ``nm`` (NetworkManager over D-Bus,
with DHCP and DNS on the access point from its shared mode's dnsmasq) in a later issue. Choose one
with ``make_radio(kind, **options)``, as gpiozero chooses a pin factory.

The radio reports and acts; it decides nothing: the agent's state machine owns timeouts and
retries (it passes ``timeout`` to ``connect``) and hears about a lost link via ``on_link_lost``.
"""

from __future__ import annotations

import ipaddress
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from wifiprov.wire.edgent import ScanEntry
from wifiprov.wire.errors import ProvisioningError

if TYPE_CHECKING:
    from wifiprov.wire.edgent import DeviceConfig

__all__ = [
    "AP_ADDRESS",
    "ApInfo",
    "ConnectError",
    "ConnectFailure",
    "LinkLostCallback",
    "Radio",
    "RadioStatus",
    "ScanEntry",
    "StaticIp",
    "StationInfo",
]

log = logging.getLogger(__name__)

AP_ADDRESS = "192.168.4.1"  # the device's address on its own AP (Edgent's)


class ConnectFailure(Enum):
    """Why joining a network failed. Values are BLE Inject's ``reason`` words (PROTOCOLS.md §3);
    ``code`` is the provisioning error code a device records as ``last_error``."""

    NOT_FOUND = "not_found"
    AUTH_FAILED = "invalid_credentials"
    NO_ADDRESS = "no_ip_assigned"
    TIMEOUT = "timeout"
    STATIC_INVALID = "invalid_static_ip"  # our word: Inject has none for it (code 700)
    NO_CABLE = "no_cable"
    OTHER = "generic"

    @property
    def code(self) -> ProvisioningError:
        return _CODES[self]


_CODES = {
    ConnectFailure.NOT_FOUND: ProvisioningError.NETWORK_NOT_FOUND,  # 720
    ConnectFailure.AUTH_FAILED: ProvisioningError.AUTH_FAILED,  # 722
    ConnectFailure.NO_ADDRESS: ProvisioningError.NO_ADDRESS,  # 723
    ConnectFailure.TIMEOUT: ProvisioningError.NETWORK_TIMEOUT,  # 701
    ConnectFailure.STATIC_INVALID: ProvisioningError.CONFIG_INVALID,  # 700
    ConnectFailure.NO_CABLE: ProvisioningError.NO_CABLE,  # 721
    ConnectFailure.OTHER: ProvisioningError.NETWORK_OTHER,  # 704
}


class ConnectError(Exception):
    """``Radio.connect`` failed; ``failure`` says why, ``code`` is its provisioning error code."""

    def __init__(self, failure: ConnectFailure, detail: str = "") -> None:
        super().__init__(detail or failure.name.lower().replace("_", " "))
        self.failure = failure

    @property
    def code(self) -> ProvisioningError:
        return self.failure.code


@dataclass(frozen=True)
class StaticIp:
    """A static IPv4 configuration, as Edgent's ``/config`` gives it (``ip``, ``mask``, ``gw``,
    ``dns``, ``dns2``, dotted). Radios apply it instead of DHCP; ``problem()`` says why one
    cannot work (a radio then raises ``ConnectError(STATIC_INVALID)``, code 700). Without a DNS
    server the gateway serves DNS (``dns_servers``), as a home router does."""

    ip: str
    mask: str
    gw: str
    dns: str | None = None
    dns2: str | None = None

    @property
    def prefix(self) -> int:
        """The mask as a prefix length (``255.255.255.0`` → 24); ValueError when the mask is
        not a netmask."""
        return _prefix(self.mask)

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The network ``ip`` is on (ValueError when ``ip`` or ``mask`` is not usable)."""
        return ipaddress.IPv4Interface(f"{self.ip}/{self.prefix}").network

    @property
    def dns_servers(self) -> tuple[str, ...]:
        """The DNS servers to use: ``dns`` and ``dns2`` when given, else the gateway."""
        given = tuple(d for d in (self.dns, self.dns2) if d)
        return given or (self.gw,)

    def problem(self) -> str | None:
        """None when the configuration can work, else why not, in words."""
        for name, value, needed in (
            ("ip", self.ip, True),
            ("mask", self.mask, True),
            ("gateway", self.gw, True),
            ("dns", self.dns, False),
            ("dns2", self.dns2, False),
        ):
            if not value:
                if needed:
                    return f"a static ip needs a {name}"
                continue
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                return f"{name} {value!r} is not an IPv4 address"
        try:
            prefix = self.prefix
        except ValueError:
            return f"mask {self.mask} is not a netmask"
        if prefix == 0:
            return f"mask {self.mask} is not a netmask"
        ip, gw = ipaddress.IPv4Address(self.ip), ipaddress.IPv4Address(self.gw)
        network = self.network
        if why := _unusable(ip):
            return f"ip {ip} is {why}"
        if prefix <= 30 and ip in (network.network_address, network.broadcast_address):
            return f"ip {ip} is the network/broadcast address of {network}"
        if gw not in network:
            return f"gateway {gw} is not in {network}"
        if gw == ip:
            return f"gateway {gw} is the device's own ip"
        if prefix <= 30 and gw in (network.network_address, network.broadcast_address):
            return f"gateway {gw} is the network/broadcast address of {network}"
        for name, value in (("dns", self.dns), ("dns2", self.dns2)):
            if value and (why := _unusable(ipaddress.IPv4Address(value))):
                return f"{name} {value} is {why}"
        return None

    @classmethod
    def from_config(cls, config: DeviceConfig) -> StaticIp | None:
        """The static configuration of an Edgent ``/config``, or None for DHCP (no ``ip``).
        A DNS of 0.0.0.0 means none, as on Edgent's boards."""
        if config.ip is None:
            return None
        return cls(
            ip=config.ip,
            mask=config.mask or "",
            gw=config.gw or "",
            dns=config.dns if config.dns != "0.0.0.0" else None,
            dns2=config.dns2 if config.dns2 != "0.0.0.0" else None,
        )


def check_static(static: StaticIp | None) -> None:
    """Raise ``ConnectError(STATIC_INVALID)`` with the reason when ``static`` cannot work."""
    problem = static.problem() if static is not None else None
    if problem is not None:
        raise ConnectError(ConnectFailure.STATIC_INVALID, problem)


def _prefix(mask: str) -> int:
    value = int(ipaddress.IPv4Address(mask))
    inverted = ~value & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise ValueError(f"{mask} is not a netmask")
    return 32 - inverted.bit_length()


def _unusable(address: ipaddress.IPv4Address) -> str | None:
    """Why ``address`` cannot be a host's address on a LAN, or None."""
    if address.is_unspecified:
        return "unspecified (0.0.0.0)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address == ipaddress.IPv4Address("255.255.255.255") or address.is_reserved:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class ApInfo:
    """The access point the device opened.

    ``portal_bind`` is where the agent binds its portal: ``(AP_ADDRESS, 80)`` on a real radio;
    a sim radio gives a loopback address (port 0: any free port), and the agent then tells it the
    bound address with ``Radio.publish_portal``."""

    ssid: str
    bssid: str
    address: str = AP_ADDRESS
    portal_bind: tuple[str, int] = (AP_ADDRESS, 80)
    secured: bool = False  # has a passphrase
    captive: bool = False  # DNS answers every name with ``address``


@dataclass(frozen=True)
class StationInfo:
    """The network the station joined; a wired connection has ``ssid=b""`` (and no bssid,
    rssi or channel)."""

    ssid: bytes
    bssid: str
    ip: str
    rssi: int
    channel: int


@dataclass(frozen=True)
class RadioStatus:
    ap: ApInfo | None = None
    station: StationInfo | None = None  # WiFi or wired (``ssid=b""``)
    ap_clients: int = 0  # stations on our AP (the agent's "no client left" rule)

    @property
    def ap_up(self) -> bool:
        return self.ap is not None

    @property
    def connected(self) -> bool:
        return self.station is not None


LinkLostCallback = Callable[[str], object]  # called with a reason, for the log


class Radio(ABC):
    """One WiFi radio: a station that joins networks, and an access point for provisioning.

    Methods are called one at a time (the agent serializes them). Backends call
    ``_link_lost(reason)`` when a joined network goes away, and ``_ap_lost(reason)`` when their
    access point goes down on its own."""

    def __init__(self) -> None:
        self._link_lost_callbacks: list[LinkLostCallback] = []
        self._ap_lost_callbacks: list[LinkLostCallback] = []

    @property
    @abstractmethod
    def station_mac(self) -> str:
        """MAC of the station interface (lower case, ``aa:bb:cc:dd:ee:ff``)."""

    @property
    def wired_mac(self) -> str | None:
        """MAC of the wired (Ethernet) interface, or None when the device has none."""
        return None

    @property
    @abstractmethod
    def ap_mac(self) -> str:
        """MAC (BSSID) of the access point."""

    @property
    @abstractmethod
    def ap_and_station(self) -> bool:
        """True when the AP stays up while the station connects (the newer Edgent shows the
        result live); False when ``connect`` takes the AP down and ``start_ap`` the station."""

    @abstractmethod
    async def scan(self) -> list[ScanEntry]:
        """Networks in range, strongest first. Hidden networks come with ``ssid=b""`` and
        ``hidden=True``, as radios see their beacons."""

    @abstractmethod
    async def start_ap(
        self, ssid: str, passphrase: str | None = None, *, captive: bool = False
    ) -> ApInfo:
        """Open (or reopen) the access point ``ssid`` at 192.168.4.1/24, open when ``passphrase``
        is None. A real radio also serves DHCP on it, and DNS answering ``blynk.setup`` (every
        name when ``captive``) with 192.168.4.1."""

    async def publish_portal(self, host: str, port: int) -> None:  # noqa: B027 (optional hook)
        """The agent's portal listens at ``host:port``. A sim radio publishes it so that sim
        phones reach it; on a real radio clients reach ``ApInfo.portal_bind`` and this does
        nothing."""

    @abstractmethod
    async def stop_ap(self) -> None:
        """Close the access point (nothing happens when it is closed)."""

    @abstractmethod
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
        """Join ``ssid`` (leaving any network joined before, wired too) within ``timeout``
        seconds, or raise ``ConnectError``. ``hidden``: probe for it directly (a network that
        hides its SSID is otherwise not found). ``identity`` and ``eap`` (``peap`` or ``ttls``):
        WPA2-Enterprise, with ``password`` as the user's password. ``static``: this address
        instead of DHCP; one that cannot work raises ``ConnectError(STATIC_INVALID)``."""

    async def connect_wired(
        self, *, static: StaticIp | None = None, timeout: float = 30.0
    ) -> StationInfo:
        """Bring up the wired (Ethernet) interface, by DHCP or with ``static``, leaving any
        WiFi network joined before (the AP is not touched); returns ``StationInfo`` with
        ``ssid=b""`` and the address. No cable: ``ConnectError(NO_CABLE)``."""
        raise ConnectError(ConnectFailure.OTHER, "this device has no Ethernet interface")

    @abstractmethod
    async def disconnect(self) -> None:
        """Leave the network, WiFi or wired (no link-lost callback: the agent asked for it)."""

    @abstractmethod
    async def status(self) -> RadioStatus: ...

    def on_link_lost(self, callback: LinkLostCallback) -> Callable[[], None]:
        """Call ``callback(reason)`` when the station loses a network it joined; returns a
        function that removes the callback."""
        self._link_lost_callbacks.append(callback)

        def remove() -> None:
            if callback in self._link_lost_callbacks:
                self._link_lost_callbacks.remove(callback)

        return remove

    def on_ap_lost(self, callback: LinkLostCallback) -> Callable[[], None]:
        """Call ``callback(reason)`` when the access point went down without ``stop_ap``
        (NetworkManager restarted, the interface went away); returns a remover."""
        self._ap_lost_callbacks.append(callback)
        return lambda: self._ap_lost_callbacks.remove(callback)

    @abstractmethod
    async def close(self) -> None:
        """Release the radio: close the AP, leave the network."""

    def _link_lost(self, reason: str) -> None:
        _call_each(self._link_lost_callbacks, reason)

    def _ap_lost(self, reason: str) -> None:
        _call_each(self._ap_lost_callbacks, reason)


def _call_each(callbacks: list[LinkLostCallback], reason: str) -> None:
    for callback in list(callbacks):
        try:
            callback(reason)
        except Exception:
            log.exception("radio callback %r failed", callback)
