"""The one session's busy rule (device/session.py), with a fake clock."""

from __future__ import annotations

from typing import Any

from wifiprov.device.session import HOLD, PORTAL, Session


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session() -> tuple[Session, Clock]:
    clock = Clock()
    agent: Any = None  # the busy rule never touches the agent
    return Session(agent, clock), clock


def test_free_session_is_taken_by_whoever_acts() -> None:
    s, _ = session()
    assert s.busy_for(PORTAL) is None and s.busy_for("ble:a") is None
    assert s.claim("ble:a") is None
    assert s.holder == "ble:a"


def test_other_transport_is_busy_until_the_holder_is_silent_for_hold() -> None:
    s, clock = session()
    s.claim("ble:a")
    busy = s.claim(PORTAL)
    assert busy is not None and "over Bluetooth" in busy and s.holder == "ble:a"
    assert s.busy_for("ble:b") is not None  # another central too
    clock.now += HOLD - 1
    assert s.claim(PORTAL) is not None
    s.seen("ble:a")  # the holder talks again: its hold starts over
    clock.now += HOLD - 1
    assert s.claim(PORTAL) is not None
    clock.now += 1
    assert s.claim(PORTAL) is None and s.holder == PORTAL
    busy = s.claim("ble:a")
    assert busy is not None and "over its access point (HTTP)" in busy


def test_seen_never_steals_and_release_frees_at_once() -> None:
    s, _ = session()
    s.claim(PORTAL)
    s.seen("ble:a")  # a read over BLE while the portal holds it
    assert s.holder == PORTAL
    s.release("ble:a")  # not the holder: nothing changes
    assert s.holder == PORTAL
    s.release(PORTAL)
    assert s.holder is None and s.claim("ble:a") is None
