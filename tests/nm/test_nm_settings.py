"""The pure half: key management from AP flags, settings dicts, reasons, ownership."""

from __future__ import annotations

import pytest
from dbus_fast import Variant

from wifiprov.linux import nm_settings as nms
from wifiprov.linux.nm_settings import AccessPoint, Failure

PSK, SAE, EAP, OWE = 0x100, 0x400, 0x200, 0x800


def ap(rsn: int = 0, wpa: int = 0, flags: int | None = None) -> AccessPoint:
    privacy = 1 if (rsn or wpa) else 0
    return AccessPoint(
        "/ap/1", b"x", "aa:bb:cc:dd:ee:ff", privacy if flags is None else flags, wpa, rsn, 80, 2412
    )


@pytest.mark.parametrize(
    ("access_point", "password", "identity", "eap", "expected"),
    [
        (ap(rsn=PSK), "pw123456", "", "", "wpa-psk"),
        (ap(wpa=PSK), "pw123456", "", "", "wpa-psk"),
        (ap(rsn=SAE), "pw123456", "", "", "sae"),
        (ap(rsn=PSK | SAE), "pw123456", "", "", "wpa-psk"),
        (ap(rsn=EAP), "pw", "alice", "peap", "wpa-eap"),
        (ap(rsn=EAP), "pw", "", "", "wpa-eap"),
        (ap(rsn=OWE), "", "", "", "owe"),
        (ap(flags=1), "abcde", "", "", "none"),
        (ap(), "", "", "", None),
        (None, "pw123456", "", "", "wpa-psk"),
        (None, "pw", "alice", "ttls", "wpa-eap"),
        (None, "", "", "", None),
    ],
)
def test_key_mgmt_for(
    access_point: AccessPoint | None, password: str, identity: str, eap: str, expected: str | None
) -> None:
    assert nms.key_mgmt_for(access_point, password, identity, eap) == expected


@pytest.mark.parametrize(
    ("reason", "associated", "failure"),
    [
        (7, False, Failure.AUTH),
        (7, True, Failure.AUTH),
        (8, True, Failure.AUTH),
        (10, True, Failure.AUTH),
        (11, True, Failure.AUTH),
        (11, False, Failure.NOT_FOUND),
        (53, False, Failure.NOT_FOUND),
        (5, True, Failure.NO_ADDRESS),
        (15, True, Failure.NO_ADDRESS),
        (16, True, Failure.NO_ADDRESS),
        (17, True, Failure.NO_ADDRESS),
        (36, True, Failure.OTHER),
        (0, False, Failure.OTHER),
    ],
)
def test_failure_for_reason(reason: int, associated: bool, failure: Failure) -> None:
    assert nms.failure_for_reason(reason, associated=associated) is failure


def test_reason_text_names_the_number() -> None:
    assert nms.reason_text(53) == "no network with that name in range (NM reason 53)"
    assert "(NM reason 999)" in nms.reason_text(999)


@pytest.mark.parametrize(
    ("password", "valid"),
    [
        ("1234567", False),
        ("12345678", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("a" * 64, True),
        ("é" * 4, True),
        ("é" * 3, False),
    ],
)
def test_psk_valid(password: str, valid: bool) -> None:
    assert nms.psk_valid(password) is valid


@pytest.mark.parametrize(
    ("freq", "channel"), [(2412, 1), (2437, 6), (2484, 14), (5180, 36), (5955, 1), (60000, 0)]
)
def test_channel_for(freq: int, channel: int) -> None:
    assert nms.channel_for(freq) == channel


def test_station_settings_are_typed_for_dbus() -> None:
    s = nms.station_settings(
        b"\x00\xffA:B",
        "pw",
        key_mgmt="wpa-eap",
        owner="device",
        uuid="u-1",
        interface="wlan0",
        identity="bob",
        eap="TTLS",
    )
    assert s["802-11-wireless"]["ssid"] == Variant("ay", b"\x00\xffA:B")
    assert s["802-1x"]["eap"] == Variant("as", ["ttls"])
    assert s["802-1x"]["phase2-auth"].value == "pap"
    assert s["user"]["data"] == Variant("a{ss}", {"org.wifiprov.owner": "device"})
    assert s["connection"]["id"].value == "wifiprov-\ufffd\ufffdA:B"


def test_owner_of_needs_both_marks() -> None:
    s = nms.plain(nms.station_settings(b"x", "", key_mgmt=None, owner="device", uuid="u"))
    assert nms.owner_of(s) == "device"
    assert nms.owner_of({**s, "connection": {**s["connection"], "id": "home"}}) is None
    assert nms.owner_of({k: v for k, v in s.items() if k != "user"}) is None
