"""Unit tests for wifiprov.wire.edgent: the SoftAP HTTP API's data (PROTOCOLS.md section 1)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wifiprov.wire.edgent import (
    CONFIGURATION_INVALID,
    CONFIGURATION_RESET,
    CONFIGURATION_SAVED,
    EAP_METHODS,
    INTERFACES,
    MAX_QUERY,
    PARAMS,
    TRYING_TO_CONNECT,
    BoardInfo,
    ConfigDefaults,
    ConfigError,
    DeviceConfig,
    ScanEntry,
    board_info_json,
    check_password,
    config_invalid,
    config_ok,
    encode_config_query,
    parse_config_query,
    quote,
    scan_json,
)

TOKEN = "0123456789abcdefABCDEF_-ghijklmn"  # 32 chars of [-_a-zA-Z0-9]
DEFAULTS = ConfigDefaults(host="blynk.cloud", port=80, port_ssl=None)
T = TOKEN.encode()


def parse(query: bytes, defaults: ConfigDefaults = DEFAULTS) -> DeviceConfig:
    return parse_config_query(query, defaults)


def assert_error(query: bytes, param: str, defaults: ConfigDefaults = DEFAULTS) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(query, defaults)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.param == param
    assert str(err) == f"{param}: {err.reason}"
    # a readable sentence: "<param> <reason>" reads as English, no reprs or escapes
    assert err.reason.isascii() and err.reason.isprintable()
    assert err.reason[0].islower() and len(err.reason.split()) >= 3
    assert "\\x" not in err.reason and "b'" not in err.reason
    return err


# --- replies -------------------------------------------------------------------------------------


def test_replies_are_edgents_bytes() -> None:
    assert TRYING_TO_CONNECT == b'{"status":"ok","msg":"Trying to connect..."}'
    assert CONFIGURATION_SAVED == b'{"status":"ok","msg":"Configuration saved"}'
    assert CONFIGURATION_RESET == b'{"status":"ok","msg":"Configuration reset"}'
    assert CONFIGURATION_INVALID == b'{"status":"error","msg":"Configuration invalid"}'
    assert config_ok(save=False) == TRYING_TO_CONNECT
    assert config_ok(save=True) == CONFIGURATION_SAVED


def test_config_invalid_with_detail() -> None:
    err = ConfigError("ssid", "must name the WiFi network (1 to 32 bytes)")
    body = config_invalid(str(err))
    assert body == (
        b'{"status":"error","msg":"Configuration invalid",'
        b'"detail":"ssid: must name the WiFi network (1 to 32 bytes)"}'
    )
    assert config_invalid("") == CONFIGURATION_INVALID


@given(st.text())
def test_config_invalid_is_json_whatever_the_detail(detail: str) -> None:
    doc = json.loads(config_invalid(detail))
    assert doc["status"] == "error" and doc["msg"] == "Configuration invalid"
    if detail:
        assert doc["detail"] == detail


# --- /wifi_scan.json -----------------------------------------------------------------------------


def entry(ssid: bytes = b"Home", rssi: int = -50, **kw: Any) -> ScanEntry:
    fields: dict[str, Any] = {"bssid": "aa:bb:cc:dd:ee:ff", "security": "WPA2", "channel": 6}
    fields.update(kw)
    return ScanEntry(ssid=ssid, rssi=rssi, **fields)


def test_empty_scan() -> None:
    assert scan_json([]) == b"[]"


def test_scan_entry_format() -> None:
    assert scan_json([entry()]) == (
        b'[{"ssid":"Home","bssid":"aa:bb:cc:dd:ee:ff","rssi":-50,"sec":"WPA2","ch":6}]'
    )
    hidden = json.loads(scan_json([entry(b"", hidden=True)]))[0]
    assert hidden == {
        "ssid": "",
        "bssid": "aa:bb:cc:dd:ee:ff",
        "rssi": -50,
        "sec": "WPA2",
        "ch": 6,
        "hidden": True,
    }


def test_scan_sorted_strongest_first_and_limited() -> None:
    entries = [entry(f"n{i}".encode(), rssi=-90 + (i * 7) % 60) for i in range(20)]
    doc = json.loads(scan_json(entries))
    assert len(doc) == 15
    rssis = [e["rssi"] for e in doc]
    assert rssis == sorted(rssis, reverse=True)
    assert rssis == sorted((e.rssi for e in entries), reverse=True)[:15]
    assert len(json.loads(scan_json(entries, limit=3))) == 3
    assert json.loads(scan_json(entries, limit=0)) == []


def test_scan_equal_rssi_keeps_order() -> None:
    doc = json.loads(scan_json([entry(b"a", -60), entry(b"b", -40), entry(b"c", -60)]))
    assert [e["ssid"] for e in doc] == ["b", "a", "c"]


def test_scan_non_utf8_ssid_carries_hex() -> None:
    doc = json.loads(scan_json([entry(b"caf\xe9 \xff\xfe")]))[0]
    assert doc["ssid"] == "caf\ufffd \ufffd\ufffd"
    assert doc["ssid_hex"] == "caf\xe9 \xff\xfe".encode("latin-1").hex() == "636166e920fffe"
    assert bytes.fromhex(doc["ssid_hex"]) == b"caf\xe9 \xff\xfe"


def test_scan_hostile_but_valid_utf8_ssid() -> None:
    ssid = 'a"b\\c\x00\x01\n\t</script>é😀'.encode()
    raw = scan_json([entry(ssid)])
    doc = json.loads(raw)[0]
    assert doc["ssid"].encode() == ssid
    assert "ssid_hex" not in doc


@given(st.lists(st.binary(max_size=32), max_size=20), st.integers(-100, 0))
def test_scan_is_json_whatever_the_bytes(ssids: list[bytes], rssi: int) -> None:
    raw = scan_json([entry(s, rssi) for s in ssids])
    raw.decode("utf-8")  # valid UTF-8
    doc = json.loads(raw)
    assert len(doc) == min(len(ssids), 15)
    for item, ssid in zip(doc, ssids, strict=False):  # equal RSSIs: input order
        if "ssid_hex" in item:
            assert bytes.fromhex(item["ssid_hex"]) == ssid
            assert item["ssid"] == ssid.decode("utf-8", "replace")
        else:
            assert item["ssid"].encode() == ssid


def test_scan_every_byte_value() -> None:
    entries = [entry(bytes(range(i, i + 32)), -i) for i in range(0, 256, 32)]
    for item, e in zip(json.loads(scan_json(entries)), entries, strict=True):
        got = bytes.fromhex(item["ssid_hex"]) if "ssid_hex" in item else item["ssid"].encode()
        assert got == e.ssid


# --- /board_info.json ----------------------------------------------------------------------------

CLASSIC_FORMAT = (
    '{"board":"%s","tmpl_id":"%s","fw_type":"%s","fw_ver":"%s","ssid":"%s","bssid":"%s",'
    '"mac":"%s","last_error":%d,"wifi_scan":true,"static_ip":true'
)


def info(**kw: Any) -> BoardInfo:
    fields: dict[str, Any] = {
        "board": "Lamp",
        "tmpl_id": "TMPL1234",
        "fw_type": "TMPL1234",
        "fw_ver": "0.1.0",
        "ssid": "Blynk Lamp-W8FH",
        "bssid": "26:6f:28:aa:bb:cc",
        "mac": "24:6f:28:aa:bb:cc",
    }
    fields.update(kw)
    return BoardInfo(**fields)


def test_board_info_starts_as_classic_edgent() -> None:
    raw = board_info_json(info(last_error=703))
    classic = CLASSIC_FORMAT % (
        "Lamp",
        "TMPL1234",
        "TMPL1234",
        "0.1.0",
        "Blynk Lamp-W8FH",
        "26:6f:28:aa:bb:cc",
        "24:6f:28:aa:bb:cc",
        703,
    )
    assert raw.startswith(classic.encode() + b",")


def test_board_info_keys() -> None:
    doc = json.loads(board_info_json(info(uid="u-1", five_ghz=True, ap_sta=True, vendor="ACME")))
    classic = "board tmpl_id fw_type fw_ver ssid bssid mac last_error wifi_scan static_ip".split()
    assert list(doc)[:10] == classic
    assert doc["vendor"] == "ACME" and doc["name"] == "Blynk Lamp-W8FH" and doc["uid"] == "u-1"
    assert doc["ifs"] == [
        {"name": "wifi", "mac": "24:6f:28:aa:bb:cc", "scan": 1, "5ghz": 1, "static_ip": 1}
    ]
    assert doc["ap_sta"] is True and doc["scan_cached"] is False
    assert doc["wifi_scan"] is True and doc["static_ip"] is True and doc["last_error"] == 0
    cached = json.loads(board_info_json(info(scan_cached=True)))
    assert cached["scan_cached"] is True and list(cached)[-2:] == ["ap_sta", "scan_cached"]


def test_board_info_flags() -> None:
    doc = json.loads(board_info_json(info(static_ip=False, wifi_scan=False)))
    assert doc["static_ip"] is False and doc["wifi_scan"] is False and doc["ap_sta"] is False
    assert doc["ifs"][0]["scan"] == 0 and doc["ifs"][0]["static_ip"] == 0
    assert doc["ifs"][0]["5ghz"] == 0


@pytest.mark.parametrize(
    "name",
    ['My "Lamp"', "back\\slash", "ctl\x00\x01\x1f\x7f\n", "</script><b>", "ünï 😀", '",\\"x":1'],
)
def test_board_info_hostile_names(name: str) -> None:
    doc = json.loads(board_info_json(info(board=name, ssid=name, tmpl_id=name, vendor=name)))
    assert doc["board"] == doc["ssid"] == doc["tmpl_id"] == doc["name"] == doc["vendor"] == name


@given(st.text(), st.text())
def test_board_info_is_json_whatever_the_names(board: str, ssid: str) -> None:
    raw = board_info_json(info(board=board, ssid=ssid + "\ud800"))  # even a lone surrogate
    raw.decode("utf-8")
    doc = json.loads(raw)
    assert doc["board"] == board and doc["ssid"] == ssid + "?"


# --- /config: accepted ---------------------------------------------------------------------------


def test_classic_parameters() -> None:
    q = b"ssid=Home&pass=secret123&blynk=" + T + b"&host=example.org&port_ssl=8441&save=1"
    assert parse(q) == DeviceConfig(
        ssid=b"Home",
        password="secret123",
        token=TOKEN,
        host="example.org",
        port=80,
        port_ssl=8441,
        interface="wifi",
        save=True,
    )


def test_app_sends_port_and_port_ssl() -> None:
    q = b"ssid=Home&pass=&blynk=" + T + b"&host=&port=8442&port_ssl=8441"
    cfg = parse(q)
    assert (cfg.host, cfg.port, cfg.port_ssl, cfg.password, cfg.save) == (
        "blynk.cloud",
        8442,
        8441,
        "",
        False,
    )


def test_newer_parameters() -> None:
    q = b"if=wifi&ssid=Home&pass=secret123&blynk=" + T + b"&host=example.org&save=true"
    cfg = parse(q)
    assert cfg.interface == "wifi" and cfg.save and cfg.port == 80 and cfg.port_ssl is None


def test_pre_2019_example() -> None:  # open-plaato-keg's documented query
    q = b"ssid=My+Wifi&pass=my_password&blynk=00000000000000000000000000000001"
    cfg = parse(q + b"&host=192.168.0.123&port=1234")
    assert (cfg.ssid, cfg.password, cfg.host, cfg.port) == (
        b"My Wifi",
        "my_password",
        "192.168.0.123",
        1234,
    )


def test_defaults_fill_empty_host_and_ports() -> None:
    defaults = ConfigDefaults(host="cloud.local", port=8442, port_ssl=8441)
    cfg = parse(b"ssid=x&blynk=" + T + b"&host=&port=&port_ssl=", defaults)
    assert (cfg.host, cfg.port, cfg.port_ssl) == ("cloud.local", 8442, 8441)
    cfg = parse(b"ssid=x&blynk=" + T, defaults)
    assert (cfg.host, cfg.port, cfg.port_ssl) == ("cloud.local", 8442, 8441)


def test_ssid_sources() -> None:
    base = b"blynk=" + T
    assert parse(base + b"&ssid=Scanned&ssidManual=Typed").ssid == b"Typed"
    assert parse(base + b"&ssid=Scanned&ssidManual=").ssid == b"Scanned"
    assert parse(base + b"&ssidManual=Hidden").ssid == b"Hidden"
    both = base + b"&ssid=Scanned&ssidManual=Typed&ssid_hex=00ff41"
    assert parse(both).ssid == b"\x00\xffA"
    assert parse(base + b"&ssid=x&ssid_hex=").ssid == b"x"
    assert parse(base + b"&ssid_hex=" + b"AB" * 32).ssid == b"\xab" * 32


def test_plus_is_space_and_percent_2b_is_plus() -> None:
    cfg = parse(b"ssid=a+b%2Bc&pass=p+w%2bd%20x&blynk=" + T)
    assert cfg.ssid == b"a b+c" and cfg.password == "p w+d x"


@pytest.mark.parametrize("start", range(0, 256, 32))
def test_percent_encoded_ssid_bytes(start: int) -> None:
    ssid = bytes(range(start, start + 32))
    upper = b"".join(b"%%%02X" % b for b in ssid)
    assert parse(b"ssid=" + upper + b"&blynk=" + T).ssid == ssid
    assert parse(b"ssid=" + upper.lower() + b"&blynk=" + T).ssid == ssid


def test_every_single_byte_ssid() -> None:
    for b in range(256):
        assert parse(b"ssid=%%%02x&blynk=" % b + T).ssid == bytes([b])


def test_utf8_password_and_raw_bytes() -> None:
    cfg = parse(b"ssid=caf\xc3\xa9&pass=%C3%BC%E2%82%AC&blynk=" + T)
    assert cfg.ssid == "café".encode() and cfg.password == "ü€"


def test_static_ip() -> None:
    q = b"ssid=x&blynk=" + T + b"&ip=192.168.1.20&mask=255.255.255.0&gw=192.168.1.1&dns=1.1.1.1"
    cfg = parse(q)
    assert cfg.static_ip
    assert (cfg.ip, cfg.mask, cfg.gw, cfg.dns, cfg.dns2) == (
        "192.168.1.20",
        "255.255.255.0",
        "192.168.1.1",
        "1.1.1.1",
        None,
    )


def test_no_ip_means_dhcp() -> None:
    q = b"ssid=x&blynk=" + T + b"&ip=&mask=255.255.255.0&gw=192.168.1.1&dns=&dns2="
    cfg = parse(q)
    assert not cfg.static_ip
    assert (cfg.ip, cfg.mask, cfg.gw, cfg.dns, cfg.dns2) == (None,) * 5


@pytest.mark.parametrize("interface", ["eth", "cell"])
def test_other_interfaces_need_no_ssid(interface: str) -> None:
    cfg = parse(b"if=" + interface.encode() + b"&blynk=" + T)
    assert cfg.interface == interface and cfg.ssid == b""


def test_empty_interface_is_wifi() -> None:
    assert parse(b"if=&ssid=x&blynk=" + T).interface == "wifi"


@pytest.mark.parametrize(
    ("value", "save"),
    [(b"1", True), (b"true", True), (b"TRUE", True), (b"True", True), (b"0", False),
     (b"", False), (b"false", False), (b"yes", False)],
)  # fmt: skip
def test_save(value: bytes, save: bool) -> None:
    assert parse(b"ssid=x&blynk=" + T + b"&save=" + value).save is save


def test_enterprise() -> None:
    cfg = parse(b"ssid=corp&pass=pw&identity=alice%40corp.example&eap=peap&blynk=" + T)
    assert (cfg.identity, cfg.eap) == ("alice@corp.example", "peap")


def test_unknown_and_empty_parameters_are_ignored() -> None:
    cfg = parse(b"&ssid=x&&blynk=" + T + b"&utm=1&utm=2&flag&%ff=1&")
    assert cfg.ssid == b"x"


def test_query_of_exactly_the_limit() -> None:
    q = b"ssid=x&blynk=" + T + b"&pad="
    q += b"p" * (MAX_QUERY - len(q))
    assert len(q) == MAX_QUERY
    assert parse(q).ssid == b"x"


# --- /config: rejected ---------------------------------------------------------------------------

OK = b"ssid=Home&blynk=" + T


@pytest.mark.parametrize(
    ("query", "param"),
    [
        # SSID
        (b"blynk=" + T, "ssid"),
        (b"ssid=&blynk=" + T, "ssid"),
        (b"ssid=&ssidManual=&blynk=" + T, "ssid"),
        (b"ssid=" + b"s" * 33 + b"&blynk=" + T, "ssid"),
        (b"ssid=" + b"%C3%A9" * 17 + b"&blynk=" + T, "ssid"),  # 17 characters, 34 bytes
        (b"ssid=x&ssidManual=" + b"m" * 33 + b"&blynk=" + T, "ssidManual"),
        (b"ssid=x&ssid_hex=" + b"41" * 33 + b"&blynk=" + T, "ssid_hex"),
        (b"ssid=x&ssid_hex=414&blynk=" + T, "ssid_hex"),
        (b"ssid=x&ssid_hex=zz&blynk=" + T, "ssid_hex"),
        (b"ssid=x&ssid_hex=41%2041&blynk=" + T, "ssid_hex"),
        (b"if=eth&ssid=" + b"s" * 33 + b"&blynk=" + T, "ssid"),
        # percent-encoding
        (b"ssid=%&blynk=" + T, "ssid"),
        (b"ssid=a%4&blynk=" + T, "ssid"),
        (b"ssid=a%zz&blynk=" + T, "ssid"),
        (OK + b"&pass=50%", "pass"),
        (OK + b"&pass=%G1", "pass"),
        (OK + b"&s%sid=x", "query"),
        # password
        (OK + b"&pass=%FF%FE", "pass"),
        (OK + b"&pass=caf%E9", "pass"),
        # token
        (b"ssid=x", "blynk"),
        (b"ssid=x&blynk=", "blynk"),
        (b"ssid=x&blynk=" + T[:31], "blynk"),
        (b"ssid=x&blynk=" + T + b"x", "blynk"),
        (b"ssid=x&blynk=" + T[:31] + b"!", "blynk"),
        (b"ssid=x&blynk=" + T[:31] + b"+", "blynk"),
        (b"ssid=x&blynk=" + T[:30] + b"%C3%A9", "blynk"),
        (b"ssid=x&blynk=" + T[:31] + b"%FF", "blynk"),
        # host
        (OK + b"&host=a+b", "host"),
        (OK + b"&host=evil%0d%0aX", "host"),
        (OK + b"&host=" + b"h" * 254, "host"),
        (OK + b"&host=%FF", "host"),
        # ports
        (OK + b"&port=0", "port"),
        (OK + b"&port=65536", "port"),
        (OK + b"&port=abc", "port"),
        (OK + b"&port=-1", "port"),
        (OK + b"&port=%2B80", "port"),
        (OK + b"&port=+80", "port"),
        (OK + b"&port=8o", "port"),
        (OK + b"&port=%D9%A1", "port"),  # an Arabic-Indic digit one
        (OK + b"&port_ssl=99999", "port_ssl"),
        (OK + b"&port_ssl=1e3", "port_ssl"),
        # static addressing
        (OK + b"&ip=192.168.1", "ip"),
        (OK + b"&ip=192.168.1.256&mask=255.255.255.0&gw=192.168.1.1", "ip"),
        (OK + b"&ip=::1&mask=255.255.255.0&gw=192.168.1.1", "ip"),
        (OK + b"&ip=host.example", "ip"),
        (OK + b"&ip=192.168.1.20&gw=192.168.1.1", "mask"),
        (OK + b"&ip=192.168.1.20&mask=255.255.255.0", "gw"),
        (OK + b"&ip=192.168.1.20&mask=24&gw=192.168.1.1", "mask"),
        (OK + b"&ip=192.168.1.20&mask=255.0.255.0&gw=192.168.1.1", "mask"),
        (OK + b"&ip=192.168.1.20&mask=0.0.0.0&gw=192.168.1.1", "mask"),
        (OK + b"&ip=192.168.1.20&mask=255.255.255.0&gw=192.168.1.x", "gw"),
        (OK + b"&ip=192.168.1.20&mask=255.255.255.0&gw=192.168.1.1&dns=1.1.1", "dns"),
        (OK + b"&ip=192.168.1.20&mask=255.255.255.0&gw=192.168.1.1&dns2=8.8.8.8.8", "dns2"),
        (OK + b"&mask=255.255.x.0", "mask"),  # checked even when unused
        # repeats
        (OK + b"&ssid=Other", "ssid"),
        (OK + b"&pass=a&pass=b", "pass"),
        (OK + b"&pass=a&pass=a", "pass"),
        (OK + b"&blynk=" + T, "blynk"),
        (OK + b"&save=1&save=1", "save"),
        (OK + b"&ssidManual=a&ssidManual=", "ssidManual"),
        (OK + b"&%73sid=Home", "ssid"),  # the same name, percent-encoded
        # interface
        (OK + b"&if=wlan", "if"),
        (OK + b"&if=WIFI", "if"),
        (b"if=wifi&blynk=" + T, "ssid"),
        # enterprise
        (OK + b"&eap=tls&identity=a", "eap"),
        (OK + b"&eap=peap", "identity"),
        (OK + b"&identity=alice", "eap"),
        # text that is not UTF-8
        (OK + b"&identity=%FF&eap=peap", "identity"),
        (OK + b"&save=%FF", "save"),
    ],
)
def test_config_errors(query: bytes, param: str) -> None:
    assert_error(query, param)


def test_huge_query_rejected_before_parsing() -> None:
    q = OK + b"&pad=" + b"p" * MAX_QUERY
    assert_error(q, "query")
    assert_error(b"%" * (MAX_QUERY + 1), "query")  # not even decoded


def test_error_is_a_value_error_with_both_parts() -> None:
    err = ConfigError("ssid", "must name the WiFi network (1 to 32 bytes)")
    assert isinstance(err, ValueError)
    assert (err.param, err.reason) == ("ssid", "must name the WiFi network (1 to 32 bytes)")
    assert str(err) == "ssid: must name the WiFi network (1 to 32 bytes)"


# --- /config: properties -------------------------------------------------------------------------

_NAMES = st.sampled_from(sorted(PARAMS)) | st.text(max_size=8)
_VALUES = st.binary(max_size=80) | st.text(max_size=40).map(str.encode)


@given(st.binary(max_size=5000))
def test_any_bytes_give_a_config_or_a_config_error(query: bytes) -> None:
    try:
        assert isinstance(parse(query), DeviceConfig)
    except ConfigError as err:
        assert err.param and err.reason


@given(st.dictionaries(_NAMES, _VALUES, max_size=12), st.booleans(), st.booleans())
def test_any_parameters_give_a_config_or_a_config_error(
    params: dict[str, bytes], encode: bool, with_token: bool
) -> None:
    if with_token:
        params.setdefault("blynk", T)
    parts = [
        (quote(k.encode()) + b"=" + quote(v)) if encode else (k.encode() + b"=" + v)
        for k, v in params.items()
    ]
    try:
        assert isinstance(parse(b"&".join(parts)), DeviceConfig)
    except ConfigError as err:
        assert err.param and err.reason


_IPV4 = st.integers(1, 2**32 - 2).map(lambda n: str(ipaddress.IPv4Address(n)))
_MASK = st.integers(1, 32).map(lambda p: str(ipaddress.IPv4Network(f"0.0.0.0/{p}").netmask))


@st.composite
def configs(draw: st.DrawFn) -> DeviceConfig:
    interface = draw(st.sampled_from(INTERFACES))
    static = draw(st.booleans())
    enterprise = draw(st.booleans())
    return DeviceConfig(
        ssid=draw(st.binary(min_size=1 if interface == "wifi" else 0, max_size=32)),
        password=draw(st.text(max_size=70)),
        token=draw(st.from_regex(r"[-_a-zA-Z0-9]{32}", fullmatch=True)),
        host=draw(st.from_regex(r"[-a-zA-Z0-9.:_é]{1,60}", fullmatch=True)),
        port=draw(st.integers(1, 65535)),
        port_ssl=draw(st.none() | st.integers(1, 65535)),
        interface=interface,
        ip=draw(_IPV4) if static else None,
        mask=draw(_MASK) if static else None,
        gw=draw(_IPV4) if static else None,
        dns=draw(st.none() | _IPV4) if static else None,
        dns2=draw(st.none() | _IPV4) if static else None,
        save=draw(st.booleans()),
        identity=draw(st.text(min_size=1, max_size=30)) if enterprise else None,
        eap=draw(st.sampled_from(EAP_METHODS)) if enterprise else None,
    )


@given(configs())
def test_encoded_config_round_trips(cfg: DeviceConfig) -> None:
    query = encode_config_query(cfg)
    assert len(query) <= MAX_QUERY
    assert parse(query) == cfg


def test_encoded_config_is_plain_query_text() -> None:
    cfg = DeviceConfig(ssid=b"a b&c", password="p=w", token=TOKEN, host="h", port=1)
    query = encode_config_query(cfg)
    assert query == b"if=wifi&ssid=a%20b%26c&pass=p%3Dw&blynk=" + T + b"&host=h&port=1"


# --- passwords -----------------------------------------------------------------------------------

HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("password", "security"),
    [
        ("", "OPEN"),
        ("", "OWE"),
        ("12345678", "WPA2"),
        ("x" * 63, "WPA+WPA2"),
        (HEX64, "WPA3"),
        (HEX64.upper(), "WPA2+WPA3"),
        ("pässwörd", "WPA"),
        ("12345678", "wpa2"),
        ("abcde", "WEP"),
        ("abcdefghijklm", "WEP"),
        ("0123456789", "WEP"),
        ("0123456789abcdef0123456789", "WEP"),
        ("secret", "WPA2-EAP"),
        ("x", "WPA2 ENT"),
        ("", None),
        ("abcde", None),
        ("12345678", "unknown"),
        (HEX64, None),
        ("0123456789", None),
    ],
)
def test_password_accepted(password: str, security: str | None) -> None:
    check_password(password, security)


@pytest.mark.parametrize(
    ("password", "security"),
    [
        ("secret", "OPEN"),
        (" ", "OWE"),
        ("", "WPA2"),
        ("1234567", "WPA2"),
        ("x" * 64, "WPA2"),  # 64 characters must be hex
        ("x" * 65, "WPA"),
        ("ü" * 32, "WPA2"),  # 32 characters, 64 bytes, not hex
        ("", "WEP"),
        ("abcd", "WEP"),
        ("abcdef", "WEP"),
        ("012345678g", "WEP"),
        ("äbcde", "WEP"),  # 5 characters but 6 bytes
        ("", "WPA2-EAP"),
        ("abcd", None),
        ("x" * 64, None),
        ("x" * 65, "unknown"),
    ],
)
def test_password_rejected(password: str, security: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        check_password(password, security)
    assert info.value.param == "pass"
    assert len(info.value.reason.split()) >= 3


def test_a_plain_port_alone_means_plain_tcp_not_the_default_tls_port() -> None:
    defaults = ConfigDefaults(host="cloud.local", port=8442, port_ssl=8441)
    token = "A" * 32
    only_plain = parse_config_query(f"ssid=x&blynk={token}&port=1234".encode(), defaults)
    assert (only_plain.port, only_plain.port_ssl) == (1234, None)
    both = parse_config_query(f"ssid=x&blynk={token}&port=1&port_ssl=2".encode(), defaults)
    assert (both.port, both.port_ssl) == (1, 2)
    neither = parse_config_query(f"ssid=x&blynk={token}&port=&port_ssl=".encode(), defaults)
    assert (neither.port, neither.port_ssl) == (8442, 8441)
