"""Blynk.Inject BLE messages (wire/inject.py): every message type, bad input, the reason words."""

from __future__ import annotations

import json

import pytest

from wifiprov.wire import edgent, inject
from wifiprov.wire.errors import ProvisioningError as E

TOKEN = "a" * 32
DEFAULTS = edgent.ConfigDefaults(host="cloud.example", port=8080, port_ssl=None)


@pytest.mark.parametrize(
    ("raw", "kind", "fields"),
    [
        (b'{"t":"info"}', "info", {}),
        (b'{"t":"ifs"}', "ifs", {}),
        (b'{"t":"scan"}', "scan", {}),
        (b'{"t":"set","ssid":"home","pass":"pw"}', "set", {"ssid": "home", "pass": "pw"}),
        (b'{"t":"connect"}', "connect", {}),
        (b'{"t":"reset"}', "reset", {}),
        (b'{"t":"reboot"}', "reboot", {}),
        (' {"t":"set","ssid":"café"} '.encode(), "set", {"ssid": "café"}),
    ],
)
def test_parse_every_command(raw: bytes, kind: str, fields: dict[str, str]) -> None:
    req = inject.parse(raw)
    assert (req.kind, dict(req.fields)) == (kind, fields)


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        (b"", "wrong format"),
        (b"{", "wrong format"),
        (b"not json", "wrong format"),
        (b"\xff\xfe", "wrong format"),
        (b'["t","info"]', "wrong format"),
        (b'"info"', "wrong format"),
        (b'{"type":"info"}', "wrong format"),
        (b'{"t":1}', "wrong format"),
        (b"[" * 5000, "wrong format"),
        (b'{"t":"' + b"x" * 5000 + b'"}', "wrong format"),
        (b'{"t":"ota"}', "invalid command"),
        (b'{"t":""}', "invalid command"),
        (b'{"t":"INFO"}', "invalid command"),
    ],
)
def test_parse_refuses_with_blynks_error(raw: bytes, msg: str) -> None:
    with pytest.raises(inject.InjectError) as caught:
        inject.parse(raw)
    assert caught.value.reply == {"t": "error", "msg": msg}
    assert (
        inject.encode(caught.value.reply)
        == json.dumps({"t": "error", "msg": msg}, separators=(",", ":")).encode()
    )


def test_set_accumulates_and_unknown_keys_fail_without_changing_anything() -> None:
    pending = inject.Pending()
    assert pending.set({"ssid": "home"}) is None
    assert pending.set({"pass": "password1", "blynk": TOKEN, "save": 1}) is None
    assert pending.values == {"ssid": "home", "pass": "password1", "blynk": TOKEN, "save": "1"}
    before = dict(pending.values)
    problem = pending.set({"ssid": "other", "port": "80", "bogus": "x"})
    assert problem == "unknown key(s): bogus, port"
    assert pending.values == before
    assert pending.set({"ssid": ["a"]}) == "ssid: must be a string"
    assert pending.set({"pass": None}) == "pass: must be a string"
    assert pending.values == before


def test_every_set_key_is_accepted() -> None:
    pending = inject.Pending()
    assert pending.set(dict.fromkeys(inject.SET_KEYS, "x")) is None


def test_reset_forgets_network_fields_only() -> None:
    pending = inject.Pending()
    pending.set({"ssid": "home", "pass": "password1", "blynk": TOKEN, "host": "h", "ip": "1.2.3.4"})
    pending.reset()
    assert pending.values == {"blynk": TOKEN, "host": "h"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({}, "blynk"),
        ({"ssid": "home", "blynk": "short"}, "blynk"),
        ({"ssid": "home", "blynk": "a" * 33}, "blynk"),
        ({"blynk": TOKEN}, "ssid"),  # wifi with no network name
        ({"ssid": "home", "blynk": "!" * 32}, "blynk"),
        ({"ssid": "x" * 33, "blynk": TOKEN}, "ssid"),
        ({"ssid": "home", "blynk": TOKEN, "if": "lora"}, "if"),
        ({"ssid": "home", "blynk": TOKEN, "ip": "10.0.0.5"}, "mask"),
        ({"ssid": "home", "blynk": TOKEN, "ip": "300.1.1.1"}, "ip"),
    ],
)
def test_connect_refuses_an_invalid_configuration(fields: dict[str, str], param: str) -> None:
    pending = inject.Pending()
    assert pending.set(fields) is None
    with pytest.raises(edgent.ConfigError) as caught:
        pending.config(DEFAULTS)
    assert caught.value.param == param


