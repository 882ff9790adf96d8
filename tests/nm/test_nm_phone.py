"""NmPhoneWifi (the provisioner's laptop WiFi) against a mock NetworkManager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.nm.conftest import NM, NmMock
from wifiprov.provisioner.wifi.base import JoinFailed
from wifiprov.provisioner.wifi.nm import NmPhoneWifi, restore_after_interruption

DEVICE_AP = "Blynk Thermostat-W8FH"


def active_uuid(nm: NmMock) -> str | None:
    path = str(nm.device_prop("ActiveConnection"))
    if path == "/":
        return None
    props = nm.dbus.Interface(nm.bus.get_object(NM, path), "org.freedesktop.DBus.Properties")
    return str(props.Get(NM + ".Connection.Active", "Uuid"))


@pytest.fixture
def home(nm: NmMock) -> tuple[str, str]:
    nm.add_ap("d", DEVICE_AP.encode(), rsn=0)
    nm.add_ap("h", b"Home")
    return nm.add_foreign(b"Home", activate=True)


async def test_access_points(nm: NmMock, home: tuple[str, str], tmp_path: Path) -> None:
    nm.add_ap("x", b"Caf\xe9", rsn=0)
    nm.add_ap("hidden", b"")
    phone = NmPhoneWifi("wlan0", state_dir=tmp_path)
    try:
        assert await phone.access_points() == sorted([DEVICE_AP, "Home", "Caf\ufffd"])
    finally:
        await phone.close()


async def test_two_access_points_of_one_name_are_both_listed(
    nm: NmMock, home: tuple[str, str], tmp_path: Path
) -> None:
    nm.add_ap("twin", DEVICE_AP.encode(), rsn=0)  # another device whose code collides
    phone = NmPhoneWifi("wlan0", state_dir=tmp_path)
    try:
        assert await phone.access_points() == sorted([DEVICE_AP, DEVICE_AP, "Home"])
    finally:
        await phone.close()


async def test_join_and_leave_return_to_the_previous_network(
    nm: NmMock, home: tuple[str, str], tmp_path: Path
) -> None:
    home_path, home_uuid = home
    home_settings = nm.settings_of(home_path)
    phone = NmPhoneWifi("wlan0", state_dir=tmp_path)
    try:
        assert await phone.join(DEVICE_AP, "device pass") == "http://192.168.4.1"
        state = json.loads((tmp_path / "nm-return.json").read_text())
        assert state["previous"] == {"uuid": home_uuid, "id": "preconfigured"}
        assert active_uuid(nm) == state["temporary"][0]
        (added,) = nm.added()
        assert added["802-11-wireless"]["ssid"] == DEVICE_AP.encode()
        assert added["802-11-wireless-security"] == {"key-mgmt": "wpa-psk", "psk": "device pass"}
        assert added["ipv4"]["never-default"] is True
        calls = [str(c[1]) for c in nm.manager_mock.GetCalls()]
        assert "AddAndActivateConnection2" in calls  # volatile: NM forgets it when down
        await phone.leave()
    finally:
        await phone.close()
    assert active_uuid(nm) == home_uuid
    assert nm.connections() == [home_path]
    assert nm.settings_of(home_path) == home_settings
    assert not (tmp_path / "nm-return.json").exists()


async def test_restore_after_interruption(
    nm: NmMock, home: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home_path, home_uuid = home
    monkeypatch.setenv("WIFIPROV_CONFIG_DIR", str(tmp_path))
    phone = NmPhoneWifi("wlan0")
    await phone.join(DEVICE_AP)
    await phone.close()  # the process dies here: no leave()
    assert active_uuid(nm) != home_uuid
    assert await restore_after_interruption() is True
    assert active_uuid(nm) == home_uuid
    assert nm.connections() == [home_path]
    assert await restore_after_interruption() is False


async def test_failed_join_goes_back(nm: NmMock, home: tuple[str, str], tmp_path: Path) -> None:
    home_path, home_uuid = home
    phone = NmPhoneWifi("wlan0", state_dir=tmp_path, join_timeout=5)
    try:
        with pytest.raises(JoinFailed, match="could not join 'Blynk Gone-0000'"):
            await phone.join("Blynk Gone-0000")
    finally:
        await phone.close()
    assert active_uuid(nm) == home_uuid
    assert nm.connections() == [home_path]
    assert not (tmp_path / "nm-return.json").exists()


async def test_join_from_no_network(nm: NmMock, tmp_path: Path) -> None:
    nm.add_ap("d", DEVICE_AP.encode(), rsn=0)
    phone = NmPhoneWifi(state_dir=tmp_path)
    try:
        await phone.join(DEVICE_AP)
        assert nm.added()[0].get("802-11-wireless-security") is None
        await phone.leave()
    finally:
        await phone.close()
    assert nm.connections() == []
    assert active_uuid(nm) is None


async def test_without_volatile_profiles_leave_deletes_the_temporary_one(
    nm: NmMock, home: tuple[str, str], tmp_path: Path
) -> None:
    """NM < 1.16 has no AddAndActivateConnection2: a plain profile, deleted by leave()."""
    nm.manager_mock.AddMethod(
        NM,
        "AddAndActivateConnection2",
        "a{sa{sv}}ooa{sv}",
        "ooa{sv}",
        "raise dbus.exceptions.DBusException("
        "'no', name='org.freedesktop.DBus.Error.UnknownMethod')",
    )
    home_path, home_uuid = home
    phone = NmPhoneWifi("wlan0", state_dir=tmp_path)
    try:
        await phone.join(DEVICE_AP)
        assert "AddAndActivateConnection" in [str(c[1]) for c in nm.manager_mock.GetCalls()]
        assert len(nm.connections()) == 2
        await phone.leave()
    finally:
        await phone.close()
    assert active_uuid(nm) == home_uuid
    assert nm.connections() == [home_path]
