"""NmRadio against a mock NetworkManager on a private system bus (see conftest.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.nm import conftest as nm_conftest
from tests.nm.conftest import EAP, PRIVACY, PSK, SAE, NmMock
from wifiprov.device.radio import make_radio
from wifiprov.device.radio.base import ConnectError, ConnectFailure, StaticIp
from wifiprov.device.radio.dnsmasq import shared_snippet
from wifiprov.device.radio.nm import NmRadio, TakeoverRefused
from wifiprov.linux.networkmanager import NetworkManagerUnavailable, NmError, RadioBlocked
from wifiprov.linux.nm_settings import dns_text

WIFI = "802-11-wireless"
SEC = "802-11-wireless-security"


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Wait (bounded) for a condition the mock reaches asynchronously."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def ours(nm: NmMock) -> dict[str, dict[str, dict[str, object]]]:
    return {
        p: s
        for p, s in nm.all_settings().items()
        if s.get("user", {}).get("data", {}).get("org.wifiprov.owner") == "device"
    }


def station(nm: NmMock) -> dict[str, dict[str, object]]:
    (settings,) = [s for s in ours(nm).values() if s[WIFI]["mode"] != "ap"]
    return settings


# -- scan


async def test_scan_is_byte_exact_for_every_byte_value(nm: NmMock, radio: NmRadio) -> None:
    ssids = [bytes(range(i, i + 32)) for i in range(0, 256, 32)]
    for i, ssid in enumerate(ssids):
        nm.add_ap(f"b{i}", ssid, strength=20 + i)
    entries = await radio.scan()
    assert sorted(e.ssid for e in entries) == sorted(ssids)
    assert [e.rssi for e in entries] == sorted((e.rssi for e in entries), reverse=True)


async def test_scan_colon_non_utf8_hidden_and_security(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("c", b"Cafe:Wifi:\xff\xfe", rsn=PSK, frequency=5180)
    nm.add_ap("h", b"", rsn=PSK)
    nm.add_ap("o", b"Open", rsn=0)
    nm.add_ap("w3", b"Only3", rsn=SAE)
    nm.add_ap("t", b"Trans", rsn=PSK | SAE)
    nm.add_ap("e", b"Corp", rsn=EAP)
    nm.add_ap("w", b"Wep", rsn=0, flags=PRIVACY)
    by_ssid = {e.ssid: e for e in await radio.scan() if not e.hidden}
    assert by_ssid[b"Cafe:Wifi:\xff\xfe"].channel == 36
    assert {k: e.security for k, e in by_ssid.items()} == {
        b"Cafe:Wifi:\xff\xfe": "WPA2",
        b"Open": "OPEN",
        b"Only3": "WPA3",
        b"Trans": "WPA2+WPA3",
        b"Corp": "WPA2-EAP",
        b"Wep": "WEP",
    }
    (hidden,) = [e for e in await radio.scan() if e.hidden]
    assert hidden.ssid == b""


async def test_scan_while_the_ap_is_up_returns_the_cache(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("a", b"Home")
    before = await radio.scan()
    await radio.start_ap("Blynk Test-AAAA")
    nm.add_ap("b", b"Later")
    assert await radio.scan() == before


# -- key management per access point


@pytest.mark.parametrize(
    ("rsn", "flags", "password", "key_mgmt"),
    [
        (PSK, None, "correct horse", "wpa-psk"),
        (SAE, None, "correct horse", "sae"),
        (PSK | SAE, None, "correct horse", "wpa-psk"),
        (0, None, "", None),
    ],
    ids=["wpa2-psk", "sae-only", "transition", "open"],
)
async def test_key_mgmt_follows_the_access_point(
    nm: NmMock, radio: NmRadio, rsn: int, flags: int | None, password: str, key_mgmt: str | None
) -> None:
    ssid = b"Net:\xe9"
    nm.add_ap("n", ssid, rsn=rsn, flags=flags)
    info = await radio.connect(ssid, password, timeout=5)
    assert info.ssid == ssid and info.ip == "192.168.1.50" and info.channel == 6
    settings = station(nm)
    assert settings[WIFI]["ssid"] == ssid
    assert settings["connection"]["id"].startswith("wifiprov-")
    assert settings["connection"]["autoconnect"] is False
    if key_mgmt is None:
        assert SEC not in settings
    else:
        assert settings[SEC]["key-mgmt"] == key_mgmt
        assert settings[SEC]["psk"] == password


@pytest.mark.parametrize(("eap", "phase2"), [("peap", "mschapv2"), ("ttls", "pap")])
async def test_enterprise(nm: NmMock, radio: NmRadio, eap: str, phase2: str) -> None:
    nm.add_ap("e", b"Corp", rsn=EAP)
    await radio.connect(b"Corp", "s3cret;pw", identity="alice@example.org", eap=eap, timeout=5)
    settings = station(nm)
    assert settings[SEC]["key-mgmt"] == "wpa-eap"
    assert settings["802-1x"] == {
        "eap": [eap],
        "identity": "alice@example.org",
        "password": "s3cret;pw",
        "phase2-auth": phase2,
    }


async def test_hidden_network_uses_the_password_given(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"", rsn=PSK)  # its beacon hides the name
    await radio.connect(b"Secret", "hidden pass", hidden=True, timeout=5)
    settings = station(nm)
    assert settings[WIFI]["hidden"] is True
    assert settings[WIFI]["ssid"] == b"Secret"
    assert settings[SEC]["key-mgmt"] == "wpa-psk"


@pytest.mark.parametrize(
    "password",
    ['say "hi" now', "it's \\ back;slash", "a+b&c d;e", "pässwörd ünïcødé", "日本語のパスワード"],
)
async def test_passwords_reach_nm_byte_exact(
    nm: NmMock, radio: NmRadio, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    nm.add_ap("p", b"Home")
    await radio.connect(b"Home", password, timeout=5)
    assert station(nm)[SEC]["psk"].encode() == password.encode()
    nm.outcome(b"Home", "fail", 7)
    with pytest.raises(ConnectError) as failed:
        await radio.connect(b"Home", password, timeout=5)
    assert nm.added()[-1][SEC]["psk"].encode() == password.encode()
    assert password not in str(failed.value)
    assert password not in caplog.text


async def test_short_wpa_password_is_an_auth_failure(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("p", b"Home")
    with pytest.raises(ConnectError) as failed:
        await radio.connect(b"Home", "short", timeout=5)
    assert failed.value.code == 722
    assert nm.added() == []


# -- failures


@pytest.mark.parametrize(
    ("ssid", "reason", "failure", "code"),
    [
        (b"Home", 7, ConnectFailure.AUTH_FAILED, 722),
        (b"Nowhere", None, ConnectFailure.NOT_FOUND, 720),  # no AP: NM says SSID_NOT_FOUND
        (b"Home", 17, ConnectFailure.NO_ADDRESS, 723),
        (b"Home", 10, ConnectFailure.AUTH_FAILED, 722),
    ],
    ids=["wrong-password", "not-found", "dhcp", "supplicant-failed"],
)
async def test_failures_map_to_codes_and_keep_the_previous_profile(
    nm: NmMock,
    radio: NmRadio,
    ssid: bytes,
    reason: int | None,
    failure: ConnectFailure,
    code: int,
) -> None:
    nm.add_ap("w", b"Work")
    nm.add_ap("h", b"Home")
    await radio.connect(b"Work", "work password", timeout=5)
    working = ours(nm)
    if reason is not None:
        nm.outcome(ssid, "fail", reason)
    with pytest.raises(ConnectError) as failed:
        await radio.connect(ssid, "home password", timeout=5)
    assert failed.value.failure is failure
    assert failed.value.code == code
    assert ours(nm) == working  # the failed profile is gone, the working one untouched
    assert (await radio.status()).station is None


async def test_timeout_deletes_the_new_profile(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    nm.outcome(b"Home", "hang")
    async with asyncio.timeout(10):
        with pytest.raises(ConnectError) as failed:
            await radio.connect(b"Home", "home password", timeout=0.3)
    assert failed.value.failure is ConnectFailure.TIMEOUT
    assert ours(nm) == {}


async def test_nm_not_running(system_bus: str, tmp_path: Path) -> None:
    radio = NmRadio("wlan0", snippet_dir=tmp_path)
    with pytest.raises(NetworkManagerUnavailable, match="NetworkManager is not running"):
        await radio.open()
    with pytest.raises(ConnectError) as failed:
        await radio.connect(b"Home", "home password", timeout=5)
    assert failed.value.failure is ConnectFailure.OTHER
    assert "systemctl start NetworkManager" in str(failed.value)
    await radio.close()


async def test_no_system_bus(tmp_path: Path) -> None:
    radio = NmRadio(bus_address=f"unix:path={tmp_path}/nothing")
    with pytest.raises(NetworkManagerUnavailable, match="cannot reach the system D-Bus"):
        await radio.open()


async def test_nm_stops_mid_connect(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    nm.outcome(b"Home", "hang")
    joining = asyncio.create_task(radio.connect(b"Home", "home password", timeout=60))
    await until(lambda: nm.device_prop("State") == 40, "activation to start")
    nm.process.terminate()
    async with asyncio.timeout(10):
        with pytest.raises(ConnectError) as failed:
            await joining
    assert failed.value.failure is ConnectFailure.OTHER
    assert "NetworkManager stopped" in str(failed.value)
    with pytest.raises(ConnectError, match="not running"):
        await radio.connect(b"Home", "home password", timeout=5)


async def test_device_removed_mid_connect(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    nm.outcome(b"Home", "hang")
    joining = asyncio.create_task(radio.connect(b"Home", "home password", timeout=60))
    await until(lambda: nm.device_prop("State") == 40, "activation to start")
    nm.remove_device()
    async with asyncio.timeout(10):
        with pytest.raises(ConnectError, match="wlan0 disappeared"):
            await joining


async def test_ap_interface_disappearing(nm: NmMock, radio: NmRadio) -> None:
    await radio.start_ap("Blynk Test-AAAA")
    nm.remove_device()
    await until(lambda: radio._ap is None, "the AP to be marked down")
    assert (await radio.status()).ap is None
    with pytest.raises(NmError, match="no WiFi device 'wlan0'"):
        await radio.start_ap("Blynk Test-AAAA")


async def test_link_lost(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    await radio.connect(b"Home", "home password", timeout=5)
    lost = asyncio.Event()
    reasons: list[str] = []
    radio.on_link_lost(lambda reason: (reasons.append(reason), lost.set()))
    nm.drop(40)
    async with asyncio.timeout(10):
        await lost.wait()
    assert "wlan0 went down" in reasons[0]
    assert (await radio.status()).station is None


async def test_disconnect_is_not_a_lost_link(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    await radio.connect(b"Home", "home password", timeout=5)
    reasons: list[str] = []
    radio.on_link_lost(reasons.append)
    await radio.disconnect()
    await radio.start_ap("Blynk Test-AAAA")
    assert reasons == []
    assert len(ours(nm)) == 2  # the working station profile stays, for next time


# -- someone else's profiles


async def test_foreign_profiles_are_never_touched(
    nm: NmMock, radio: NmRadio, tmp_path: Path
) -> None:
    nm.add_ap("h", b"Home")
    nm.add_ap("n", b"Neighbour")
    active, _ = nm.add_foreign(b"Neighbour", activate=True)
    idle, _ = nm.add_foreign(b"Home")
    before = {p: nm.settings_of(p) for p in (active, idle)}
    await radio.connect(b"Home", "home password", timeout=5)
    nm.outcome(b"Home", "fail", 7)
    with pytest.raises(ConnectError):
        await radio.connect(b"Home", "home password", timeout=5)
    await radio.start_ap("Blynk Test-AAAA", "ap password")
    await radio.close()
    assert {p: nm.settings_of(p) for p in (active, idle)} == before
    for path in (active, idle):
        calls = nm.dbus.Interface(
            nm.bus.get_object("org.freedesktop.NetworkManager", path), "org.freedesktop.DBus.Mock"
        ).GetCalls()
        assert not [c for c in calls if str(c[1]) in ("Delete", "Update")]


async def test_a_wifiprov_named_profile_without_our_marker_is_not_ours(
    nm: NmMock, radio: NmRadio
) -> None:
    nm.add_ap("h", b"Home")
    path, _ = nm.add_foreign(b"Home")
    conn = nm.dbus.Interface(
        nm.bus.get_object("org.freedesktop.NetworkManager", path),
        "org.freedesktop.NetworkManager.Settings.Connection",
    )
    conn.Update(
        {
            "connection": {
                "id": "wifiprov-Home",
                "uuid": nm.settings_of(path)["connection"]["uuid"],
                "type": "802-11-wireless",
            }
        }
    )
    await radio.connect(b"Home", "home password", timeout=5)
    await radio.connect(b"Home", "home password", timeout=5)  # supersedes our first profile
    assert path in nm.connections()
    assert len(ours(nm)) == 1


async def test_takeover_refused_on_the_default_route(nm: NmMock, tmp_path: Path) -> None:
    nm.add_ap("n", b"Office")
    path, uuid = nm.add_foreign(b"Office", activate=True)
    radio = NmRadio("wlan0", snippet_dir=tmp_path)
    try:
        with pytest.raises(TakeoverRefused) as refused:
            await radio.start_ap("Blynk Test-AAAA")
        message = str(refused.value)
        assert "wlan0" in message and "'preconfigured'" in message and uuid in message
        assert "--takeover" in message
        assert nm.device_prop("ActiveConnection") != "/"  # still on the office network
    finally:
        await radio.close()
    radio = NmRadio("wlan0", snippet_dir=tmp_path, takeover=True)
    try:
        await radio.start_ap("Blynk Test-AAAA")
        assert (await radio.status()).ap is not None
    finally:
        await radio.close()
    assert path in nm.connections()


async def test_rfkill_blocked(nm: NmMock, radio: NmRadio) -> None:
    nm.set_manager("WirelessHardwareEnabled", False)
    with pytest.raises(RadioBlocked, match=r"blocked \(rfkill\).*--country.*rfkill unblock wifi"):
        await radio.start_ap("Blynk Test-AAAA")
    with pytest.raises(ConnectError, match="rfkill"):
        await radio.connect(b"Home", "home password", timeout=5)
    nm.set_manager("WirelessHardwareEnabled", True)
    nm.set_manager("WirelessEnabled", False)
    with pytest.raises(RadioBlocked, match="rfkill unblock wifi"):
        await radio.scan()


# -- the access point


async def test_ap_profile_and_dnsmasq_snippet(nm: NmMock, radio: NmRadio) -> None:
    info = await radio.start_ap("Blynk Thermostat-W8FH", "ap passw0rd", captive=True)
    assert info.secured and info.captive and info.bssid == "02:00:00:aa:bb:01"
    assert info.portal_bind == ("192.168.4.1", 80)
    ((path, settings),) = ours(nm).items()
    assert settings[WIFI] == {
        "ssid": b"Blynk Thermostat-W8FH",
        "mode": "ap",
        "band": "bg",
        "powersave": 2,
    }
    assert settings["ipv4"] == {
        "method": "shared",
        "address-data": [{"address": "192.168.4.1", "prefix": 24}],
    }
    assert settings["ipv6"] == {"method": "ignore"}
    assert settings["connection"]["autoconnect"] is False
    assert settings["connection"]["interface-name"] == "wlan0"
    assert settings[SEC] == {
        "key-mgmt": "wpa-psk",
        "psk": "ap passw0rd",
        "proto": ["rsn"],
        "pairwise": ["ccmp"],
        "group": ["ccmp"],
        "pmf": 1,
    }
    assert nm.added()[-1][WIFI]["mode"] == "ap"
    assert radio.snippet.read_text() == shared_snippet(address="192.168.4.1", captive=True)
    await radio.stop_ap()
    assert not radio.snippet.exists()
    assert ours(nm) == {}
    assert nm.device_prop("ActiveConnection") == "/"


async def test_open_ap_and_restart(nm: NmMock, radio: NmRadio) -> None:
    await radio.start_ap("Blynk Test-AAAA")
    await radio.start_ap("Blynk Test-BBBB")
    ((_, settings),) = ours(nm).items()
    assert SEC not in settings
    assert settings[WIFI]["ssid"] == b"Blynk Test-BBBB"
    await radio.close()
    assert ours(nm) == {} and not radio.snippet.exists()


async def test_connect_closes_the_ap(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    await radio.scan()
    await radio.start_ap("Blynk Test-AAAA")
    await radio.connect(b"Home", "home password", timeout=5)
    status = await radio.status()
    assert status.ap is None and status.station is not None
    assert not radio.snippet.exists()
    assert [s[WIFI]["mode"] for s in ours(nm).values()] == ["infrastructure"]


async def test_ap_failure_names_who_holds_port_53(
    nm: NmMock, radio: NmRadio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "wifiprov.device.radio.nm.port_owners",
        lambda port, proto: ["dnsmasq (pid 123)"] if port == 53 else [],
    )
    nm.ap_outcome("fail", 18)
    with pytest.raises(NmError) as failed:
        await radio.start_ap("Blynk Test-AAAA")
    assert "dnsmasq (pid 123)" in str(failed.value)
    assert "shared-mode service" in str(failed.value)
    assert not radio.snippet.exists()
    assert ours(nm) == {}


async def test_country_is_set_with_iw(
    nm: NmMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "iw-args"
    iw = bin_dir / "iw"
    iw.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    iw.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    radio = make_radio("nm", interface="wlan0", country="gb", snippet_dir=tmp_path)
    assert isinstance(radio, NmRadio)
    await radio.open()
    await radio.close()
    assert record.read_text() == "reg set GB\n"
    with pytest.raises(ValueError, match="two-letter"):
        NmRadio(country="Britain")


async def test_station_mac_comes_from_nm(radio: NmRadio) -> None:
    assert radio.station_mac == radio.ap_mac == "02:00:00:aa:bb:01"
    assert radio.ap_and_station is False


async def test_control_bytes_in_the_ssid_join_byte_exact(nm: NmMock, radio: NmRadio) -> None:
    ssid = bytes(range(32))  # NUL and friends: the profile id must stay a valid D-Bus string
    nm.add_ap("z", ssid)
    info = await radio.connect(ssid, "home password", timeout=5)
    assert info.ssid == ssid
    settings = station(nm)
    assert settings[WIFI]["ssid"] == ssid
    assert settings["connection"]["id"].isprintable()


async def test_snippet_in_a_directory_we_cannot_change(
    nm: NmMock, radio: NmRadio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the service user: the file is ours, its directory root's (no rename, no unlink)."""
    radio.snippet.parent.mkdir(parents=True, exist_ok=True)
    radio.snippet.write_text("")

    def denied(*_: object, **__: object) -> None:
        raise PermissionError("read-only directory")

    monkeypatch.setattr(Path, "replace", denied)
    monkeypatch.setattr(Path, "unlink", denied)
    await radio.start_ap("Blynk Test-AAAA", captive=True)
    assert radio.snippet.read_text() == shared_snippet(address="192.168.4.1", captive=True)
    await radio.stop_ap()
    assert radio.snippet.read_text() == ""


