"""LED patterns and the reset button, on a fake clock and gpiozero's mock pins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from gpiozero import LED, PWMLED, Button, Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from wifiprov.device.panel import (
    GAMMA8,
    HELD_PATTERN,
    PATTERNS,
    RESET_ARMED_PATTERN,
    ButtonHold,
    Panel,
    led_at,
    level_at,
    pattern_for,
    wave_level,
    wave_step,
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


# --- breathing on a PWM LED (Edgent-Arduino src/indicator/IndicatorBase.h, waveLED) -------------

STEP = 0.019  # Edgent: 5000 ms / 256 steps, in integer milliseconds
CYCLE = 256 * STEP  # 4.864 s


def test_the_gamma_table_is_edgents() -> None:
    # Spot values of Edgent-Arduino's src/indicator/GammaTable.cpp
    assert GAMMA8[:28] == (0,) * 28 and GAMMA8[28] == 1 and GAMMA8[49] == 3
    assert GAMMA8[130] == 39 and GAMMA8[200] == 129 and GAMMA8[254] == 252 and GAMMA8[255] == 255


def test_edgents_wave_rises_and_falls_over_256_steps() -> None:
    assert wave_step(5.0) == STEP and wave_step(1.0) == 0.003
    levels = [wave_level(c) for c in range(256)]
    assert levels[0] == 0.0 and levels[64] == 39 / 255  # mapped 65, doubled 130
    assert levels[127] == levels[128] == 252 / 255  # the top: 127 -> 254 -> 252
    assert levels[:128] == sorted(levels[:128])  # rising ...
    assert levels[128:] == levels[127::-1]  # ... and falling back the same way
    assert min(levels) == 0.0 and max(levels) == 252 / 255


def test_running_breathes_on_a_pwm_led_and_blinks_on_an_on_off_one() -> None:
    running = PATTERNS["RUNNING"]
    assert running.breathe == 5.0
    assert level_at(running, 0.0, pwm=True) == (0.0, pytest.approx(11 * STEP))  # dark 11 steps
    assert level_at(running, 11 * STEP, pwm=True)[0] == 1 / 255
    assert level_at(running, 64 * STEP + 0.005, pwm=True)[0] == 39 / 255
    assert level_at(running, 127 * STEP, pwm=True)[0] == 252 / 255
    assert level_at(running, CYCLE - 0.001, pwm=True)[0] == 0.0
    assert level_at(running, CYCLE + 64 * STEP, pwm=True)[0] == 39 / 255  # it repeats
    for step in range(256):  # the level at every step, with the time to the next change
        level, wait = level_at(running, step * STEP, pwm=True)
        assert level == wave_level(step)
        assert level_at(running, step * STEP + wait, pwm=True)[0] != level or wait >= STEP
    # An on/off LED keeps the square wave: 2.5 s on, 2.5 s off.
    assert level_at(running, 0.0, pwm=False) == (1.0, pytest.approx(2.5))
    assert level_at(running, 3.0, pwm=False) == (0.0, pytest.approx(2.0))
    # Blinks stay blinks on a PWM LED, at full brightness.
    assert level_at(PATTERNS["WAIT_CONFIG"], 0.0, pwm=True) == (1.0, pytest.approx(0.05))
    assert level_at(PATTERNS["WAIT_CONFIG"], 0.1, pwm=True)[0] == 0.0
    assert level_at(RESET_ARMED_PATTERN, 0.0, pwm=True) == (1.0, pytest.approx(0.1))
    assert HELD_PATTERN.breathe == 1.0  # Edgent-Arduino: WAVE_WHITE_FAST, 1000 ms


@pytest.fixture
def pwm_pins() -> Iterator[None]:
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    try:
        yield
    finally:
        Device.pin_factory.close()
        Device.pin_factory = None


async def test_panel_breathes_a_pwm_led_on_the_agents_clock(pwm_pins: None) -> None:
    led = PWMLED(17)
    now = [100.0]
    panel = Panel(led, None, lambda: None, clock=lambda: now[0])
    assert panel.pwm
    panel.show("RUNNING")
    seen = []
    for t in (0.0, 11 * STEP, 64 * STEP, 127 * STEP, 200 * STEP, CYCLE + 64 * STEP):
        now[0] = 100.0 + t
        panel.update()
        seen.append(led.pin.state)
    assert seen == [0.0, 1 / 255, 39 / 255, 252 / 255, wave_level(200), 39 / 255]
    now[0] = 100.0 + 5 * STEP
    assert panel.update() >= 0.02  # never more than 50 updates a second

    panel.show("CONFIGURING")  # a blink: full on, then off
    panel.update()
    assert led.pin.state == 1.0
    now[0] += 0.25
    panel.update()
    assert led.pin.state == 0.0


async def test_the_held_button_breathes_white_from_three_seconds(pwm_pins: None) -> None:
    led, button = PWMLED(17), Button(27)
    now = [0.0]
    panel = Panel(led, button, lambda: None, clock=lambda: now[0])
    panel.show("RUNNING")
    panel.hold.press(now[0])
    now[0] = 3.0
    panel.update()
    assert led.pin.state == 0.0  # the held wave starts from its beginning, as Edgent's
    now[0] = 3.0 + 127 * 0.003
    panel.update()
    assert led.pin.state == 252 / 255
    now[0] = 10.0
    panel.update()
    assert led.pin.state == 1.0  # armed: white 100/100, full on


async def test_panel_keeps_square_waves_on_an_on_off_led() -> None:
    Device.pin_factory = MockFactory()
    try:
        led = LED(17)
        now = [0.0]
        panel = Panel(led, None, lambda: None, clock=lambda: now[0])
        assert not panel.pwm
        panel.show("RUNNING")
        states = []
        for t in (0.0, 2.4, 2.6, 4.9, 5.1):
            now[0] = t
            panel.update()
            states.append(led.value)
        assert states == [1, 1, 0, 0, 1]
    finally:
        Device.pin_factory.close()
        Device.pin_factory = None


async def test_panel_run_drives_a_pwm_led_in_real_time(pwm_pins: None) -> None:
    led = PWMLED(17)
    shift = [0.0]
    panel = Panel(led, None, lambda: None, clock=lambda: time.monotonic() + shift[0])
    panel.show("RUNNING")
    shift[0] = 1.2  # into the wave's rise, where the level changes at every step
    runner = asyncio.create_task(panel.run())
    try:
        await asyncio.sleep(0.6)
    finally:
        runner.cancel()
    values = [s.state for s in led.pin.states]
    between = {v for v in values if 0 < v < 1}
    assert len(between) >= 5, values  # levels between off and on, not a blink
    gaps = [s.timestamp for s in led.pin.states[2:]]  # a mock pin's time since its last change
    assert min(gaps) >= 0.015, gaps  # paced: 50 updates a second at most
