"""Unit tests for wifiprov.sim: the virtual air's files, change notification, and the sim phone."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wifiprov.sim.air import (
    AccessPoint,
    Air,
    AirError,
    Faults,
    Network,
    Station,
    default_directory,
    parse_address,
)
from wifiprov.sim.phone import JoinError, SimPhone
from wifiprov.sim.watch import FolderWatcher


@pytest.fixture
def air(tmp_path: Path) -> Iterator[Air]:
    with Air(tmp_path / "air") as shared:
        yield shared


def leftovers(air: Air) -> list[str]:
    return [p.name for p in air.directory.rglob("*") if p.is_file() and p.suffix != ".json"]


# -- networks: files and round trips


@settings(max_examples=30, deadline=None)
@given(ssid=st.binary(min_size=1, max_size=32), password=st.text(max_size=63))
def test_network_round_trip_with_any_ssid_bytes(ssid: bytes, password: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        air = Air(folder)
        added = air.add_network(ssid, password, rssi=-61, channel=11, hidden=True)
        assert Air(folder).network(added.id) == added
        assert Air(folder).networks() == [added]
        assert added.ssid == ssid and added.password == password
        assert leftovers(air) == []


def test_network_file_is_readable_json(air: Air) -> None:
    network = air.add_network("Home WiFi", "hunter22", faults=Faults(assoc_delay=1.5))
    data = json.loads((air.directory / "networks" / "home-wifi.json").read_text())
    assert network.id == "home-wifi"
    assert data["ssid_hex"] == b"Home WiFi".hex()
    assert data["ssid_text"] == "Home WiFi"
    assert data["security"] == "WPA2"
    assert data["bssid"].startswith("02:")
    assert data["faults"] == {
        "wrong_password": False,
        "not_found": False,
        "dhcp_fail": False,
        "assoc_delay": 1.5,
    }


def test_defaults_ids_and_duplicates(air: Air) -> None:
    first = air.add_network("Café", "")
    second = air.add_network("Café", "")  # same SSID again: a second access point
    assert (first.id, second.id) == ("cafe", "cafe-2")
    assert first.security == "OPEN" and first.open
    assert first.bssid != second.bssid
    assert air.add_network(b"\xff\xfe").id == "network"
    with pytest.raises(AirError, match="already"):
        air.add_network("Other", network_id="cafe")


def test_update_faults_and_remove(air: Air) -> None:
    air.add_network("Lab", "password1", network_id="lab")
    air.set_faults("lab", wrong_password=True)
    changed = air.set_faults("lab", assoc_delay=2.0)
    assert changed.faults == Faults(wrong_password=True, assoc_delay=2.0)
    assert air.update_network("lab", rssi=-80, ssid="Lab 2").ssid == b"Lab 2"
    assert air.network("lab") == Network(
        "lab", b"Lab 2", "WPA2", "password1", -80, 6, changed.bssid, False, changed.faults
    )
    air.update_network("lab", faults=Faults())
    assert air.network("lab").faults == Faults()  # type: ignore[union-attr]
    air.remove_network("lab")
    assert air.network("lab") is None
    with pytest.raises(AirError, match="no network 'lab'"):
        air.remove_network("lab")
    with pytest.raises(AirError, match="no network"):
        air.set_faults("lab", not_found=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ssid": b""}, "1 to 32 bytes"),
        ({"ssid": b"x" * 33}, "1 to 32 bytes"),
        ({"ssid": "ok", "security": "WPA9"}, "security"),
        ({"ssid": "ok", "rssi": 5}, "rssi"),
        ({"ssid": "ok", "channel": 0}, "channel"),
        ({"ssid": "ok", "bssid": "nope"}, "bssid"),
        ({"ssid": "ok", "network_id": "../x"}, "network id"),
    ],
)
def test_invalid_networks_are_refused(air: Air, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        air.add_network(**kwargs)  # type: ignore[arg-type]
    assert air.networks() == [] and leftovers(air) == []


def test_hand_written_and_broken_files(air: Air, caplog: pytest.LogCaptureFixture) -> None:
    folder = air.directory / "networks"
    (folder / "by-hand.json").write_text('{"ssid_text": "Typed", "password": "12345678"}')
    (folder / "broken.json").write_text('{"ssid_hex": ')
    (folder / "notes.txt").write_text("ignored")
    [network] = air.networks()
    assert (network.id, network.ssid, network.security) == ("by-hand", b"Typed", "WPA2")
    assert "broken.json" in caplog.text
    with pytest.raises(AirError, match="cannot read"):
        air.network("broken")


def test_aps_and_stations_round_trip(air: Air) -> None:
    ap = AccessPoint("dev-1", "Blynk Demo-W8FH", "02:00:00:00:00:02", portal=("::1", 8080))
    air.publish_ap(ap)
    assert air.aps() == [ap] and air.ap("dev-1") == ap
    assert ap.portal_url == "http://[::1]:8080"
    station = Station(
        "dev-1", "02:00:00:00:00:01", "10.42.0.7", b"\x00net", "02:aa:aa:aa:aa:aa", network="home"
    )
    air.record_station(station)
    assert air.stations() == [station] and air.station("dev-1") == station
    assert air.withdraw_ap("dev-1") and not air.withdraw_ap("dev-1")
    assert air.remove_station("dev-1") and air.station("dev-1") is None


# -- change notification


async def test_sees_a_change_made_by_another_process(air: Air) -> None:
    air.watch()
    script = (
        "import sys; from wifiprov.sim.air import Air; "
        "Air(sys.argv[1]).add_network(bytes.fromhex('ff00e29883'), 'password1')"
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(air.directory))
    while not air.networks():
        assert await air.wait_for_change(timeout=10), "no change seen"
    assert await child.wait() == 0
    [network] = air.networks()
    assert network.ssid == b"\xff\x00\xe2\x98\x83"


async def test_wait_times_out_without_a_change(air: Air) -> None:
    started = time.monotonic()
    assert not await air.wait_for_change(timeout=0.05)
    assert time.monotonic() - started < 1


async def test_a_change_before_the_wait_is_not_lost(air: Air) -> None:
    assert not await air.wait_for_change(timeout=0)  # now watching, on this loop
    probe = air.changes()
    air.add_network("Early")
    assert await probe.wait(2)  # the loop has read the event, while the air's feed did not wait
    assert await air.wait_for_change(timeout=0)
    assert not await air.wait_for_change(timeout=0.02)  # and it is reported once


async def test_every_feed_sees_each_change(air: Air) -> None:
    feeds = [air.changes(), air.changes()]
    waits = [asyncio.ensure_future(feed.wait(2)) for feed in feeds]
    await asyncio.sleep(0)
    air.add_network("Both")
    assert await asyncio.gather(*waits) == [True, True]
    feeds[0].close()
    with pytest.raises(RuntimeError):
        await feeds[0].wait(0)


async def test_temp_and_other_files_do_not_wake(air: Air) -> None:
    air.watch()
    (air.directory / "networks" / ".x.json.123.tmp").write_text("{}")
    (air.directory / "networks" / "notes.txt").write_text("x")
    assert not await air.wait_for_change(timeout=0.05)
    (air.directory / "networks" / "x.json").write_text("{}")
    assert await air.wait_for_change(timeout=2)


async def test_closing_the_watcher_wakes_waiters(tmp_path: Path) -> None:
    watcher = FolderWatcher([tmp_path])
    feed = watcher.subscribe()
    waiting = asyncio.ensure_future(feed.wait(5))
    await asyncio.sleep(0)
    watcher.close()
    assert await waiting is False
    with pytest.raises(RuntimeError):
        watcher.subscribe()


async def test_a_feed_for_some_entries_wakes_for_those_only(air: Air) -> None:
    air.add_network("Home", "password1", network_id="home")
    mine = air.changes(("networks", "home"), ("stations", "dev-1"))
    every_ap = air.changes(("aps", None))
    air.add_network("Other", "password1")
    air.record_station(
        Station("dev-2", "02:00:00:00:00:09", "10.42.0.9", b"Other", "02:00:00:00:00:01")
    )
    assert not await mine.wait(0.05)
    assert not await every_ap.wait(0)
    air.set_faults("home", not_found=True)
    assert await mine.wait(2)
    air.publish_ap(AccessPoint("dev-3", "Blynk Demo-AAAA", "02:00:00:00:00:03"))
    assert await every_ap.wait(2)
    assert not await mine.wait(0.05)
    air.record_station(
        Station("dev-1", "02:00:00:00:00:08", "10.42.0.8", b"Home", "02:00:00:00:00:01")
    )
    assert await mine.wait(2)
    with pytest.raises(AirError, match="no folder"):
        air.changes(("cables", None))


async def test_a_listing_rereads_only_what_changed(
    air: Air, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        air.publish_ap(AccessPoint(f"dev-{i}", f"Blynk Demo-{i:04d}", "02:00:00:00:00:03"))
    assert len(air.aps()) == 20  # the first listing reads the folder
    reads: list[str] = []
    real_get = Air._get

    def counting(self: Air, folder: str, name: str, parse: object) -> object:
        reads.append(f"{folder}/{name}")
        return real_get(self, folder, name, parse)  # type: ignore[arg-type]

    monkeypatch.setattr(Air, "_get", counting)
    assert len(air.aps()) == 20 and reads == []  # nothing changed: nothing read
    air.withdraw_ap("dev-3")
    air.publish_ap(AccessPoint("dev-7", "Blynk Renamed-0007", "02:00:00:00:00:03"))
    # another process's change is seen as well as this one's: the kernel's queue is read first
    script = (
        "import sys; from wifiprov.sim.air import Air, AccessPoint; "
        "Air(sys.argv[1]).publish_ap(AccessPoint('dev-99', 'Blynk Demo-0099', '02:00:00:00:00:04'))"
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(air.directory))
    assert await child.wait() == 0
    aps = {ap.device: ap.ssid for ap in air.aps()}
    assert sorted(reads) == ["aps/dev-3", "aps/dev-7", "aps/dev-99"]
    assert len(aps) == 20 and "dev-3" not in aps
    assert aps["dev-7"] == "Blynk Renamed-0007" and aps["dev-99"] == "Blynk Demo-0099"


async def test_a_listing_after_close_reads_the_folder(air: Air) -> None:
    air.publish_ap(AccessPoint("dev-1", "Blynk Demo-0001", "02:00:00:00:00:03"))
    assert len(air.aps()) == 1
    air.close()
    (air.directory / "aps" / "dev-1.json").unlink()  # nobody is listening any more
    assert air.aps() == []


# -- the sim phone


async def test_phone_joins_an_ap_once_its_portal_listens(air: Air) -> None:
    phone = SimPhone(air)
    air.publish_ap(AccessPoint("dev-1", "Blynk Demo-W8FH", "02:00:00:00:00:02"))
    assert [ap.ssid for ap in phone.list_aps()] == ["Blynk Demo-W8FH"]
    joining = asyncio.ensure_future(phone.join("Blynk Demo-W8FH", timeout=2))
    await asyncio.sleep(0.01)
    assert not joining.done()  # the AP is up, its portal not yet
    air.publish_ap(
        AccessPoint("dev-1", "Blynk Demo-W8FH", "02:00:00:00:00:02", portal=("127.0.0.1", 4321))
    )
    assert await joining == "http://127.0.0.1:4321"
    assert phone.joined() == air.ap("dev-1")
    station = air.station("phone")
    assert station is not None and station.ap == "dev-1" and station.ip.startswith("192.168.4.")
    phone.leave()
    assert phone.joined() is None


async def test_phone_join_failures(air: Air) -> None:
    phone = SimPhone(air)
    with pytest.raises(JoinError) as missing:
        await phone.join("Nobody", timeout=0.05)
    assert missing.value.reason == "not_found"
    air.publish_ap(AccessPoint("dev-2", "Quiet", "02:00:00:00:00:04"))
    with pytest.raises(JoinError) as quiet:
        await phone.join("Quiet", timeout=0.05)
    assert quiet.value.reason == "timeout"
    air.publish_ap(
        AccessPoint(
            "dev-3",
            "Locked",
            "02:00:00:00:00:06",
            portal=("127.0.0.1", 1),
            passphrase="secret-pass",
        )
    )
    with pytest.raises(JoinError) as locked:
        await phone.join("Locked", "wrong-pass", timeout=1)
    assert locked.value.reason == "invalid_credentials"
    assert await phone.join("Locked", "secret-pass", timeout=1) == "http://127.0.0.1:1"


def test_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WIFIPROV_AIR", str(tmp_path / "mine"))
    assert default_directory() == tmp_path / "mine"
    monkeypatch.delenv("WIFIPROV_AIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_directory() == tmp_path / "wifiprov" / "air"


@pytest.mark.parametrize(
    "text",
    ["host", ":80", "host:", "host:0", "host:65536", "host:²", "host:٨٠", "host:" + "9" * 5000],
)
def test_a_bad_address_is_refused_with_its_words(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_address(text)


def test_an_address_is_host_and_port() -> None:
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address("[::1]:443") == ("::1", 443)
