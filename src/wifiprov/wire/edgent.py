"""The Edgent SoftAP HTTP API's data (PROTOCOLS.md section 1), with no I/O.

``scan_json`` and ``board_info_json`` build the bodies of ``/wifi_scan.json`` and
``/board_info.json``; ``parse_config_query`` turns the query string of ``/config`` into a
``DeviceConfig`` or raises ``ConfigError``; the reply bodies are constants, byte for byte Edgent's.
Every body is valid JSON whatever the names and SSIDs contain (classic Edgent's was not).

Comments mark what is Edgent's behaviour and what is wifiprov's extension.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# --- replies (Edgent's, byte for byte: compact JSON, as both firmware generations send) ----------

TRYING_TO_CONNECT = b'{"status":"ok","msg":"Trying to connect..."}'
CONFIGURATION_SAVED = b'{"status":"ok","msg":"Configuration saved"}'
CONFIGURATION_RESET = b'{"status":"ok","msg":"Configuration reset"}'
CONFIGURATION_INVALID = b'{"status":"error","msg":"Configuration invalid"}'  # with HTTP 500


def config_ok(save: bool) -> bytes:
    """The 200 reply to a valid ``/config``: classic Edgent says "saved" when ``save`` was set."""
    return CONFIGURATION_SAVED if save else TRYING_TO_CONNECT


def config_invalid(detail: str) -> bytes:
    """Edgent's "Configuration invalid" body, plus our ``detail`` key (``"<param>: <reason>"``).

    Extension: Edgent's body has no ``detail``; clients read ``status``/``msg`` and ignore it.
    An empty detail gives Edgent's body exactly.
    """
    if not detail:
        return CONFIGURATION_INVALID
    return CONFIGURATION_INVALID[:-1] + b',"detail":' + _dumps(detail) + b"}"


def _dumps(value: Any) -> bytes:
    # Raw UTF-8 like ArduinoJson; a lone surrogate (only possible in a str handed to us) becomes
    # "?" so the bytes stay valid UTF-8 and valid JSON.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "replace")


# --- /wifi_scan.json -----------------------------------------------------------------------------

SCAN_LIMIT = 15  # Edgent: top 15 by RSSI


@dataclass(frozen=True)
class ScanEntry:
    ssid: bytes
    bssid: str
    rssi: int
    security: str  # Edgent's ``sec`` string: OPEN, WEP, WPA2, WPA+WPA2, WPA2-EAP, ...
    channel: int
    hidden: bool = False


def _scan_item(e: ScanEntry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "ssid": e.ssid.decode("utf-8", "replace"),
        "bssid": e.bssid,
        "rssi": e.rssi,
        "sec": e.security,
        "ch": e.channel,
    }
    if e.hidden:  # ESP8266 Edgent sends "hidden" always; we only when true
        item["hidden"] = True
    try:
        e.ssid.decode("utf-8")
    except UnicodeDecodeError:  # extension: the exact bytes, for clients that can use them
        item["ssid_hex"] = e.ssid.hex()
    return item


def scan_json(entries: Iterable[ScanEntry], limit: int = SCAN_LIMIT) -> bytes:
    """A JSON array of networks, strongest first, at most ``limit``; ``[]`` when there are none.

    Entries are not filtered (Edgent-Arduino drops hidden and weaker than -90 dBm networks; the
    caller decides). Equal RSSIs keep their given order.
    """
    best = sorted(entries, key=lambda e: -e.rssi)[: max(limit, 0)]
    return _dumps([_scan_item(e) for e in best])


# --- /board_info.json ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardInfo:
    board: str  # the template name
    tmpl_id: str
    fw_type: str  # Edgent's default is the template id
    fw_ver: str
    ssid: str  # the device's own AP name; newer firmware calls it "name"
    bssid: str  # the AP's MAC
    mac: str  # the station MAC
    last_error: int = 0
    static_ip: bool = True
    wifi_scan: bool = True
    vendor: str = "Blynk"  # newer firmware: the vendor prefix
    uid: str = ""  # newer firmware: a UUID kept by the device
    five_ghz: bool = False  # newer firmware: the wifi interface's "5ghz"
    eth_mac: str | None = None  # the wired interface's MAC, when the device has one
    ap_sta: bool = False  # extension: the AP stays up while the station connects
    scan_cached: bool = False  # extension: /wifi_scan.json is the scan taken before the AP opened


def board_info_json(info: BoardInfo) -> bytes:
    """Every classic key in classic order, then the newer keys, then ours (``ap_sta``,
    ``scan_cached``).

    With plain values the classic part is byte for byte classic Edgent's ``snprintf`` output.
    ``ifs`` lists ``wifi``, then ``eth`` when ``eth_mac`` is set.
    """
    ifs: list[dict[str, Any]] = [
        {
            "name": "wifi",
            "mac": info.mac,
            "scan": int(info.wifi_scan),
            "5ghz": int(info.five_ghz),
            "static_ip": int(info.static_ip),
        }
    ]
    if info.eth_mac is not None:
        # Edgent-Arduino's Ethernet entry (its BLE "ifs" reply: name, mac, status, ip when
        # connected, static_ip). Its SoftAP board info lists WiFi only; a Linux board with both
        # lists both here. No "status": the app reads "ready" as "no network setup needed".
        ifs.append({"name": "eth", "mac": info.eth_mac, "static_ip": int(info.static_ip)})
    body: dict[str, Any] = {
        # classic Edgent (blynk-library examples/Blynk.Edgent)
        "board": info.board,
        "tmpl_id": info.tmpl_id,
        "fw_type": info.fw_type,
        "fw_ver": info.fw_ver,
        "ssid": info.ssid,
        "bssid": info.bssid,
        "mac": info.mac,
        "last_error": info.last_error,
        "wifi_scan": info.wifi_scan,
        "static_ip": info.static_ip,
        # Edgent-Arduino
        "vendor": info.vendor,
        "name": info.ssid,
        "uid": info.uid,
        "ifs": ifs,
        # extensions
        "ap_sta": info.ap_sta,
        "scan_cached": info.scan_cached,
    }
    return _dumps(body)


# --- /config -------------------------------------------------------------------------------------

MAX_QUERY = 4096  # extension: a longer query string is rejected before parsing
MAX_SSID = 32
TOKEN_LENGTH = 32
INTERFACES = ("wifi", "eth", "cell")  # Edgent-Arduino's ``if``
EAP_METHODS = ("peap", "ttls")  # extension: WPA2-Enterprise

# Every parameter we read; others are ignored, as Edgent ignores them.
EDGENT_PARAMS = frozenset(  # classic and newer Edgent
    "ssid ssidManual pass blynk host port port_ssl ip mask gw dns dns2 save if".split()
)
EXTENSION_PARAMS = frozenset({"ssid_hex", "identity", "eap"})
PARAMS = EDGENT_PARAMS | EXTENSION_PARAMS

_TOKEN = re.compile(r"[-_a-zA-Z0-9]{32}")
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_HOST = re.compile(r"[^\s\x00-\x1f\x7f]{1,253}")
_PORT = re.compile(r"[0-9]{1,5}")


class ConfigError(ValueError):
    """``/config`` input that cannot be used; ``str(err)`` is ``"<param>: <reason>"``."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason


