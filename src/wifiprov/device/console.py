"""Edgent's remote console, with no I/O: a command line in, the reply and an action out.

The cloud sends a console command as INTERNAL ``dbg\\0<line>`` (the link hands the line to
``LinkCallbacks.on_console``). ``handle(line, facts)`` returns a ``Reply``: the text to send back
(``CloudLink.send_console_reply``) and the ``Action`` the agent must carry out, if any. For
``wifi scan`` the reply has no text and the action ``Scan``: the agent scans, then sends
``format_scan(entries, current_ssid)``.

Parsing follows the C++ library's ``BlynkConsole``: the line is split at spaces, tabs and line
ends (at most 15 arguments after the command); each word is unescaped (``\\x20`` is a space,
``\\\\`` a backslash, ``\\n`` ...); the command name is matched without regard to case, its
sub-commands exactly. An extra argument is ignored, as there.

Texts are Edgent's, field for field: the classic Edgent console (blynk-library
``examples/Blynk.Edgent/Edgent_ESP32/Console.h``) for ``reboot``, ``connect``, ``devinfo``,
``wifi show|scan``, ``firmware info|rollback`` and ``status``; its 2021-22 releases for the
acknowledgements of ``config`` (``entering configuration mode``) and ``config erase``
(``config erased``), which the current ones print nothing for; Edgent-Arduino
(``src/BlynkEdgentConsole.h``) for ``config stop`` and the "Available commands: ..." answers to
a sub-command it does not know. Where Edgent prints hardware facts a Linux board does not have
(flash size, heap, partitions) the reply has the board's own, under Edgent's layout. Where
Edgent prints nothing (an unknown command sent over ``dbg``, an empty line) the reply is
BlynkConsole's ``Command not found.``: a remote console is never left without an answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from wifiprov.wire.edgent import ScanEntry
from wifiprov.wire.errors import explain

MAX_ARGS = 15  # BlynkConsole splits into at most 16 words, the command included
TOKEN_LENGTH = 32


@dataclass(frozen=True)
class DeviceFacts:
    """What the device knows about itself when a command arrives."""

    name: str  # the device (hotspot) name, "Blynk Thermostat-W8FH"
    template_name: str  # Edgent's BLYNK_TEMPLATE_NAME, shown as "board"
    template_id: str
    fw_type: str
    fw_version: str
    build: str  # Edgent prints its build date here; any build label
    platform: str  # Edgent's BLYNK_INFO_DEVICE ("ESP32"); the board's name
    sdk: str  # Edgent prints the ESP SDK version; the software underneath
    uid: str
    station_mac: str
    ap_mac: str
    state: str  # the agent's state name: "RUNNING", "WAIT_CONFIG" ...
    ssid: str = ""  # the network the station is on; "" when none
    bssid: str = ""
    rssi: int = 0  # dBm; 0 when not connected, as ESP's WiFi.RSSI()
    ip: str = "0.0.0.0"
    last_error: int = 0
    uptime: float = 0.0  # seconds


# --- what the agent must do --------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigStart:
    """Back to provisioning: AP open, waiting for a configuration (Edgent's WAIT_CONFIG)."""


@dataclass(frozen=True)
class ConfigStop:
    """Leave provisioning: connect with the stored configuration, or go idle without one."""


@dataclass(frozen=True)
class ConfigErase:
    """Forget the configuration (Edgent's RESET_CONFIG), then provisioning."""


@dataclass(frozen=True)
class Reboot:
    """Restart the agent (Edgent restarts the board)."""


@dataclass(frozen=True)
class Scan:
    """Scan WiFi networks, then send ``format_scan`` of the result."""


@dataclass(frozen=True)
class Connect:
    """A fresh provisioning from the console: join ``ssid`` and log in with ``token``, the
    default cloud host; as from the portal, it is kept only once it has logged in."""

    token: str = field(repr=False)
    ssid: str
    password: str = field(default="", repr=False)


Action = ConfigStart | ConfigStop | ConfigErase | Reboot | Scan | Connect


@dataclass(frozen=True)
class Reply:
    text: str  # what to send back; no trailing newline; "" only with the Scan action
    action: Action | None = None


# --- the commands ------------------------------------------------------------------------------

NOT_FOUND = "Command not found."
REBOOTING = '{"status":"OK","msg":"rebooting wifi module"}'
CONFIG_STARTED = '{"status":"OK","msg":"entering configuration mode"}'
CONFIG_STOPPED = '{"status":"OK","msg":"leaving configuration mode"}'
CONFIG_ERASED = '{"status":"OK","msg":"config erased"}'
CONNECT_USAGE = '{"status":"error","msg":"invalid arguments. expected: <auth> <ssid> <pass>"}'
CONNECT_TOKEN_SIZE = '{"status":"error","msg":"invalid token size"}'
CONNECTING = '{"status":"OK","msg":"trying to connect..."}'
ROLLBACK_FAILED = '{"status":"error"}'  # classic Edgent when Update.rollBack() fails
COMMANDS = ["reboot", "config", "devinfo", "connect", "wifi", "firmware", "status"]
HELP = "Available commands: " + ", ".join(["help", "?", *COMMANDS])


def handle(line: str, facts: DeviceFacts) -> Reply:
    """The reply to one console command line."""
    words = split(line)
    if not words:
        return Reply(NOT_FOUND)
    name, args = words[0].lower(), words[1:]
    if name in ("help", "?"):
        return Reply(HELP)
    if name == "reboot":
        return Reply(REBOOTING, Reboot())
    if name == "config":
        return _config(args)
    if name == "devinfo":
        return Reply(devinfo(facts))
    if name == "connect":
        return _connect(args)
    if name == "wifi":
        return _wifi(args, facts)
    if name == "firmware":
        return _firmware(args, facts)
    if name == "status":
        return Reply(status(facts))
    return Reply(NOT_FOUND)


def _config(args: list[str]) -> Reply:
    sub = args[0] if args else "start"
    if sub == "start":
        return Reply(CONFIG_STARTED, ConfigStart())
    if sub == "stop":
        return Reply(CONFIG_STOPPED, ConfigStop())
    if sub == "erase":
        return Reply(CONFIG_ERASED, ConfigErase())
    return Reply("Available commands: start, stop, erase")


def _connect(args: list[str]) -> Reply:
    if len(args) < 2:
        return Reply(CONNECT_USAGE)
    token, ssid = args[0], args[1]
    if len(token) != TOKEN_LENGTH:
        return Reply(CONNECT_TOKEN_SIZE)
    return Reply(CONNECTING, Connect(token, ssid, args[2] if len(args) > 2 else ""))


def _wifi(args: list[str], facts: DeviceFacts) -> Reply:
    sub = args[0] if args else "show"
    if sub == "show":
        return Reply(wifi_show(facts))
    if sub == "scan":
        return Reply("", Scan())
    return Reply("Available commands: show, scan")


def _firmware(args: list[str], facts: DeviceFacts) -> Reply:
    sub = args[0] if args else "info"
    if sub == "info":
        return Reply(firmware_info(facts))
    if sub == "rollback":
        return Reply(ROLLBACK_FAILED)  # no previous firmware to go back to
    return Reply("Available commands: info, rollback")


# --- texts -------------------------------------------------------------------------------------


def devinfo(facts: DeviceFacts) -> str:
    return json.dumps(
        {
            "name": facts.name,
            "board": facts.template_name,
            "tmpl_id": facts.template_id,
            "fw_type": facts.fw_type,
            "fw_ver": facts.fw_version,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def wifi_show(facts: DeviceFacts) -> str:
    """``mac:%s ip:%s (%s [%s] %ddBm)``; MACs in capitals, as ESP's WiFi.macAddress()."""
    return (
        f"mac:{facts.station_mac.upper()} ip:{facts.ip} "
        f"({_printable(facts.ssid)} [{facts.bssid.upper()}] {facts.rssi}dBm)"
    )


def format_scan(entries: Iterable[ScanEntry], current_ssid: str = "") -> str:
    """``wifi scan``'s reply: one ``%s %s [%s] %s ch:%d rssi:%d`` line per network, ``*`` on the
    one the station is on (same SSID, as classic Edgent compares); ``No networks`` for none."""
    lines = []
    for e in entries:
        ssid = e.ssid.decode("utf-8", "replace")
        mark = "*" if current_ssid and ssid == current_ssid else " "
        lines.append(
            f"{mark} {_printable(ssid)} [{e.bssid.upper()}] {e.security} "
            f"ch:{e.channel} rssi:{e.rssi}"
        )
    return "\n".join(lines) if lines else "No networks"


def firmware_info(facts: DeviceFacts) -> str:
    return "\n".join(
        [
            f" Version:   {facts.fw_version} (build {facts.build})",
            f" Type:      {facts.fw_type}",
            f" Platform:  {facts.platform}",
            f" SDK:       {facts.sdk}",
        ]
    )


def status(facts: DeviceFacts) -> str:
    """Edgent's ``status`` layout; after its Uptime line, what this device has instead of an
    ESP32's chip and heap figures."""
    network = f"{_printable(facts.ssid)} ({facts.ip})" if facts.ssid else "not connected"
    lines = [
        f" Uptime:          {uptime(facts.uptime)}",
        f" State:           {facts.state}",
        f" Network:         {network}",
        f" Last error:      {facts.last_error}",
    ]
    if facts.last_error:
        lines[-1] += f" ({explain(facts.last_error).what})"
    lines.append(f" UID:             {facts.uid}")
    return "\n".join(lines)


def uptime(seconds: float) -> str:
    """``%dd %dh %dm %ds``, as Edgent's ``status``."""
    t = max(0, int(seconds))
    return f"{t // 86400}d {t % 86400 // 3600}h {t // 60 % 60}m {t % 60}s"


# --- parsing -----------------------------------------------------------------------------------

_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t"}


def split(line: str) -> list[str]:
    """The words of a command line, as BlynkConsole's ``split_argv``: split at `` \\t\\r\\n``,
    at most ``MAX_ARGS + 1`` words (the rest of the line is dropped), each word unescaped."""
    words = line.replace("\t", " ").replace("\r", " ").replace("\n", " ").split(" ")
    return [unescape(w) for w in words if w][: MAX_ARGS + 1]


def unescape(word: str) -> str:
    """BlynkConsole's ``unescape``: ``\\0 \\b \\n \\r \\t``, ``\\xHH``, and ``\\c`` is ``c``;
    the word ends at a NUL, as a C string does."""
    out: list[str] = []
    i = 0
    while i < len(word):
        c = word[i]
        if c != "\\" or i + 1 == len(word):
            out.append(c)
            i += 1
            continue
        nxt = word[i + 1]
        if nxt == "x":  # strtol of the next two characters: their leading hex digits, or 0
            pair = word[i + 2 : i + 4]
            digits = pair[: 2 if _is_hex(pair) else 1 if _is_hex(pair[:1]) else 0]
            out.append(chr(int(digits, 16)) if digits else "\0")
            i += 2 + len(pair)
        else:
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out).split("\0")[0]  # a C string ends at its first NUL


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def _printable(text: str) -> str:
    """``text`` with control characters escaped: one network per line, whatever its name."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
