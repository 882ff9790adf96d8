"""LED patterns and the reset button, on a fake clock and gpiozero's mock pins."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero import LED, Button, Device
from gpiozero.pins.mock import MockFactory

from wifiprov.device.panel import (
    HELD_PATTERN,
    PATTERNS,
    RESET_ARMED_PATTERN,
    ButtonHold,
    Panel,
    led_at,
    pattern_for,
)


def test_patterns_follow_edgent() -> None:
    assert PATTERNS["WAIT_CONFIG"].steps == (0.05, 0.5) and PATTERNS["WAIT_CONFIG"].color == "blue"
    assert PATTERNS["CONFIGURING"].steps == (0.2, 0.2)
    assert PATTERNS["CONNECTING_NET"].steps == (0.05, 0.5)
    assert PATTERNS["CONNECTING_CLOUD"].steps == (0.1, 0.1)
    assert PATTERNS["ERROR"].steps == (0.08, 0.1, 0.08, 1.0)
    assert pattern_for("RUNNING", held=None).color == "green"
    assert pattern_for("RUNNING", held=2.9) is PATTERNS["RUNNING"]
    assert pattern_for("RUNNING", held=3.0) is HELD_PATTERN
    assert pattern_for("RUNNING", held=10.0) is RESET_ARMED_PATTERN
    assert pattern_for("SOMETHING_ELSE", held=None) is PATTERNS["ERROR"]


def test_led_edges_on_the_clock() -> None:
    p = PATTERNS["ERROR"]  # on 80 ms, off 100, on 80, off 1000
    assert led_at(p, 0.0) == (True, pytest.approx(0.08))
    assert led_at(p, 0.1)[0] is False
    assert led_at(p, 0.2)[0] is True
    assert led_at(p, 0.3)[0] is False
    assert led_at(p, 1.26 + 0.01)[0] is True  # the cycle repeats after 1.26 s
    on, wait = led_at(PATTERNS["WAIT_CONFIG"], 0.3)
    assert on is False and wait == pytest.approx(0.25)


def test_button_resets_on_release_after_ten_seconds() -> None:
    hold = ButtonHold()
    hold.press(100.0)
    assert hold.held(103.5) == pytest.approx(3.5)
    assert hold.release(109.9) is False  # released too early: nothing happens
    hold.press(200.0)
    assert hold.release(210.0) is True
    assert hold.release(211.0) is False  # a release without a press


async def test_panel_with_gpiozero_mock_pins() -> None:
    Device.pin_factory = MockFactory()
    try:
        led = LED(17)
        button = Button(27)  # pull-up, active low, as Edgent's BOARD_BUTTON_ACTIVE_LOW
        now = [0.0]
        resets: list[str] = []
        panel = Panel(led, button, lambda: resets.append("reset"), clock=lambda: now[0])
        panel.show("WAIT_CONFIG")
        runner = asyncio.create_task(panel.run())
        await asyncio.sleep(0.01)
        assert led.value == 1  # the blink starts with "on"
        button.pin.drive_low()  # press
        await asyncio.sleep(0.01)
        now[0] += 10.5
        button.pin.drive_high()  # release after 10.5 s on the agent's clock
        await asyncio.sleep(0.01)
        assert resets == ["reset"]
        button.pin.drive_low()
        await asyncio.sleep(0.01)
        now[0] += 2
        button.pin.drive_high()
        await asyncio.sleep(0.01)
        assert resets == ["reset"]  # a short press does nothing
        runner.cancel()
    finally:
        Device.pin_factory.close()
        Device.pin_factory = None
