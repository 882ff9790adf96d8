"""NetworkManager connection settings and numbers, as pure functions: no D-Bus, no I/O.

Numbers come from NetworkManager's ``nm-dbus-interface.h``. Settings are ``a{sa{sv}}`` dicts of
``dbus_fast.Variant`` values, SSIDs always raw bytes (``ay``): an SSID is 0..32 arbitrary bytes.
"""

from __future__ import annotations

import socket
import struct
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from dbus_fast import Variant

Settings = dict[str, dict[str, Variant]]

ID_PREFIX = "wifiprov-"
OWNER_KEY = "org.wifiprov.owner"  # in NM's ``user`` setting: marks the profiles we created

# NM80211ApFlags / NM80211ApSecurityFlags
AP_FLAGS_PRIVACY = 0x1
SEC_KEY_MGMT_PSK = 0x100
SEC_KEY_MGMT_802_1X = 0x200
SEC_KEY_MGMT_SAE = 0x400
SEC_KEY_MGMT_OWE = 0x800
SEC_KEY_MGMT_OWE_TM = 0x1000
SEC_KEY_MGMT_EAP_SUITE_B_192 = 0x2000

# NMDeviceState
DEVICE_UNMANAGED = 10
DEVICE_UNAVAILABLE = 20
DEVICE_DISCONNECTED = 30
DEVICE_PREPARE = 40
DEVICE_CONFIG = 50
DEVICE_NEED_AUTH = 60
DEVICE_ACTIVATED = 100
DEVICE_DEACTIVATING = 110
DEVICE_FAILED = 120

# NMActiveConnectionState
AC_ACTIVATED = 2
AC_DEACTIVATED = 4

# NMDeviceStateReason
REASON_IP_CONFIG_UNAVAILABLE = 5
REASON_NO_SECRETS = 7
REASON_SUPPLICANT_DISCONNECT = 8
REASON_SUPPLICANT_FAILED = 10
REASON_SUPPLICANT_TIMEOUT = 11
REASON_DHCP_START_FAILED = 15
REASON_DHCP_ERROR = 16
REASON_DHCP_FAILED = 17
REASON_SHARED_START_FAILED = 18
REASON_SHARED_FAILED = 19
REASON_CARRIER = 40
REASON_SSID_NOT_FOUND = 53

_AUTH_AFTER_ASSOCIATION = {
    REASON_SUPPLICANT_DISCONNECT,
    REASON_SUPPLICANT_FAILED,
    REASON_SUPPLICANT_TIMEOUT,
}
_NO_ADDRESS = {
    REASON_IP_CONFIG_UNAVAILABLE,
    REASON_DHCP_START_FAILED,
    REASON_DHCP_ERROR,
    REASON_DHCP_FAILED,
}


class Failure(Enum):
    """Why an activation failed, in the words the roles map to their own errors."""

    AUTH = "auth"
    NOT_FOUND = "not_found"
    NO_ADDRESS = "no_address"
    OTHER = "other"


def failure_for_reason(reason: int, *, associated: bool) -> Failure:
    """The failure an NM device state reason means. ``associated``: the device got as far as
    CONFIG/NEED_AUTH, so a supplicant failure means the network refused the key."""
    if reason == REASON_NO_SECRETS:
        return Failure.AUTH
    if reason in _AUTH_AFTER_ASSOCIATION:
        return Failure.AUTH if associated else Failure.NOT_FOUND
    if reason == REASON_SSID_NOT_FOUND:
        return Failure.NOT_FOUND
    if reason in _NO_ADDRESS:
        return Failure.NO_ADDRESS
    return Failure.OTHER


@dataclass(frozen=True)
class AccessPoint:
    """One BSS as NetworkManager reports it."""

    path: str
    ssid: bytes
    bssid: str
    flags: int
    wpa_flags: int
    rsn_flags: int
    strength: int  # percent
    frequency: int  # MHz

    @property
    def rssi(self) -> int:
        """NM gives a 0..100 quality; this is the usual inverse of its dBm mapping."""
        return min(max(self.strength, 0), 100) // 2 - 100

    @property
    def channel(self) -> int:
        return channel_for(self.frequency)

    @property
    def security(self) -> str:
        return security_word(self.flags, self.wpa_flags, self.rsn_flags)


def channel_for(frequency: int) -> int:
    if frequency == 2484:
        return 14
    if 2412 <= frequency < 2484:
        return (frequency - 2407) // 5
    if 5000 <= frequency < 5950:
        return (frequency - 5000) // 5
    if 5950 <= frequency <= 7125:
        return (frequency - 5950) // 5
    return 0


def security_word(flags: int, wpa: int, rsn: int) -> str:
    """Edgent's ``sec`` string for an AP's flags."""
    if rsn & SEC_KEY_MGMT_OWE or rsn & SEC_KEY_MGMT_OWE_TM:
        return "OWE"
    if (wpa | rsn) & (SEC_KEY_MGMT_802_1X | SEC_KEY_MGMT_EAP_SUITE_B_192):
        return "WPA2-EAP"
    if rsn & SEC_KEY_MGMT_SAE:
        return "WPA2+WPA3" if rsn & SEC_KEY_MGMT_PSK else "WPA3"
    if wpa and rsn:
        return "WPA+WPA2"
    if rsn:
        return "WPA2"
    if wpa:
        return "WPA"
    return "WEP" if flags & AP_FLAGS_PRIVACY else "OPEN"


