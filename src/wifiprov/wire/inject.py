"""Blynk.Inject over Bluetooth LE: its JSON messages (PROTOCOLS.md section 3), with no I/O.

The phone writes one JSON object per write to the RX characteristic; the device notifies one
JSON object per notification on TX. ``parse`` turns a write into a ``Request`` or raises
``InjectError`` carrying the device's answer (``wrong format``, ``invalid command``);
``Pending`` accumulates ``set`` fields until ``connect`` and turns them into the same
``edgent.DeviceConfig`` the SoftAP portal's ``/config`` produces (the one set of checks);
the reply builders give Blynk's message shapes, and ``failure`` maps a ``last_error`` code to
the Blynk reason words of ``net_fail`` / ``cloud_fail``.

Long notifications: BlueZ sends a notification of at most ATT_MTU - 3 bytes and Blynk's clients
(the app, its Linux library) neither split nor reassemble, so every message is kept whole and
short: ``encode`` raises ``ValueError`` past ``MAX_MESSAGE`` bytes, and the callers keep each
message small (one scan entry per notification, an SSID is at most 32 bytes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wifiprov.wire import edgent
from wifiprov.wire.errors import ProvisioningError as E

SERVICE_UUID = "95e30001-5737-45a9-a092-a88e2e5dd659"
RX_UUID = "95e30002-5737-45a9-a092-a88e2e5dd659"  # phone -> device: write, write without response
TX_UUID = "95e30003-5737-45a9-a092-a88e2e5dd659"  # device -> phone: notify

# 512 is the largest attribute value (Core spec Vol 3 Part F 3.2.9); BlueZ caps a notification at
# the negotiated ATT_MTU - 3 and phones negotiate 185..517. Our messages stay far below this.
MAX_MESSAGE = 512
MAX_WRITE = 4096  # a write larger than this is "wrong format" (BlueZ reassembles long writes)

SET_KEYS = frozenset(
    {
        "if",
        "ssid",
        "pass",
        "pin",
        "apn",
        "blynk",
        "host",
        "ip",
        "mask",
        "gw",
        "dns",
        "dns2",
        "save",
        "templateId",
    }
)
# Our extension: the out-of-band code of a device that requires one (docs/ble.md). A device
# without a code takes it and ignores it; Blynk's clients never send it.
EXTENSION_SET_KEYS = frozenset({"code"})
NETWORK_KEYS = ("if", "ssid", "pass", "pin", "apn", "ip", "mask", "gw", "dns", "dns2")
COMMANDS = frozenset({"info", "ifs", "scan", "set", "connect", "reset", "reboot"})
SCAN_LIMIT = 30
SCAN_FLOOR = -90  # dBm: weaker networks are not listed (Edgent-Arduino, Blynk's library)

WRONG_FORMAT = "wrong format"
INVALID_COMMAND = "invalid command"
CONFIGURATION_INVALID = "configuration invalid"

REASONS = (
    "timeout",
    "not_found",
    "invalid_credentials",
    "no_ip_assigned",
    "no_cable",
    "sim_missing",
    "sim_locked",
    "sim_wrong_pin",
    "auth_failed",
    "dns_failed",
    "invalid_certificate",
    "captive_portal",
    "generic",
)


class InjectError(ValueError):
    """A write the device answers with ``reply`` and otherwise ignores."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(str(reply.get("msg", reply.get("t"))))
        self.reply = reply


@dataclass(frozen=True)
class Request:
    kind: str  # one of COMMANDS
    fields: Mapping[str, Any] = field(default_factory=dict)  # the message without "t"


def parse(raw: bytes) -> Request:
    """The request in one RX write. Raises ``InjectError`` with ``{"t":"error","msg":"wrong
    format"}`` for anything that is not one JSON object (too long, not UTF-8, not JSON, not an
    object, no string ``t``), and ``invalid command`` for an unknown ``t``."""
    if len(raw) > MAX_WRITE:
        raise InjectError(error(WRONG_FORMAT))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InjectError(error(WRONG_FORMAT)) from None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        raise InjectError(error(WRONG_FORMAT))
    kind = data.pop("t")
    if kind not in COMMANDS:
        raise InjectError(error(INVALID_COMMAND))
    return Request(kind, data)