async def test_nm_stopping_while_the_ap_is_up_reports_the_ap_lost(
    nm: NmMock, radio: NmRadio
) -> None:
    await radio.start_ap("Blynk Test-AAAA")
    reasons: list[str] = []
    radio.on_ap_lost(reasons.append)
    nm.remove_device()
    await until(lambda: bool(reasons), "the AP-lost callback")
    assert "disappeared" in reasons[0] and (await radio.status()).ap is None


async def test_the_ap_name_comes_from_the_permanent_mac(nm: NmMock, tmp_path: Path) -> None:
    # NM randomizes the current MAC while it scans disconnected: the chip code must not follow.
    wireless = nm_conftest.NM + ".Device.Wireless"
    nm.mock.SetProperty(nm.device, wireless, "HwAddress", "6a:5e:11:22:33:44")
    radio = NmRadio("wlan0", snippet_dir=tmp_path / "snippets")
    await radio.open()
    try:
        assert radio.station_mac == "02:00:00:aa:bb:01"
    finally:
        await radio.close()


async def test_a_join_after_the_ap_uses_the_scan_taken_before_it(
    nm: NmMock, radio: NmRadio
) -> None:
    nm.add_ap("w3", b"WPA3 only", rsn=SAE)
    assert [e.security for e in await radio.scan()] == ["WPA3"]
    await radio.start_ap("Blynk Test-AAAA")  # NM empties its AP list while serving an AP
    assert nm.dev_prop_wireless("AccessPoints") == []
    await radio.connect(b"WPA3 only", "home password", timeout=5)
    security = nm.added()[-1]["802-11-wireless-security"]
    assert security["key-mgmt"] == "sae"  # not a guess from the password (wpa-psk → 722)