NO_HOST = (
    "this device has no cloud server configured; give the server's host name "
    "(the setup link from your account carries it)"
)


@dataclass(frozen=True)
class ConfigDefaults:
    host: str  # used when ``host`` is empty (Edgent: blynk.cloud); "" means there is none
    port: int  # used when ``port`` is empty
    port_ssl: int | None = None  # used when ``port_ssl`` is empty (Edgent: 443)


@dataclass(frozen=True)
class DeviceConfig:
    ssid: bytes  # b"" only when the interface is not wifi
    password: str
    token: str
    host: str
    port: int
    port_ssl: int | None = None
    interface: str = "wifi"
    ip: str | None = None  # static IPv4 (dotted); all five None means DHCP
    mask: str | None = None
    gw: str | None = None
    dns: str | None = None
    dns2: str | None = None
    save: bool = False
    identity: str | None = None  # extension: WPA2-Enterprise user name
    eap: str | None = None  # extension: "peap" or "ttls"

    @property
    def static_ip(self) -> bool:
        return self.ip is not None


def unquote(raw: bytes, param: str) -> bytes:
    """Percent-decode to bytes. ``+`` is a space, as in the Arduino WebServer's ``urlDecode``.

    Edgent reads a stray ``%`` as a character (or a NUL); we reject it, naming ``param``.
    """
    if _BAD_PERCENT.search(raw):
        raise ConfigError(param, "has a '%' that is not followed by two hex digits")
    return _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"+", b" "))