def encode(message: Mapping[str, Any]) -> bytes:
    """One notification: compact UTF-8 JSON. ``ValueError`` when it would exceed MAX_MESSAGE."""
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"an Inject message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return data


def decode(raw: bytes) -> dict[str, Any]:
    """A notification, as a provisioner reads it; ``ValueError`` when it is not a message."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"not an Inject message: {raw[:40]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        raise ValueError(f"not an Inject message: {raw[:40]!r}")
    return data


def request(kind: str, **fields: Any) -> bytes:
    """A provisioner's write: ``request("set", ssid="home")``."""
    if kind not in COMMANDS:
        raise ValueError(f"unknown Inject command {kind!r}")
    return encode({"t": kind, **fields})


# --- the device's answers -------------------------------------------------------------------


def error(msg: str) -> dict[str, Any]:
    return {"t": "error", "msg": msg}


def simple(kind: str) -> dict[str, Any]:
    """``set_ok``, ``set_fail``, ``connecting``, ``reset_ok``, ``ifs_start`` ..."""
    return {"t": kind}


def info(
    *, vendor: str, tmpl_id: str, fw_type: str, fw_ver: str, name: str, uid: str, code: bool = False
) -> dict[str, Any]:
    """``code``: the device requires its out-of-band code (our extension: ``caps`` says
    ``oob_code``)."""
    return {
        "t": "info",
        "vendor": vendor,
        "tmpl_id": tmpl_id,
        "fw_type": fw_type,
        "fw_ver": fw_ver,
        "name": name,
        "uid": uid,
        "caps": ["live_status", "oob_code"] if code else ["live_status"],
    }


def interface(name: str, mac: str, ready: bool, *, scan: bool = False) -> dict[str, Any]:
    """One ``if``: ``wifi`` (with ``scan``) or ``eth``; ``ready`` means it is online already."""
    item: dict[str, Any] = {
        "t": "if",
        "name": name,
        "mac": mac,
        "status": "ready" if ready else "unavailable",
        "static_ip": 1,
    }
    if scan:
        item["scan"] = 1
    return item


def scan_entries(entries: Iterable[edgent.ScanEntry]) -> list[dict[str, Any]]:
    """The ``scan`` messages: hidden and weaker than -90 dBm dropped, the strongest BSS per SSID,
    strongest first, at most 30. ``sec`` is the scan's security string."""
    best: dict[bytes, edgent.ScanEntry] = {}
    for e in entries:
        if e.hidden or not e.ssid or e.rssi < SCAN_FLOOR:
            continue
        kept = best.get(e.ssid)
        if kept is None or e.rssi > kept.rssi:
            best[e.ssid] = e
    ordered = sorted(best.values(), key=lambda e: -e.rssi)[:SCAN_LIMIT]
    return [
        {
            "t": "scan",
            "ssid": e.ssid.decode("utf-8", "replace"),
            "bssid": e.bssid,
            "rssi": e.rssi,
            "sec": e.security,
            "ch": e.channel,
        }
        for e in ordered
    ]


def status(s: str) -> dict[str, Any]:
    """``connecting_net``, ``connecting_cloud`` or ``connected``."""
    return {"t": "status", "s": s}


def net_status(*, ssid: str, bssid: str, ip: str, rssi: int, state: str) -> dict[str, Any]:
    return {
        "t": "net_status",
        "if": "wifi",
        "state": state,
        "ssid": ssid,
        "bssid": bssid,
        "ip": ip,
        "rssi": rssi,
    }


def connect_fail(msg: str = CONFIGURATION_INVALID, detail: str = "") -> dict[str, Any]:
    """The refusal of a ``connect``; ``detail`` (our extension) says which field and why."""
    reply: dict[str, Any] = {"t": "connect_fail", "msg": msg}
    if detail:
        reply["detail"] = detail
    return reply


# --- failures: our last_error codes in Blynk's reason words ----------------------------------