def test_connect_builds_the_portals_configuration() -> None:
    pending = inject.Pending()
    pending.set({"if": "wifi", "ssid": "Home & Co=1", "pass": "p%ss wörd+", "blynk": TOKEN})
    pending.set({"host": "blynk.example", "save": "1", "templateId": "TMPL1", "pin": "1234"})
    config = pending.config(DEFAULTS)
    assert config.ssid == b"Home & Co=1"
    assert config.password == "p%ss wörd+"
    assert config.token == TOKEN
    assert (config.host, config.port, config.port_ssl) == ("blynk.example", 8080, None)
    assert config.save and config.interface == "wifi" and not config.static_ip


def test_connect_with_static_address_and_eth() -> None:
    pending = inject.Pending()
    pending.set(
        {
            "if": "eth",
            "blynk": TOKEN,
            "ip": "10.0.0.5",
            "mask": "255.255.255.0",
            "gw": "10.0.0.1",
            "dns": "10.0.0.1",
        }
    )
    config = pending.config(DEFAULTS)
    assert (config.interface, config.ssid, config.ip, config.gw) == (
        "eth",
        b"",
        "10.0.0.5",
        "10.0.0.1",
    )
    assert config.host == "cloud.example"


def test_info_and_interfaces() -> None:
    msg = inject.info(
        vendor="Blynk",
        tmpl_id="TMPL1",
        fw_type="TMPL1",
        fw_ver="0.1.0",
        name="Blynk Lamp-W8FH",
        uid="u-1",
    )
    assert msg == {
        "t": "info",
        "vendor": "Blynk",
        "tmpl_id": "TMPL1",
        "fw_type": "TMPL1",
        "fw_ver": "0.1.0",
        "name": "Blynk Lamp-W8FH",
        "uid": "u-1",
        "caps": ["live_status"],
    }
    assert inject.interface("wifi", "02:00:00:00:00:01", False, scan=True) == {
        "t": "if",
        "name": "wifi",
        "mac": "02:00:00:00:00:01",
        "status": "unavailable",
        "static_ip": 1,
        "scan": 1,
    }
    assert inject.interface("eth", "02:00:00:00:00:02", True) == {
        "t": "if",
        "name": "eth",
        "mac": "02:00:00:00:00:02",
        "status": "ready",
        "static_ip": 1,
    }


def _entry(
    ssid: bytes,
    rssi: int,
    bssid: str = "02:00:00:00:00:01",
    hidden: bool = False,
) -> edgent.ScanEntry:
    return edgent.ScanEntry(
        ssid=ssid, bssid=bssid, rssi=rssi, security="WPA2", channel=6, hidden=hidden
    )


def test_scan_drops_hidden_and_weak_keeps_the_best_bss_strongest_first() -> None:
    entries = [
        _entry(b"far", -91),
        _entry(b"", -30, hidden=True),
        _entry(b"home", -70, "02:00:00:00:00:01"),
        _entry(b"home", -50, "02:00:00:00:00:02"),
        _entry(b"cafe", -60),
        _entry(b"edge", -90),
    ]
    got = inject.scan_entries(entries)
    assert [(m["ssid"], m["rssi"], m["bssid"]) for m in got] == [
        ("home", -50, "02:00:00:00:00:02"),
        ("cafe", -60, "02:00:00:00:00:01"),
        ("edge", -90, "02:00:00:00:00:01"),
    ]
    assert got[0] == {
        "t": "scan",
        "ssid": "home",
        "bssid": "02:00:00:00:00:02",
        "rssi": -50,
        "sec": "WPA2",
        "ch": 6,
    }


