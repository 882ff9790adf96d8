"""Unit tests for wifiprov.device.console: every command, Edgent's texts, bad and unknown input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wifiprov.device.console import (
    HELP,
    NOT_FOUND,
    ConfigErase,
    ConfigStart,
    ConfigStop,
    Connect,
    DeviceFacts,
    Reboot,
    Reply,
    Scan,
    format_scan,
    handle,
    split,
    unescape,
    uptime,
)
from wifiprov.wire.edgent import ScanEntry

TOKEN = "abcdefghijklmnopqrstuvwxyz012345"

FACTS = DeviceFacts(
    name="Blynk Thermostat-W8FH",
    template_name="Thermostat",
    template_id="TMPL12345678",
    fw_type="TMPL12345678",
    fw_version="0.1.0",
    build="wifiprov 0.5.0",
    platform="Raspberry Pi 4 Model B Rev 1.4",
    sdk="wifiprov 0.5.0, Python 3.11.2",
    uid="0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b",
    station_mac="24:6f:28:aa:bb:cc",
    ap_mac="26:6f:28:aa:bb:cc",
    state="RUNNING",
    ssid="Home WiFi",
    bssid="10:20:30:40:50:60",
    rssi=-54,
    ip="192.168.1.23",
    uptime=93784.9,  # 1d 2h 3m 4s
)


def test_reboot() -> None:
    assert handle("reboot", FACTS) == Reply(
        '{"status":"OK","msg":"rebooting wifi module"}', Reboot()
    )
    assert handle("REBOOT now", FACTS).action == Reboot()  # name without case; extra words ignored


def test_config() -> None:
    start = Reply('{"status":"OK","msg":"entering configuration mode"}', ConfigStart())
    assert handle("config start", FACTS) == start
    assert handle("config", FACTS) == start  # no sub-command means start, as in Edgent
    assert handle("  config\tstart\r\n", FACTS) == start
    assert handle("config stop", FACTS) == Reply(
        '{"status":"OK","msg":"leaving configuration mode"}', ConfigStop()
    )
    assert handle("config erase", FACTS) == Reply(
        '{"status":"OK","msg":"config erased"}', ConfigErase()
    )
    for line in ("config START", "config reset", "config x y"):
        assert handle(line, FACTS) == Reply("Available commands: start, stop, erase")


def test_devinfo_is_edgents_json_field_for_field() -> None:
    reply = handle("devinfo", FACTS)
    assert reply == Reply(
        '{"name":"Blynk Thermostat-W8FH","board":"Thermostat","tmpl_id":"TMPL12345678",'
        '"fw_type":"TMPL12345678","fw_ver":"0.1.0"}'
    )
    odd = DeviceFacts(**{**FACTS.__dict__, "template_name": 'A "quoted"\\ name'})
    assert json.loads(handle("devinfo", odd).text)["board"] == 'A "quoted"\\ name'  # valid JSON


def test_connect() -> None:
    ok = '{"status":"OK","msg":"trying to connect..."}'
    assert handle(f"connect {TOKEN} HomeWiFi secret", FACTS) == Reply(
        ok, Connect(TOKEN, "HomeWiFi", "secret")
    )
    assert handle(f"connect {TOKEN} OpenNet", FACTS) == Reply(ok, Connect(TOKEN, "OpenNet", ""))
    # BlynkConsole's escapes carry spaces and the like: \x20 is a space.
    assert handle(f"connect {TOKEN} Home\\x20WiFi pass\\x20word", FACTS).action == Connect(
        TOKEN, "Home WiFi", "pass word"
    )
    usage = Reply('{"status":"error","msg":"invalid arguments. expected: <auth> <ssid> <pass>"}')
    assert handle("connect", FACTS) == usage
    assert handle(f"connect {TOKEN}", FACTS) == usage  # arguments are checked before the token
    size = Reply('{"status":"error","msg":"invalid token size"}')
    assert handle("connect short HomeWiFi pass", FACTS) == size
    assert handle(f"connect {TOKEN}x HomeWiFi pass", FACTS) == size


def test_connect_never_shows_its_secrets() -> None:
    action = handle(f"connect {TOKEN} HomeWiFi hunter2", FACTS).action
    assert TOKEN not in repr(action) and "hunter2" not in repr(action)
    assert "HomeWiFi" in repr(action)


def test_wifi_show() -> None:
    line = "mac:24:6F:28:AA:BB:CC ip:192.168.1.23 (Home WiFi [10:20:30:40:50:60] -54dBm)"
    assert handle("wifi show", FACTS) == Reply(line)
    assert handle("wifi", FACTS) == Reply(line)
    offline = DeviceFacts(**{**FACTS.__dict__, "ssid": "", "bssid": "", "rssi": 0, "ip": "0.0.0.0"})
    assert handle("wifi", offline).text == "mac:24:6F:28:AA:BB:CC ip:0.0.0.0 ( [] 0dBm)"
    assert handle("wifi off", FACTS) == Reply("Available commands: show, scan")


def test_wifi_scan_asks_the_agent_to_scan_then_formats_the_result() -> None:
    assert handle("wifi scan", FACTS) == Reply("", Scan())
    entries = [
        ScanEntry(b"Home WiFi", "10:20:30:40:50:60", -54, "WPA2", 6),
        ScanEntry(b"Cafe", "aa:bb:cc:dd:ee:01", -71, "OPEN", 11),
        ScanEntry(b"Line\nbreak", "aa:bb:cc:dd:ee:02", -80, "WPA+WPA2", 1),
    ]
    assert format_scan(entries, "Home WiFi") == "\n".join(
        [
            "* Home WiFi [10:20:30:40:50:60] WPA2 ch:6 rssi:-54",
            "  Cafe [AA:BB:CC:DD:EE:01] OPEN ch:11 rssi:-71",
            "  Line\\x0abreak [AA:BB:CC:DD:EE:02] WPA+WPA2 ch:1 rssi:-80",  # one line each
        ]
    )
    assert not format_scan(entries).startswith("*")  # not connected: no mark
    assert format_scan([]) == "No networks"


def test_firmware() -> None:
    info = "\n".join(
        [
            " Version:   0.1.0 (build wifiprov 0.5.0)",
            " Type:      TMPL12345678",
            " Platform:  Raspberry Pi 4 Model B Rev 1.4",
            " SDK:       wifiprov 0.5.0, Python 3.11.2",
        ]
    )
    assert handle("firmware info", FACTS) == Reply(info)
    assert handle("firmware", FACTS) == Reply(info)
    assert handle("firmware rollback", FACTS) == Reply('{"status":"error"}')
    assert handle("firmware update", FACTS) == Reply("Available commands: info, rollback")


def test_status() -> None:
    assert handle("status", FACTS) == Reply(
        "\n".join(
            [
                " Uptime:          1d 2h 3m 4s",
                " State:           RUNNING",
                " Network:         Home WiFi (192.168.1.23)",
                " Last error:      0",
                " UID:             0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b",
            ]
        )
    )
    waiting = DeviceFacts(
        **{**FACTS.__dict__, "state": "WAIT_CONFIG", "ssid": "", "last_error": 722}
    )
    text = handle("status", waiting).text
    assert " Network:         not connected" in text
    assert " Last error:      722 (" in text


def test_uptime() -> None:
    assert uptime(0) == "0d 0h 0m 0s"
    assert uptime(59.9) == "0d 0h 0m 59s"
    assert uptime(3600 * 25 + 61) == "1d 1h 1m 1s"
    assert uptime(-5) == "0d 0h 0m 0s"


@pytest.mark.parametrize(
    "line", ["", "   ", "\n", "hello", "rebootx", "wifi_scan", "ls /", "\\x00"]
)
def test_an_unknown_or_empty_command_is_answered(line: str) -> None:
    assert handle(line, FACTS) == Reply(NOT_FOUND)
    assert NOT_FOUND == "Command not found."  # BlynkConsole's words


def test_help() -> None:
    expected = (
        "Available commands: help, ?, reboot, config, devinfo, connect, wifi, firmware, status"
    )
    assert HELP == expected
    assert handle("help", FACTS) == Reply(expected)
    assert handle("?", FACTS) == Reply(expected)


def test_splitting_and_escapes_follow_blynkconsole() -> None:
    assert split(" a\tb\r\nc  ") == ["a", "b", "c"]
    assert split(" ".join(str(i) for i in range(30))) == [str(i) for i in range(16)]
    assert unescape(r"a\x20b") == "a b"
    assert unescape(r"a\\b") == "a\\b"
    assert unescape(r"\q") == "q"
    assert unescape(r"tab\there") == "tab\there"
    assert unescape(r"\x4gh") == "\x04h"  # strtol of "4g"; both characters consumed
    assert unescape(r"ab\0cd") == "ab"  # a C string ends at its NUL
    assert unescape("trailing\\") == "trailing\\"


@given(st.text(max_size=300))
def test_any_line_gets_a_reply(line: str) -> None:
    reply = handle(line, FACTS)
    assert reply.text or reply.action == Scan()
    assert "\0" not in reply.text