def _split_query(query: bytes) -> dict[str, bytes]:
    if len(query) > MAX_QUERY:
        raise ConfigError("query", f"is longer than {MAX_QUERY} bytes")
    args: dict[str, bytes] = {}
    for part in query.split(b"&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition(b"=")
        name = unquote(raw_name, "query").decode("utf-8", "replace")
        if name not in PARAMS:
            continue
        if name in args:  # extension: Edgent takes the first; a repeat is ambiguous
            raise ConfigError(name, "is given more than once; send each parameter once")
        args[name] = unquote(raw_value, name)
    return args


def _text(args: dict[str, bytes], name: str) -> str:
    try:
        return args.get(name, b"").decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(name, "is not valid UTF-8 text") from None


def _ssid(args: dict[str, bytes], interface: str) -> bytes:
    source, ssid = "ssid", args.get("ssid", b"")
    if args.get("ssidManual"):  # Edgent: a manually typed name (hidden networks) wins
        source, ssid = "ssidManual", args["ssidManual"]
    hex_text = _text(args, "ssid_hex")
    if hex_text:  # extension: the exact bytes in hex win over both
        if not _HEX.fullmatch(hex_text):
            raise ConfigError("ssid_hex", "must be an even number of hex digits")
        source, ssid = "ssid_hex", bytes.fromhex(hex_text)
    if len(ssid) > MAX_SSID:
        raise ConfigError(source, f"must be at most {MAX_SSID} bytes long (got {len(ssid)})")
    if not ssid and interface == "wifi":
        raise ConfigError("ssid", "must name the WiFi network (1 to 32 bytes)")
    return ssid


def _token(args: dict[str, bytes]) -> str:
    token = _text(args, "blynk")
    if len(token) != TOKEN_LENGTH:  # Edgent checks only this
        raise ConfigError("blynk", f"must be {TOKEN_LENGTH} characters long (got {len(token)})")
    if not _TOKEN.fullmatch(token):  # Edgent's form pattern, enforced here
        raise ConfigError("blynk", "may contain only letters, digits, '-' and '_'")
    return token


def _port(args: dict[str, bytes], name: str) -> int | None:
    text = _text(args, name)
    if not text:
        return None
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ConfigError(name, "must be a number from 1 to 65535")
    return int(text)


def _ipv4(args: dict[str, bytes], name: str) -> str | None:
    text = _text(args, name)
    if not text:
        return None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ConfigError(name, "must be a dotted IPv4 address such as 192.168.1.20") from None


_STATIC = ("ip", "mask", "gw", "dns", "dns2")


def _static(args: dict[str, bytes]) -> dict[str, str | None]:
    """ip, mask, gw, dns, dns2: all None (DHCP) unless ``ip`` is given; each checked when given."""
    fields = {name: _ipv4(args, name) for name in _STATIC}
    if fields["ip"] is None:  # Edgent: no valid ip, no static addressing; the rest is unused
        return dict.fromkeys(_STATIC)
    for name in ("mask", "gw"):  # extension: Edgent would apply 0.0.0.0
        if fields[name] is None:
            raise ConfigError(name, "is required with a static ip")
    inverted = ~int(ipaddress.IPv4Address(fields["mask"])) & 0xFFFFFFFF
    if inverted == 0xFFFFFFFF or inverted & (inverted + 1):
        raise ConfigError("mask", "must be a netmask such as 255.255.255.0")
    return fields


def _enterprise(args: dict[str, bytes]) -> tuple[str | None, str | None]:
    # extension: Edgent has no WPA2-Enterprise; we need both or neither
    identity, eap = _text(args, "identity") or None, _text(args, "eap") or None
    if eap is not None and eap not in EAP_METHODS:
        raise ConfigError("eap", "must be peap or ttls")
    if eap is not None and identity is None:
        raise ConfigError("identity", "is required with eap")
    if identity is not None and eap is None:
        raise ConfigError("eap", "is required with identity (peap or ttls)")
    return identity, eap


def parse_config_query(query: bytes, defaults: ConfigDefaults) -> DeviceConfig:
    """The configuration in a ``/config`` query string (the bytes after ``?``).

    Valid iff the token has 32 characters and (the interface is not wifi, or an SSID is given), as
    in Edgent, plus our stricter checks; anything else raises ``ConfigError``. ``save`` is true for
    ``1`` or ``true`` (any case), as in Edgent-Arduino; any other value is false. An empty ``host``
    takes ``defaults.host``; when that is empty too, the query must name the host (Edgent would
    fall back to blynk.cloud, Blynk's commercial cloud).
    """
    args = _split_query(query)
    interface = _text(args, "if") or "wifi"  # classic Edgent sends no "if": wifi
    if interface not in INTERFACES:
        raise ConfigError("if", "must be wifi, eth or cell")
    ssid = _ssid(args, interface)
    password = _text(args, "pass")
    token = _token(args)
    host = _text(args, "host") or defaults.host  # Edgent: empty keeps the default
    if not host:  # extension: no default, rather than Blynk's commercial cloud
        raise ConfigError("host", NO_HOST)
    if not _HOST.fullmatch(host):
        raise ConfigError(
            "host",
            "must be a host name or address of at most 253 characters, "
            "without spaces or control characters",
        )
    port = _port(args, "port")
    port_ssl = _port(args, "port_ssl")
    if port_ssl is None and port is not None:
        # A plain port and no TLS port: the sender means plain TCP there, not our default TLS.
        ssl_default = None
    else:
        ssl_default = defaults.port_ssl
    static = _static(args)
    identity, eap = _enterprise(args)
    return DeviceConfig(
        ssid=ssid,
        password=password,
        token=token,
        host=host,
        port=defaults.port if port is None else port,  # Edgent: empty keeps the default
        port_ssl=ssl_default if port_ssl is None else port_ssl,
        interface=interface,
        save=_text(args, "save").lower() in ("1", "true"),
        ip=static["ip"],
        mask=static["mask"],
        gw=static["gw"],
        dns=static["dns"],
        dns2=static["dns2"],
        identity=identity,
        eap=eap,
    )


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def quote(value: bytes) -> bytes:
    """Percent-encode every byte but ``A-Z a-z 0-9 - _ . ~``."""
    return b"".join(bytes([b]) if b in _UNRESERVED else b"%%%02X" % b for b in value)


def encode_config_query(config: DeviceConfig) -> bytes:
    """The ``/config`` query string (without ``?``) that parses back to ``config``."""
    fields: list[tuple[str, bytes | str | int | None]] = [
        ("if", config.interface),
        ("ssid", config.ssid),
        ("pass", config.password),
        ("blynk", config.token),
        ("host", config.host),
        ("port", config.port),
        ("port_ssl", config.port_ssl),
        ("ip", config.ip),
        ("mask", config.mask),
        ("gw", config.gw),
        ("dns", config.dns),
        ("dns2", config.dns2),
        ("identity", config.identity),
        ("eap", config.eap),
        ("save", 1 if config.save else None),
    ]
    parts = []
    for name, value in fields:
        if value is None:
            continue
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(name.encode() + b"=" + quote(raw))
    return b"&".join(parts)


# --- passwords -----------------------------------------------------------------------------------

_OPEN = frozenset({"OPEN", "OWE"})
_WEP = frozenset({"WEP"})
_PSK = frozenset(
    {"WPA", "WPA2", "WPA3", "WPA+WPA2", "WPA2+WPA3", "WAPI", "WPA/PSK", "WPA2/PSK", "WPA/WPA2/PSK"}
)
_ENTERPRISE = frozenset({"WPA2-EAP", "WPA2 ENT", "WPA ENT", "WPA3 ENT", "WPA2+WPA3 ENT"})
_HEX_CHARS = re.compile(r"[0-9A-Fa-f]*")


def _is_psk(password: str, size: int) -> bool:
    return 8 <= size <= 63 or (size == 64 and bool(_HEX_CHARS.fullmatch(password)))


def _is_wep(password: str, size: int) -> bool:
    is_hex = bool(_HEX_CHARS.fullmatch(password))
    return (size in (5, 13) and password.isascii()) or (size in (10, 26) and is_hex)


def check_password(password: str, security: str | None) -> None:
    """Raise ``ConfigError("pass", ...)`` when ``password`` cannot work with ``security``.

    ``security`` is a scan's ``sec`` string. Lengths count UTF-8 bytes, as wpa_supplicant does.
    OPEN/OWE: must be empty (a password on an open network is a mistake, and the station would
    refuse the network). WPA/WPA2/WPA3/WAPI and mixes: 8-63 bytes, or 64 hex digits. WEP: 5 or 13
    ASCII characters, or 10 or 26 hex digits. Enterprise: not empty. ``None``, ``unknown`` or any
    other string (a hidden network): empty or any WEP or WPA form.
    """
    size = len(password.encode("utf-8", "surrogatepass"))
    sec = (security or "").upper()
    if sec in _OPEN:
        if password:
            raise ConfigError("pass", "must be empty: the network is open and has no password")
    elif sec in _PSK:
        if not _is_psk(password, size):
            raise ConfigError(
                "pass", f"must be 8 to 63 characters or 64 hex digits for a {sec} network"
            )
    elif sec in _WEP:
        if not _is_wep(password, size):
            raise ConfigError(
                "pass", "must be 5 or 13 characters, or 10 or 26 hex digits, for a WEP network"
            )
    elif sec in _ENTERPRISE:
        if not password:
            raise ConfigError("pass", "must not be empty for an enterprise (802.1X) network")
    elif password and not (_is_psk(password, size) or _is_wep(password, size)):
        raise ConfigError(
            "pass",
            "fits no WiFi security: use none, 8 to 63 characters or 64 hex digits (WPA), "
            "or 5 or 13 characters or 10 or 26 hex digits (WEP)",
        )