def test_scan_lists_at_most_30_and_each_fits_a_notification() -> None:
    entries = [_entry((f"{i:02d}" * 16).encode(), -40 - i) for i in range(40)]
    got = inject.scan_entries(entries)
    assert len(got) == 30
    assert all(len(inject.encode(m)) <= 185 - 3 for m in got)  # an iPhone's usual ATT MTU


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        (E.NETWORK_TIMEOUT, "net_fail", "timeout"),
        (E.NETWORK_NOT_FOUND, "net_fail", "not_found"),
        (E.AUTH_FAILED, "net_fail", "invalid_credentials"),
        (E.NO_ADDRESS, "net_fail", "no_ip_assigned"),
        (E.NO_CABLE, "net_fail", "no_cable"),
        (E.NETWORK_OTHER, "net_fail", "generic"),
        (E.CONFIG_INVALID, "net_fail", "generic"),
        (E.SIM_MISSING, "net_fail", "sim_missing"),
        (E.SIM_LOCKED, "net_fail", "sim_locked"),
        (E.SIM_WRONG_PIN, "net_fail", "sim_wrong_pin"),
        (E.CLOUD_TIMEOUT, "cloud_fail", "timeout"),
        (E.TOKEN_REJECTED, "cloud_fail", "auth_failed"),
        (E.DNS_FAILED, "cloud_fail", "dns_failed"),
        (E.TLS_REJECTED, "cloud_fail", "invalid_certificate"),
        (E.CAPTIVE_PORTAL, "cloud_fail", "captive_portal"),
        (E.CLOUD_OTHER, "cloud_fail", "generic"),
        (799, "connect_fail", "generic"),
    ],
)
def test_failure_reasons(code: int, kind: str, reason: str) -> None:
    msg = inject.failure(code)
    assert msg == {"t": kind, "reason": reason, "code": code}
    assert reason in inject.REASONS
    assert inject.failure_code(msg) == code
    # a device that sends only Blynk's words (Blynk's own library) reads back to the same meaning
    words = {"t": kind, "reason": reason}
    if code not in (E.CONFIG_INVALID, 799):
        assert inject.failure_code(words) == code


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"t": "net_fail", "reason": "weird"}, E.NETWORK_OTHER),
        ({"t": "cloud_fail", "reason": "weird"}, E.CLOUD_OTHER),
        ({"t": "connect_fail", "msg": "configuration invalid"}, E.CONFIG_INVALID),
        ({"t": "net_fail", "reason": "timeout", "code": True}, E.NETWORK_TIMEOUT),
    ],
)
def test_failure_code_of_other_devices(message: dict[str, object], code: int) -> None:
    assert inject.failure_code(message) == code


def test_status_and_connect_fail_shapes() -> None:
    assert inject.status("connecting_net") == {"t": "status", "s": "connecting_net"}
    assert inject.connect_fail() == {"t": "connect_fail", "msg": "configuration invalid"}
    assert inject.connect_fail(detail="blynk: short") == {
        "t": "connect_fail",
        "msg": "configuration invalid",
        "detail": "blynk: short",
    }
    assert (
        inject.net_status(ssid="home", bssid="b", ip="10.0.0.2", rssi=-50, state="connected")["if"]
        == "wifi"
    )


def test_encode_refuses_a_message_too_long_and_decode_round_trips() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        inject.encode({"t": "error", "msg": "x" * 600})
    raw = inject.request("set", ssid="home")
    assert inject.decode(raw) == {"t": "set", "ssid": "home"}
    with pytest.raises(ValueError):
        inject.request("ota")
    for bad in (b"{", b"[]", b'{"x":1}'):
        with pytest.raises(ValueError, match="not an Inject message"):
            inject.decode(bad)


def test_the_out_of_band_code_is_our_extension() -> None:
    pending = inject.Pending()
    assert pending.set({"code": "482913", "ssid": "home"}) is None
    assert pending.values["code"] == "482913"
    assert "code" not in inject.SET_KEYS  # Blynk's list is unchanged
    caps = inject.info(
        vendor="v", tmpl_id="t", fw_type="t", fw_ver="1", name="n", uid="u", code=True
    )["caps"]
    assert caps == ["live_status", "oob_code"]