# code -> (message type, reason). A network step's failure is net_fail, the cloud's cloud_fail.
FAILURES: dict[int, tuple[str, str]] = {
    E.CONFIG_INVALID: ("net_fail", "generic"),  # a static address that cannot work
    E.NETWORK_TIMEOUT: ("net_fail", "timeout"),
    E.NETWORK_OTHER: ("net_fail", "generic"),
    E.NETWORK_NOT_FOUND: ("net_fail", "not_found"),
    E.NO_CABLE: ("net_fail", "no_cable"),
    E.AUTH_FAILED: ("net_fail", "invalid_credentials"),
    E.NO_ADDRESS: ("net_fail", "no_ip_assigned"),
    E.SIM_MISSING: ("net_fail", "sim_missing"),
    E.SIM_LOCKED: ("net_fail", "sim_locked"),
    E.SIM_WRONG_PIN: ("net_fail", "sim_wrong_pin"),
    E.CLOUD_TIMEOUT: ("cloud_fail", "timeout"),
    E.TOKEN_REJECTED: ("cloud_fail", "auth_failed"),
    E.CLOUD_OTHER: ("cloud_fail", "generic"),
    E.DNS_FAILED: ("cloud_fail", "dns_failed"),
    E.TLS_REJECTED: ("cloud_fail", "invalid_certificate"),
    E.CAPTIVE_PORTAL: ("cloud_fail", "captive_portal"),
}


def failure(code: int) -> dict[str, Any]:
    """The message for an attempt that failed with ``last_error`` ``code`` (our extension:
    ``code`` rides along, so a provisioner can explain it in our words). An unknown code is a
    ``connect_fail`` with reason ``generic``."""
    kind, reason = FAILURES.get(code, ("connect_fail", "generic"))
    return {"t": kind, "reason": reason, "code": code}


# Blynk reason words -> our codes (a provisioner reading a device that sends no ``code``).
REASON_CODES: dict[tuple[str, str], int] = {
    (kind, reason): code
    for code, (kind, reason) in sorted(FAILURES.items(), reverse=True)
    if code != E.CONFIG_INVALID
}


def failure_code(message: Mapping[str, Any]) -> int:
    """Our code for a ``net_fail`` / ``cloud_fail`` / ``connect_fail`` from any device."""
    code = message.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code > 0:
        return code
    kind, reason = str(message.get("t")), str(message.get("reason", ""))
    found = REASON_CODES.get((kind, reason))
    if found is not None:
        return found
    if kind == "net_fail":
        return E.NETWORK_OTHER if reason != "timeout" else E.NETWORK_TIMEOUT
    if kind == "cloud_fail":
        return E.CLOUD_OTHER
    return E.CONFIG_INVALID


# --- set and connect --------------------------------------------------------------------------


def _text(name: str, value: Any) -> str | None:
    """A set value as text (the app sends strings; ``save`` may be a number or a bool); None
    when it cannot be one."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


@dataclass
class Pending:
    """The fields of the ``set`` messages received since the last ``connect`` or ``reset``."""

    values: dict[str, str] = field(default_factory=dict)

    def set(self, fields: Mapping[str, Any]) -> str | None:
        """Take a ``set``: None when taken (``set_ok``), else why not (``set_fail``; nothing is
        taken then): an unknown key, or a value that is not text."""
        unknown = sorted(set(fields) - SET_KEYS - EXTENSION_SET_KEYS)
        if unknown:
            return f"unknown key(s): {', '.join(unknown)}"
        taken: dict[str, str] = {}
        for name, value in fields.items():
            text = _text(name, value)
            if text is None:
                return f"{name}: must be a string"
            taken[name] = text
        self.values.update(taken)
        return None

    def reset(self) -> None:
        """``reset``: forget the network fields (the token and host stay, as in Blynk's)."""
        for name in NETWORK_KEYS:
            self.values.pop(name, None)

    @property
    def token(self) -> str:
        return self.values.get("blynk", "")

    def config(self, defaults: edgent.ConfigDefaults) -> edgent.DeviceConfig:
        """The configuration to try, with exactly the portal's checks (``parse_config_query``).
        Raises ``edgent.ConfigError``; a token that is not 32 characters is refused first."""
        if len(self.token) != edgent.TOKEN_LENGTH:
            raise edgent.ConfigError(
                "blynk", f"must be {edgent.TOKEN_LENGTH} characters long (got {len(self.token)})"
            )
        parts = [
            name.encode() + b"=" + edgent.quote(value.encode("utf-8", "surrogatepass"))
            for name, value in self.values.items()
            if name in edgent.PARAMS
        ]
        return edgent.parse_config_query(b"&".join(parts), defaults)
