"""``/config`` on a device with no configured cloud host, and Ethernet in board info."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from wifiprov.wire.edgent import (
    NO_HOST,
    BoardInfo,
    ConfigDefaults,
    ConfigError,
    board_info_json,
    config_invalid,
    parse_config_query,
)

TOKEN = b"0123456789abcdefABCDEF_-ghijklmn"
NO_DEFAULT = ConfigDefaults(host="", port=80, port_ssl=443)


@pytest.mark.parametrize("host", [b"", b"&host=", b"&host=&port=8442"])
def test_without_a_configured_host_the_query_must_name_one(host: bytes) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_query(b"ssid=Home&pass=password1&blynk=" + TOKEN + host, NO_DEFAULT)
    err = caught.value
    assert err.param == "host" and err.reason == NO_HOST
    assert "no cloud server configured" in err.reason and "host name" in err.reason
    assert json.loads(config_invalid(str(err)))["detail"] == f"host: {NO_HOST}"


def test_the_query_host_is_used_when_there_is_no_default() -> None:
    query = b"ssid=Home&blynk=" + TOKEN + b"&host=cloud.example.com"
    cfg = parse_config_query(query, NO_DEFAULT)
    assert (cfg.host, cfg.port, cfg.port_ssl) == ("cloud.example.com", 80, 443)


def test_other_problems_are_still_named_first() -> None:
    # The SSID and the token are checked before the host, as before.
    with pytest.raises(ConfigError) as caught:
        parse_config_query(b"blynk=" + TOKEN, NO_DEFAULT)
    assert caught.value.param == "ssid"
    with pytest.raises(ConfigError) as caught:
        parse_config_query(b"ssid=Home&blynk=short", NO_DEFAULT)
    assert caught.value.param == "blynk"


def test_a_configured_default_still_fills_an_empty_host() -> None:
    defaults = ConfigDefaults(host="cloud.local", port=8442, port_ssl=8441)
    assert parse_config_query(b"ssid=Home&blynk=" + TOKEN + b"&host=", defaults).host == (
        "cloud.local"
    )


BOARD = BoardInfo(
    board="Lamp",
    tmpl_id="TMPL1234",
    fw_type="TMPL1234",
    fw_ver="0.1.0",
    ssid="Blynk Lamp-W8FH",
    bssid="26:6f:28:aa:bb:cc",
    mac="24:6f:28:aa:bb:cc",
)
WIFI_IF = b'{"name":"wifi","mac":"24:6f:28:aa:bb:cc","scan":1,"5ghz":0,"static_ip":1}'


def test_board_info_lists_ethernet_with_its_mac() -> None:
    raw = board_info_json(replace(BOARD, eth_mac="dc:a6:32:01:02:03"))  # a Raspberry Pi's
    eth = b'{"name":"eth","mac":"dc:a6:32:01:02:03","static_ip":1}'
    assert b'"ifs":[' + WIFI_IF + b"," + eth + b"]," in raw
    assert json.loads(raw)["mac"] == "24:6f:28:aa:bb:cc"  # the station MAC stays WiFi's


def test_board_info_without_ethernet_lists_wifi_only() -> None:
    assert b'"ifs":[' + WIFI_IF + b"]," in board_info_json(BOARD)


def test_ethernet_follows_the_static_ip_capability() -> None:
    raw = board_info_json(replace(BOARD, eth_mac="dc:a6:32:01:02:03", static_ip=False))
    assert json.loads(raw)["ifs"][1] == {"name": "eth", "mac": "dc:a6:32:01:02:03", "static_ip": 0}