async def test_our_own_profile_left_active_by_a_crash_is_not_someone_elses(
    nm: NmMock, tmp_path: Path
) -> None:
    nm.add_ap("h", b"Home")
    first = NmRadio("wlan0", snippet_dir=tmp_path / "snippets")
    await first.open()
    await first.connect(b"Home", "home password", timeout=5)
    first._client.close()  # SIGKILL: no close(), our profile stays up with the default route
    nm.set_manager("PrimaryConnection", nm.device_prop("ActiveConnection"))
    active = nm.device_prop("ActiveConnection")
    active_iface = nm_conftest.NM + ".Connection.Active"
    nm.mock.SetProperty(active, active_iface, "Default", nm.dbus.Boolean(True))
    second = NmRadio("wlan0", snippet_dir=tmp_path / "snippets")
    try:
        await second.open()  # no TakeoverRefused: that profile is ours
        await second.start_ap("Blynk Test-AAAA")
    finally:
        await second.close()


# -- static IPv4 (Edgent's ip, mask, gw, dns, dns2)

HOME_STATIC = StaticIp("192.168.1.20", "255.255.255.0", "192.168.1.1", "1.1.1.1", "9.9.9.9")


def dns_of(settings: dict[str, dict[str, object]]) -> list[str]:
    return [dns_text(int(d)) for d in settings["ipv4"]["dns"]]  # type: ignore[attr-defined]