def key_mgmt_for(ap: AccessPoint | None, password: str, identity: str, eap: str) -> str | None:
    """NM's ``key-mgmt`` for joining ``ap`` (None: an open network). Without a beacon (hidden, or
    not in the scan) the credentials decide."""
    if ap is None:
        if identity or eap:
            return "wpa-eap"
        return "wpa-psk" if password else None
    both = ap.wpa_flags | ap.rsn_flags
    if both & (SEC_KEY_MGMT_802_1X | SEC_KEY_MGMT_EAP_SUITE_B_192):
        return "wpa-eap"
    if ap.rsn_flags & SEC_KEY_MGMT_SAE and not both & SEC_KEY_MGMT_PSK:
        return "sae"
    if both & SEC_KEY_MGMT_PSK:
        return "wpa-psk"  # also WPA2/WPA3 transition: NM then picks the best it can
    if ap.rsn_flags & SEC_KEY_MGMT_OWE:
        return "owe"
    if ap.flags & AP_FLAGS_PRIVACY and not both:
        return "none"  # WEP
    return None


def psk_valid(password: str) -> bool:
    """What NM accepts as a WPA passphrase: 8..63 bytes, or 64 hex digits."""
    raw = password.encode()
    if len(raw) == 64:
        return all(c in "0123456789abcdefABCDEF" for c in password)
    return 8 <= len(raw) <= 63


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def _connection(
    name: str, uuid: str, interface: str | None, kind: str = "802-11-wireless"
) -> dict[str, Variant]:
    section = {
        "id": Variant("s", name),
        "uuid": Variant("s", uuid),
        "type": Variant("s", kind),
        "autoconnect": Variant("b", False),  # the agent decides when to (re)join
    }
    if interface:
        section["interface-name"] = Variant("s", interface)
    return section


def _user(owner: str) -> dict[str, Variant]:
    return {"data": Variant("a{ss}", {OWNER_KEY: owner})}


def station_settings(
    ssid: bytes,
    password: str,
    *,
    key_mgmt: str | None,
    owner: str,
    uuid: str,
    interface: str | None = None,
    identity: str = "",
    eap: str = "",
    hidden: bool = False,
    never_default: bool = False,
    ipv4: dict[str, Variant] | None = None,
) -> Settings:
    """A client profile for ``ssid`` with security ``key_mgmt`` (see ``key_mgmt_for``);
    ``ipv4`` replaces DHCP (``static_ipv4``)."""
    wifi: dict[str, Variant] = {
        "ssid": Variant("ay", bytes(ssid)),
        "mode": Variant("s", "infrastructure"),
    }
    if hidden:
        wifi["hidden"] = Variant("b", True)
    ipv4 = dict(ipv4) if ipv4 is not None else {"method": Variant("s", "auto")}
    if never_default:
        ipv4["never-default"] = Variant("b", True)
    settings: Settings = {
        "connection": _connection(profile_id(ssid), uuid, interface),
        "802-11-wireless": wifi,
        "ipv4": ipv4,
        "ipv6": {"method": Variant("s", "auto")},
        "user": _user(owner),
    }
    if key_mgmt is None:
        return settings
    security = {"key-mgmt": Variant("s", key_mgmt)}
    if key_mgmt in ("wpa-psk", "sae"):
        security["psk"] = Variant("s", password)
    elif key_mgmt == "none":
        security["wep-key0"] = Variant("s", password)
        # 5/13 characters or 10/26 hex digits are keys; anything else a passphrase
        is_key = len(password) in (5, 13, 10, 26)
        security["wep-key-type"] = Variant("u", 1 if is_key else 2)
    elif key_mgmt == "wpa-eap":
        method = (eap or "peap").lower()
        settings["802-1x"] = {
            "eap": Variant("as", [method]),
            "identity": Variant("s", identity),
            "password": Variant("s", password),
            "phase2-auth": Variant("s", "pap" if method == "ttls" else "mschapv2"),
        }
    settings["802-11-wireless-security"] = security
    return settings


def static_ipv4(
    address: str, prefix: int, gateway: str, dns: Sequence[str] = ()
) -> dict[str, Variant]:
    """An ``ipv4`` setting with a fixed address (``method manual``: no DHCP). ``dns`` travels
    as NM's ``au``: each address a uint32 whose bytes in memory are the address's (network
    order), which is how NM reads it on every NM version that has ``ipv4.dns``."""
    section = {
        "method": Variant("s", "manual"),
        "address-data": Variant(
            "aa{sv}", [{"address": Variant("s", address), "prefix": Variant("u", prefix)}]
        ),
        "gateway": Variant("s", gateway),
    }
    if dns:
        section["dns"] = Variant("au", [dns_u32(d) for d in dns])
    return section


