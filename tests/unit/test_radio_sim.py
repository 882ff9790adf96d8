"""Unit tests for the sim radio (wifiprov.device.radio.sim) against a virtual air."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from wifiprov.device.radio import (
    ConnectError,
    ConnectFailure,
    Radio,
    RadioStatus,
    ScanEntry,
    make_radio,
)
from wifiprov.device.radio.base import StaticIp
from wifiprov.device.radio.sim import SimRadio
from wifiprov.sim.air import Air, Faults
from wifiprov.sim.phone import SimPhone
from wifiprov.wire.edgent import DeviceConfig
from wifiprov.wire.errors import ProvisioningError

AP_NAME = "Blynk Demo-W8FH"


@pytest.fixture
def air(tmp_path: Path) -> Iterator[Air]:
    with Air(tmp_path / "air") as shared:
        shared.add_network("Home", "hunter22", rssi=-60, network_id="home")
        yield shared


@pytest.fixture
async def radio(air: Air) -> AsyncIterator[SimRadio]:
    sim = SimRadio(air, "dev-1", "24:6f:28:aa:bb:cc")
    yield sim
    await sim.close()


async def join_error(radio: Radio, ssid: bytes, password: str, **kw: object) -> ConnectError:
    with pytest.raises(ConnectError) as caught:
        await radio.connect(ssid, password, timeout=kw.pop("timeout", 2.0), **kw)  # type: ignore[arg-type]
    return caught.value


def test_failures_map_to_provisioning_codes() -> None:
    assert {f: f.code for f in ConnectFailure} == {
        ConnectFailure.NOT_FOUND: ProvisioningError.NETWORK_NOT_FOUND,
        ConnectFailure.AUTH_FAILED: ProvisioningError.AUTH_FAILED,
        ConnectFailure.NO_ADDRESS: ProvisioningError.NO_ADDRESS,
        ConnectFailure.TIMEOUT: ProvisioningError.NETWORK_TIMEOUT,
        ConnectFailure.STATIC_INVALID: ProvisioningError.CONFIG_INVALID,
        ConnectFailure.NO_CABLE: ProvisioningError.NO_CABLE,
        ConnectFailure.OTHER: ProvisioningError.NETWORK_OTHER,
    }
    assert ConnectError(ConnectFailure.AUTH_FAILED).code == 722
    assert ConnectFailure.NO_CABLE.value == "no_cable"  # BLE Inject's word


def test_macs(radio: SimRadio) -> None:
    assert radio.station_mac == "24:6f:28:aa:bb:cc"
    assert radio.ap_mac == "24:6f:28:aa:bb:cd"  # station + 1, as on an ESP32
    assert SimRadio(radio.air, "other").station_mac.startswith("02:")


async def test_scan_lists_networks_strongest_first(air: Air, radio: SimRadio) -> None:
    air.add_network(b"\xffodd", rssi=-40, channel=1, network_id="odd")
    hidden = air.add_network("Secret", "password9", rssi=-70, hidden=True)
    air.add_network("Far away", rssi=-30, faults=Faults(not_found=True))
    assert await radio.scan() == [
        ScanEntry(b"\xffodd", air.network("odd").bssid, -40, "OPEN", 1),  # type: ignore[union-attr]
        ScanEntry(b"Home", air.network("home").bssid, -60, "WPA2", 6),  # type: ignore[union-attr]
        ScanEntry(b"", hidden.bssid, -70, "WPA2", 6, hidden=True),
    ]


async def test_connect_records_the_station(air: Air, radio: SimRadio) -> None:
    info = await radio.connect(b"Home", "hunter22", timeout=1)
    assert (info.ssid, info.rssi, info.channel) == (b"Home", -60, 6)
    assert info.ip.startswith("10.42.0.")
    station = air.station("dev-1")
    assert station is not None and station.network == "home" and station.ip == info.ip
    status = await radio.status()
    assert status == RadioStatus(station=info) and status.connected and not status.ap_up
    await radio.disconnect()
    assert air.station("dev-1") is None and not (await radio.status()).connected


async def test_connect_picks_the_strongest_of_one_ssid(air: Air, radio: SimRadio) -> None:
    near = air.add_network("Home", "hunter22", rssi=-35)
    assert (await radio.connect(b"Home", "hunter22", timeout=1)).bssid == near.bssid


@pytest.mark.parametrize(
    ("ssid", "password", "faults", "failure"),
    [
        (b"Nowhere", "hunter22", Faults(), ConnectFailure.NOT_FOUND),
        (b"Home", "hunter22", Faults(not_found=True), ConnectFailure.NOT_FOUND),
        (b"Home", "hunter23", Faults(), ConnectFailure.AUTH_FAILED),
        (b"Home", "hunter22", Faults(wrong_password=True), ConnectFailure.AUTH_FAILED),
        (b"Home", "hunter22", Faults(dhcp_fail=True), ConnectFailure.NO_ADDRESS),
    ],
    ids=["unknown-ssid", "not-found", "password-differs", "wrong-password", "dhcp-fail"],
)
async def test_each_fault_gives_its_code(
    air: Air,
    radio: SimRadio,
    ssid: bytes,
    password: str,
    faults: Faults,
    failure: ConnectFailure,
) -> None:
    air.update_network("home", faults=faults)
    error = await join_error(radio, ssid, password)
    assert error.failure is failure
    assert air.station("dev-1") is None and not (await radio.status()).connected


async def test_hidden_network_needs_hidden(air: Air, radio: SimRadio) -> None:
    air.update_network("home", hidden=True)
    assert (await join_error(radio, b"Home", "hunter22")).code == 720
    assert (await radio.connect(b"Home", "hunter22", hidden=True, timeout=1)).ssid == b"Home"


async def test_open_and_enterprise_credentials(air: Air, radio: SimRadio) -> None:
    air.add_network("Cafe", network_id="cafe")
    assert await radio.connect(b"Cafe", "anything", timeout=1)  # open networks take any password
    air.add_network("Corp", "pw", security="WPA2-EAP", identity="alice")
    assert (await join_error(radio, b"Corp", "pw", identity="bob")).code == 722
    assert await radio.connect(b"Corp", "pw", identity="alice", timeout=1)


async def test_association_delay_within_the_timeout(air: Air, radio: SimRadio) -> None:
    air.set_faults("home", assoc_delay=0.1)
    started = time.monotonic()
    await radio.connect(b"Home", "hunter22", timeout=1)
    assert 0.1 <= time.monotonic() - started < 0.5


async def test_association_delay_past_the_timeout(air: Air, radio: SimRadio) -> None:
    air.set_faults("home", assoc_delay=30)
    started = time.monotonic()
    error = await join_error(radio, b"Home", "hunter22", timeout=0.1)
    assert error.failure is ConnectFailure.TIMEOUT and error.code == 701
    assert time.monotonic() - started < 1


async def link_lost_after(radio: SimRadio, change: object) -> str:
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    radio.on_link_lost(lost.set_result)
    await radio.connect(b"Home", "hunter22", timeout=1)
    assert callable(change)
    change()
    return await asyncio.wait_for(lost, 2)


async def test_removing_the_network_loses_the_link(air: Air, radio: SimRadio) -> None:
    other = Air(air.directory)  # as `wifiprov air remove` would, from its own Air
    reason = await link_lost_after(radio, lambda: other.remove_network("home"))
    assert "removed" in reason
    assert air.station("dev-1") is None and not (await radio.status()).connected


async def test_out_of_range_loses_the_link(air: Air, radio: SimRadio) -> None:
    reason = await link_lost_after(radio, lambda: air.set_faults("home", not_found=True))
    assert "out of range" in reason


async def test_other_changes_keep_the_link(air: Air, radio: SimRadio) -> None:
    calls: list[str] = []
    radio.on_link_lost(calls.append)
    await radio.connect(b"Home", "hunter22", timeout=1)
    air.set_faults("home", dhcp_fail=True)  # matters for the next join only
    air.add_network("Another")
    await asyncio.sleep(0.05)
    assert calls == [] and (await radio.status()).connected
    await radio.disconnect()  # asked for: no callback
    air.remove_network("home")
    await asyncio.sleep(0.05)
    assert calls == []


async def test_removed_callback_is_not_called(air: Air, radio: SimRadio) -> None:
    calls: list[str] = []
    remove = radio.on_link_lost(calls.append)
    remove()
    lost = await link_lost_after(radio, lambda: air.remove_network("home"))
    assert lost and calls == []


async def test_ap_is_visible_to_a_phone(air: Air, radio: SimRadio) -> None:
    phone = SimPhone(air)
    ap = await radio.start_ap(AP_NAME, captive=True)
    assert (ap.ssid, ap.bssid, ap.address) == (AP_NAME, radio.ap_mac, "192.168.4.1")
    assert ap.portal_bind == ("127.0.0.1", 0) and not ap.secured and ap.captive
    [seen] = phone.list_aps()
    assert (seen.ssid, seen.portal, seen.open, seen.captive) == (AP_NAME, None, True, True)
    await radio.publish_portal("0.0.0.0", 8123)
    assert await phone.join(AP_NAME, timeout=1) == "http://127.0.0.1:8123"
    assert (await radio.status()).ap_clients == 1
    await radio.stop_ap()
    assert phone.list_aps() == [] and phone.joined() is None
    assert (await radio.status()) == RadioStatus()


async def test_fixed_portal_and_passphrase(air: Air) -> None:
    radio = SimRadio(air, "dev-2", portal=("127.0.0.1", 8080))
    ap = await radio.start_ap(AP_NAME, "12345678")
    assert ap.portal_bind == ("127.0.0.1", 8080) and ap.secured
    assert await SimPhone(air).join(AP_NAME, "12345678", timeout=1) == "http://127.0.0.1:8080"
    await radio.close()
    assert air.aps() == [] and air.stations() == []
    with pytest.raises(RuntimeError, match="closed"):
        await radio.scan()


async def test_invalid_ap_settings(radio: SimRadio) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        await radio.start_ap("x" * 33)
    with pytest.raises(ValueError, match="passphrase"):
        await radio.start_ap(AP_NAME, "short")
    with pytest.raises(RuntimeError, match="start_ap"):
        await radio.publish_portal("127.0.0.1", 1)


@pytest.mark.parametrize("together", [True, False])
async def test_ap_and_station(air: Air, together: bool) -> None:
    radio = SimRadio(air, "dev-3", ap_and_station=together)
    assert radio.ap_and_station is together
    await radio.start_ap(AP_NAME)
    await radio.connect(b"Home", "hunter22", timeout=1)
    status = await radio.status()
    assert status.connected and status.ap_up is together
    assert (air.ap("dev-3") is not None) is together
    await radio.start_ap(AP_NAME)
    assert (await radio.status()).connected is together
    await radio.close()


async def test_make_radio(tmp_path: Path) -> None:
    radio = make_radio("sim", air=tmp_path / "air", device_id="dev-9", scan_delay=0.01)
    assert isinstance(radio, SimRadio) and await radio.scan() == []
    await radio.close()
    nm = make_radio("nm", interface="wlan0")  # built, not opened: no NetworkManager needed yet
    assert type(nm).__name__ == "NmRadio"
    with pytest.raises(ValueError, match="sim, nm"):
        make_radio("bluetooth")


# -- static IPv4 (Edgent's ip, mask, gw, dns, dns2)

HOME_STATIC = StaticIp("192.168.1.20", "255.255.255.0", "192.168.1.1", "1.1.1.1", "9.9.9.9")


@pytest.mark.parametrize(
    ("mask", "prefix"),
    [("255.255.255.0", 24), ("255.255.0.0", 16), ("255.255.255.252", 30), ("128.0.0.0", 1)],
)
def test_static_prefix(mask: str, prefix: int) -> None:
    assert StaticIp("10.0.0.2", mask, "10.0.0.1").prefix == prefix


@pytest.mark.parametrize(
    ("static", "problem"),
    [
        (HOME_STATIC, None),
        (StaticIp("10.0.0.2", "255.255.255.254", "10.0.0.3"), None),  # RFC 3021 /31
        (
            StaticIp("192.168.1.20", "255.0.255.0", "192.168.1.1"),
            "mask 255.0.255.0 is not a netmask",
        ),
        (StaticIp("192.168.1.20", "0.0.0.0", "192.168.1.1"), "mask 0.0.0.0 is not a netmask"),
        (
            StaticIp("192.168.1.20", "255.255.255.0", "10.0.0.1"),
            "gateway 10.0.0.1 is not in 192.168.1.0/24",
        ),
        (
            StaticIp("192.168.1.0", "255.255.255.0", "192.168.1.1"),
            "ip 192.168.1.0 is the network/broadcast address of 192.168.1.0/24",
        ),
        (
            StaticIp("192.168.1.255", "255.255.255.0", "192.168.1.1"),
            "ip 192.168.1.255 is the network/broadcast address of 192.168.1.0/24",
        ),
        (
            StaticIp("192.168.1.20", "255.255.255.0", "192.168.1.20"),
            "gateway 192.168.1.20 is the device's own ip",
        ),
        (StaticIp("127.0.0.5", "255.0.0.0", "127.0.0.1"), "ip 127.0.0.5 is a loopback address"),
        (
            StaticIp("224.0.0.5", "255.255.255.0", "224.0.0.1"),
            "ip 224.0.0.5 is a multicast address",
        ),
        (StaticIp("192.168.1.20", "255.255.255.0", ""), "a static ip needs a gateway"),
        (StaticIp("192.168.1.20", "", "192.168.1.1"), "a static ip needs a mask"),
        (
            StaticIp("192.168.1.x", "255.255.255.0", "192.168.1.1"),
            "ip '192.168.1.x' is not an IPv4 address",
        ),
        (
            StaticIp("192.168.1.20", "255.255.255.0", "192.168.1.1", dns="224.0.0.251"),
            "dns 224.0.0.251 is a multicast address",
        ),
    ],
)
def test_static_problem(static: StaticIp, problem: str | None) -> None:
    assert static.problem() == problem


def test_static_from_config() -> None:
    dhcp = DeviceConfig(ssid=b"Home", password="hunter22", token="t" * 32, host="h", port=80)
    assert StaticIp.from_config(dhcp) is None
    static = StaticIp.from_config(
        DeviceConfig(
            ssid=b"Home",
            password="hunter22",
            token="t" * 32,
            host="h",
            port=80,
            ip="192.168.1.20",
            mask="255.255.255.0",
            gw="192.168.1.1",
            dns="0.0.0.0",
        )
    )
    assert static == StaticIp("192.168.1.20", "255.255.255.0", "192.168.1.1")
    assert static.dns_servers == ("192.168.1.1",)  # no DNS given: the gateway's
    assert HOME_STATIC.dns_servers == ("1.1.1.1", "9.9.9.9")


async def test_connect_with_a_static_address(air: Air, radio: SimRadio) -> None:
    info = await radio.connect(b"Home", "hunter22", timeout=1, static=HOME_STATIC)
    assert info.ip == "192.168.1.20"
    assert (await radio.status()).station == info
    station = air.station("dev-1")
    assert station is not None and station.ip == "192.168.1.20"


async def test_an_unusable_static_address_is_700_and_changes_nothing(
    air: Air, radio: SimRadio
) -> None:
    joined = await radio.connect(b"Home", "hunter22", timeout=1)
    bad = StaticIp("192.168.1.20", "255.255.255.0", "10.0.0.1")
    error = await join_error(radio, b"Home", "hunter22", static=bad)
    assert error.failure is ConnectFailure.STATIC_INVALID and error.code == 700
    assert str(error) == "gateway 10.0.0.1 is not in 192.168.1.0/24"
    assert (await radio.status()).station == joined  # the working network was kept


# -- Ethernet


@pytest.fixture
async def wired(air: Air) -> AsyncIterator[SimRadio]:
    sim = SimRadio(air, "dev-2", "24:6f:28:aa:bb:cc", wired=True)
    yield sim
    await sim.close()


async def test_no_ethernet_interface(radio: SimRadio) -> None:
    assert radio.wired_mac is None
    with pytest.raises(ConnectError) as caught:
        await radio.connect_wired()
    assert caught.value.failure is ConnectFailure.OTHER
    assert str(caught.value) == "this device has no Ethernet interface"


async def test_wired_connects_by_dhcp_or_static(wired: SimRadio) -> None:
    assert wired.wired_mac == "24:6f:28:aa:bb:cf"  # station + 3, as an ESP32 numbers it
    info = await wired.connect_wired()
    assert info.ssid == b"" and info.ip.startswith("10.42.1.")
    assert (await wired.status()).station == info
    await wired.disconnect()
    assert not (await wired.status()).connected
    info = await wired.connect_wired(static=HOME_STATIC)
    assert info.ip == "192.168.1.20" and (await wired.status()).station == info
    with pytest.raises(ConnectError) as caught:
        await wired.connect_wired(static=StaticIp("192.168.1.20", "255.0.255.0", "192.168.1.1"))
    assert caught.value.code == 700


async def test_no_cable_is_721_and_unplugging_loses_the_link(wired: SimRadio) -> None:
    lost: list[str] = []
    wired.on_link_lost(lost.append)
    wired.unplug_cable()
    assert not wired.cable_plugged
    with pytest.raises(ConnectError) as caught:
        await wired.connect_wired()
    assert caught.value.failure is ConnectFailure.NO_CABLE and caught.value.code == 721
    wired.plug_cable()
    await wired.connect_wired()
    wired.unplug_cable()
    assert lost == ["the Ethernet cable was unplugged"]
    assert not (await wired.status()).connected


async def test_wifi_and_wired_replace_each_other(air: Air, wired: SimRadio) -> None:
    await wired.connect(b"Home", "hunter22", timeout=1)
    info = await wired.connect_wired()
    assert air.station("dev-2") is None and (await wired.status()).station == info
    joined = await wired.connect(b"Home", "hunter22", timeout=1)
    assert (await wired.status()).station == joined and joined.ssid == b"Home"


async def test_make_radio_wired(tmp_path: Path) -> None:
    radio = make_radio("sim", air=tmp_path / "air", device_id="dev-9", wired=True, cable=False)
    assert radio.wired_mac is not None
    with pytest.raises(ConnectError, match="no cable"):
        await radio.connect_wired()
    await radio.close()