async def test_static_address_is_a_manual_ipv4_profile(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    info = await radio.connect(b"Home", "correct horse", timeout=5, static=HOME_STATIC)
    (added,) = nm.added()
    ipv4 = added["ipv4"]
    assert ipv4["method"] == "manual"  # never DHCP
    assert ipv4["address-data"] == [{"address": "192.168.1.20", "prefix": 24}]
    assert ipv4["gateway"] == "192.168.1.1"
    assert dns_of(added) == ["1.1.1.1", "9.9.9.9"]
    assert station(nm)["ipv4"]["method"] == "manual"
    assert info.ip == "192.168.1.20" and (await radio.status()).station == info


async def test_static_without_dns_asks_the_gateway(nm: NmMock, radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    static = StaticIp("10.1.0.9", "255.255.0.0", "10.1.0.1")
    await radio.connect(b"Home", "correct horse", timeout=5, static=static)
    (added,) = nm.added()
    assert added["ipv4"]["address-data"] == [{"address": "10.1.0.9", "prefix": 16}]
    assert dns_of(added) == ["10.1.0.1"]


async def test_unusable_static_address_is_700_before_nm_hears_of_it(
    nm: NmMock, radio: NmRadio
) -> None:
    nm.add_ap("h", b"Home")
    bad = StaticIp("192.168.1.20", "255.255.255.0", "10.0.0.1")
    with pytest.raises(ConnectError) as caught:
        await radio.connect(b"Home", "correct horse", timeout=5, static=bad)
    assert caught.value.failure is ConnectFailure.STATIC_INVALID and caught.value.code == 700
    assert str(caught.value) == "gateway 10.0.0.1 is not in 192.168.1.0/24"
    assert nm.added() == [] and ours(nm) == {}


# -- Ethernet

ETH = "802-3-ethernet"


async def test_no_ethernet_device(nm: NmMock, radio: NmRadio) -> None:
    assert radio.wired_mac is None
    with pytest.raises(ConnectError, match="this device has no Ethernet interface") as caught:
        await radio.connect_wired()
    assert caught.value.failure is ConnectFailure.OTHER
    assert nm.added() == []


async def test_wired_by_dhcp(nm: NmMock, wired_radio: NmRadio) -> None:
    assert wired_radio.wired_mac == nm_conftest.ETH_MAC
    info = await wired_radio.connect_wired(timeout=5)
    assert (info.ssid, info.ip) == (b"", "192.168.1.60")
    assert (await wired_radio.status()).station == info
    (added,) = nm.added()
    assert added["connection"]["type"] == ETH and ETH in added
    assert added["connection"]["interface-name"] == "eth0"
    assert added["connection"]["id"] == "wifiprov-wired"
    assert added["connection"]["autoconnect"] is False
    assert added["ipv4"] == {"method": "auto"}
    assert added["user"]["data"]["org.wifiprov.owner"] == "device"
    assert nm.device_prop("State", nm.ethernet) == 100
    await wired_radio.disconnect()  # taken down; the profile stays (it works)
    assert nm.device_prop("ActiveConnection", nm.ethernet) == "/"
    assert not (await wired_radio.status()).connected
    assert [s["connection"]["type"] for s in ours(nm).values()] == [ETH]


async def test_wired_static(nm: NmMock, wired_radio: NmRadio) -> None:
    info = await wired_radio.connect_wired(static=HOME_STATIC, timeout=5)
    assert info.ip == "192.168.1.20"
    (added,) = nm.added()
    assert added["connection"]["type"] == ETH
    assert added["ipv4"]["method"] == "manual"
    assert added["ipv4"]["address-data"] == [{"address": "192.168.1.20", "prefix": 24}]
    assert added["ipv4"]["gateway"] == "192.168.1.1"
    assert dns_of(added) == ["1.1.1.1", "9.9.9.9"]
    with pytest.raises(ConnectError) as caught:
        await wired_radio.connect_wired(static=StaticIp("10.0.0.0", "255.0.0.0", "10.0.0.1"))
    assert caught.value.code == 700


@pytest.mark.parametrize("static", [None, HOME_STATIC], ids=["dhcp", "static"])
async def test_no_cable_is_721(nm: NmMock, wired_radio: NmRadio, static: StaticIp | None) -> None:
    nm.set_carrier(False)
    with pytest.raises(ConnectError) as caught:
        await wired_radio.connect_wired(static=static, timeout=5)
    assert caught.value.failure is ConnectFailure.NO_CABLE and caught.value.code == 721
    assert "eth0" in str(caught.value)
    assert ours(nm) == {}
    nm.set_carrier(True)
    assert (await wired_radio.connect_wired(static=static, timeout=5)).ssid == b""


async def test_nm_refusing_for_want_of_carrier_is_721(
    nm: NmMock, wired_radio: NmRadio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cable pulled between our carrier check and NM's own: NM's error says "carrier"."""

    async def plugged(device: object) -> bool:
        return True

    assert wired_radio._client is not None
    monkeypatch.setattr(wired_radio._client, "carrier", plugged)
    nm.set_carrier(False)
    with pytest.raises(ConnectError) as caught:
        await wired_radio.connect_wired(timeout=5)
    assert caught.value.failure is ConnectFailure.NO_CABLE
    assert ours(nm) == {}


async def test_activation_failing_with_reason_carrier_is_721(
    nm: NmMock, wired_radio: NmRadio
) -> None:
    nm.wired_outcome("fail", 40)  # NM_DEVICE_STATE_REASON_CARRIER
    with pytest.raises(ConnectError) as caught:
        await wired_radio.connect_wired(timeout=5)
    assert caught.value.failure is ConnectFailure.NO_CABLE
    assert ours(nm) == {}
    nm.wired_outcome("fail", 17)  # DHCP
    with pytest.raises(ConnectError) as caught:
        await wired_radio.connect_wired(timeout=5)
    assert caught.value.failure is ConnectFailure.NO_ADDRESS


async def test_pulling_the_cable_loses_the_link(nm: NmMock, wired_radio: NmRadio) -> None:
    reasons: list[str] = []
    wired_radio.on_link_lost(reasons.append)
    await wired_radio.connect_wired(timeout=5)
    nm.set_carrier(False)
    await until(lambda: bool(reasons), "the link-lost callback")
    assert reasons == ["eth0 went down: the cable was unplugged"]
    assert not (await wired_radio.status()).connected


async def test_wifi_and_wired_replace_each_other(nm: NmMock, wired_radio: NmRadio) -> None:
    nm.add_ap("h", b"Home")
    await wired_radio.connect(b"Home", "correct horse", timeout=5)
    info = await wired_radio.connect_wired(timeout=5)
    assert nm.device_prop("ActiveConnection") == "/"  # WiFi taken down ...
    assert [s["connection"]["type"] for s in ours(nm).values()] == [ETH]  # ... and superseded
    assert (await wired_radio.status()).station == info
    joined = await wired_radio.connect(b"Home", "correct horse", timeout=5)
    assert nm.device_prop("ActiveConnection", nm.ethernet) == "/"
    assert [s["connection"]["type"] for s in ours(nm).values()] == [WIFI]
    assert (await wired_radio.status()).station == joined
    await wired_radio.close()
    assert nm.device_prop("ActiveConnection") == "/"