def dns_u32(address: str) -> int:
    """An IPv4 address as NM's ``ipv4.dns`` carries it."""
    value: int = struct.unpack("=I", socket.inet_aton(address))[0]
    return value


def dns_text(value: int) -> str:
    """The inverse of ``dns_u32``."""
    return socket.inet_ntoa(struct.pack("=I", value))


WIRED_ID = f"{ID_PREFIX}wired"


def wired_settings(
    *,
    owner: str,
    uuid: str,
    interface: str | None,
    ipv4: dict[str, Variant] | None = None,
) -> Settings:
    """An Ethernet profile: DHCP, or ``ipv4`` (``static_ipv4``)."""
    return {
        "connection": _connection(WIRED_ID, uuid, interface, "802-3-ethernet"),
        "802-3-ethernet": {},
        "ipv4": dict(ipv4) if ipv4 is not None else {"method": Variant("s", "auto")},
        "ipv6": {"method": Variant("s", "auto")},
        "user": _user(owner),
    }


def ap_settings(
    ssid: str,
    passphrase: str | None,
    *,
    owner: str,
    uuid: str,
    interface: str | None,
    address: str = "192.168.4.1",
    prefix: int = 24,
) -> Settings:
    """The access-point profile: 2.4 GHz, shared IPv4 (NM runs dnsmasq for DHCP and DNS)."""
    settings: Settings = {
        "connection": _connection(f"{ID_PREFIX}ap", uuid, interface),
        "802-11-wireless": {
            "ssid": Variant("ay", ssid.encode()),
            "mode": Variant("s", "ap"),
            "band": Variant("s", "bg"),  # every phone sees 2.4 GHz; Edgent's AP is 2.4 GHz too
            "powersave": Variant("u", 2),  # disabled: Pi APs drop clients with it on
        },
        "ipv4": {
            "method": Variant("s", "shared"),
            "address-data": Variant(
                "aa{sv}", [{"address": Variant("s", address), "prefix": Variant("u", prefix)}]
            ),
        },
        "ipv6": {"method": Variant("s", "ignore")},
        "user": _user(owner),
    }
    if passphrase is not None:
        settings["802-11-wireless-security"] = {
            "key-mgmt": Variant("s", "wpa-psk"),
            "psk": Variant("s", passphrase),
            "proto": Variant("as", ["rsn"]),
            "pairwise": Variant("as", ["ccmp"]),
            "group": Variant("as", ["ccmp"]),
            "pmf": Variant("i", 1),  # disabled: brcmfmac APs fail clients with PMF on
        }
    return settings


def profile_id(ssid: bytes) -> str:
    """``wifiprov-<ssid>``, the SSID printable: NM shows ids to people, and a D-Bus string
    cannot hold NUL (the SSID itself travels as bytes, exact)."""
    text = ssid.decode("utf-8", "replace")
    return ID_PREFIX + "".join(c if c.isprintable() else "\ufffd" for c in text)


def plain(settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Settings with Variants unwrapped (as NM's GetSettings gives them, for reading)."""
    return {
        name: {k: v.value if isinstance(v, Variant) else v for k, v in section.items()}
        for name, section in settings.items()
    }


def owner_of(settings: dict[str, dict[str, Any]]) -> str | None:
    """The wifiprov owner recorded in a profile, or None when we did not create it: both the id
    prefix and the ``user`` marker must be there."""
    p = plain(settings)
    name = str(p.get("connection", {}).get("id", ""))
    data = p.get("user", {}).get("data", {})
    owner = data.get(OWNER_KEY) if isinstance(data, dict) else None
    if not name.startswith(ID_PREFIX) or not isinstance(owner, str):
        return None
    return owner


_REASON_TEXT = {
    0: "no reason given",
    REASON_IP_CONFIG_UNAVAILABLE: "no IP address could be configured (DHCP)",
    REASON_NO_SECRETS: "the password was rejected (wrong password)",
    REASON_SUPPLICANT_DISCONNECT: "the network disconnected during authentication",
    REASON_SUPPLICANT_FAILED: "the WiFi supplicant failed",
    REASON_SUPPLICANT_TIMEOUT: "authentication took too long",
    REASON_DHCP_START_FAILED: "the DHCP client did not start",
    REASON_DHCP_ERROR: "DHCP error",
    REASON_DHCP_FAILED: "no address from DHCP",
    REASON_SHARED_START_FAILED: "the shared-mode service (dnsmasq: DHCP and DNS) did not start",
    REASON_SHARED_FAILED: "the shared-mode service (dnsmasq: DHCP and DNS) failed",
    REASON_SSID_NOT_FOUND: "no network with that name in range",
    36: "the device was removed",
    37: "NetworkManager went to sleep",
    38: "the connection was removed",
    39: "the connection was taken down on request",
    REASON_CARRIER: "the link went away (no carrier: a cable unplugged?)",
}


def reason_text(reason: int) -> str:
    """A device state reason in words, with its number for searching NM's documentation."""
    return f"{_REASON_TEXT.get(reason, 'NetworkManager device state reason')} (NM reason {reason})"
