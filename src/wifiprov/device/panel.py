"""The LED and the reset button: patterns and hold logic on the agent's clock.

Pure parts (``pattern_for``, ``led_at``, ``level_at``, ``ButtonHold``) decide what the LED shows
and when the button resets the device; ``Panel`` only sets a gpiozero LED at the computed edges and
feeds button edges in. An on/off LED (gpiozero ``LED``) blinks every pattern; a PWM LED
(``PWMLED``) also "breathes" where Edgent does (RUNNING, and the button held past 3 s), with
Edgent-Arduino's wave. Tests drive the pure parts with a fake clock and the Panel with gpiozero's
MockFactory pins (``MockPWMPin`` for a PWM LED).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("wifiprov.device.panel")

HOLD_INDICATION = 3.0  # seconds: the LED starts signalling
HOLD_RESET = 10.0  # seconds: releasing after this long erases the configuration
PWM_MIN_WAIT = 0.02  # seconds: a PWM LED is updated at most 50 times a second


@dataclass(frozen=True)
class Pattern:
    """Alternating on/off durations in seconds, starting with on; repeats.

    ``breathe``: the period of Edgent's wave, which a PWM LED shows instead of ``steps``.
    """

    color: str
    steps: tuple[float, ...]
    breathe: float | None = None


def _wave(color: str, period: float) -> Pattern:
    # A PWM LED breathes; an on/off LED shows half the period on, half off.
    return Pattern(color, (period / 2, period / 2), breathe=period)


# Edgent's patterns (PROTOCOLS.md §2), by state name.
PATTERNS: dict[str, Pattern] = {
    "WAIT_CONFIG": Pattern("blue", (0.05, 0.5)),
    "RESET_CONFIG": Pattern("blue", (0.05, 0.5)),
    "CONFIGURING": Pattern("blue", (0.2, 0.2)),
    "CONNECTING_NET": Pattern("green", (0.05, 0.5)),
    "RETRY_WAIT": Pattern("green", (0.05, 0.5)),
    "CONNECTING_CLOUD": Pattern("green", (0.1, 0.1)),
    "RUNNING": _wave("green", 5.0),
    "IDLE": Pattern("yellow", (0.05, 2.0)),
    "ERROR": Pattern("red", (0.08, 0.1, 0.08, 1.0)),
}
HELD_PATTERN = _wave("white", 1.0)
RESET_ARMED_PATTERN = Pattern("white", (0.1, 0.1))


def pattern_for(state: str, held: float | None) -> Pattern:
    """What the LED shows in ``state`` with the button held for ``held`` seconds (or not held)."""
    if held is not None and held >= HOLD_RESET:
        return RESET_ARMED_PATTERN
    if held is not None and held >= HOLD_INDICATION:
        return HELD_PATTERN
    return PATTERNS.get(state, PATTERNS["ERROR"])


def led_at(pattern: Pattern, elapsed: float) -> tuple[bool, float]:
    """Whether the LED is on ``elapsed`` seconds into the pattern, and seconds to the next edge."""
    cycle = sum(pattern.steps)
    t = elapsed % cycle
    for i, step in enumerate(pattern.steps):
        if t < step:
            return i % 2 == 0, step - t
        t -= step
    return False, pattern.steps[0]  # unreachable but for float rounding


# Edgent's wave for a single-colour PWM LED (Edgent-Arduino src/indicator/IndicatorBase.h,
# ``waveLED``, through LedMono.h): a counter steps 0..255, one step every ``period / 256`` ms
# (integer milliseconds: a 5 s wave takes 256 x 19 ms = 4.864 s); brightness rises with the counter
# to 127 and falls back, is mapped onto 4..127 (BOARD_LED_MIN_BRIGHTNESS 4), doubled to 8..254 out
# of 255, then gamma-corrected with the firmware's table (GammaTable.cpp: the same values as
# round(255 * (i/255) ** 2.8)). The wave restarts at 0 (dark) when the pattern starts.
WAVE_STEPS = 256
WAVE_MIN_BRIGHTNESS = 4
GAMMA8 = tuple(int((i / 255) ** 2.8 * 255 + 0.5) for i in range(256))
_EPSILON = 1e-9  # a clock reading at an edge (up to float rounding) is past it


def wave_step(period: float) -> float:
    """Seconds per step of Edgent's wave of ``period`` seconds."""
    return (round(period * 1000) // WAVE_STEPS) / 1000


def wave_level(counter: int) -> float:
    """The PWM duty (0..1) Edgent's wave sets at step ``counter`` (0..255)."""
    rise = counter if counter < 128 else 255 - counter
    mapped = rise * (127 - WAVE_MIN_BRIGHTNESS) // 127 + WAVE_MIN_BRIGHTNESS
    return GAMMA8[min(255, mapped * 2)] / 255


def level_at(pattern: Pattern, elapsed: float, pwm: bool) -> tuple[float, float]:
    """The LED's level (0..1) ``elapsed`` seconds into ``pattern``, and seconds until it changes.

    An on/off LED (``pwm`` false), or a pattern that does not breathe, gives ``led_at``'s edges
    as 1.0 and 0.0; a PWM LED breathes where the pattern does.
    """
    if not pwm or pattern.breathe is None:
        on, wait = led_at(pattern, elapsed)
        return (1.0 if on else 0.0), wait
    step = wave_step(pattern.breathe)
    n = int((elapsed + _EPSILON) // step)
    level = wave_level(n % WAVE_STEPS)
    ahead = 1
    while ahead < WAVE_STEPS and wave_level((n + ahead) % WAVE_STEPS) == level:
        ahead += 1  # steps that leave the duty as it is wake nobody
    return level, max((n + ahead) * step - elapsed, 0.0)


class ButtonHold:
    """Press/release times in, "reset" out: Edgent's rule, acting on release after 10 s."""

    def __init__(self) -> None:
        self.pressed_at: float | None = None

    def press(self, now: float) -> None:
        self.pressed_at = now

    def release(self, now: float) -> bool:
        """True when this release should reset the configuration."""
        if self.pressed_at is None:
            return False
        held = now - self.pressed_at
        self.pressed_at = None
        return held >= HOLD_RESET

    def held(self, now: float) -> float | None:
        return None if self.pressed_at is None else now - self.pressed_at


class Panel:
    """Runs the LED on asyncio and turns button edges into a reset callback.

    ``led`` and ``button`` are gpiozero devices (or None on a board without them); ``clock`` is
    the agent's monotonic clock. ``pwm``: whether the LED takes levels between 0 and 1 (default:
    it does when it is a gpiozero PWM device, such as ``PWMLED``, which has ``pulse``). Button
    callbacks arrive on gpiozero's thread and are handed to the event loop.
    """

    def __init__(
        self,
        led: Any | None,
        button: Any | None,
        on_reset: Callable[[], None],
        clock: Callable[[], float],
        pwm: bool | None = None,
    ) -> None:
        self.led, self.button, self.on_reset, self.clock = led, button, on_reset, clock
        self.pwm = callable(getattr(led, "pulse", None)) if pwm is None else pwm
        self.hold = ButtonHold()
        self.state = "IDLE"
        self._since = clock()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if button is not None:
            button.when_pressed = lambda *_: self._loop.call_soon_threadsafe(self._pressed)
            button.when_released = lambda *_: self._loop.call_soon_threadsafe(self._released)

    def show(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._since = self.clock()
            self._changed.set()

    def _pressed(self) -> None:
        self.hold.press(self.clock())
        log.info("button pressed: hold it for %.0f seconds to reset the configuration", HOLD_RESET)
        self._changed.set()

    def _released(self) -> None:
        if self.hold.release(self.clock()):
            log.info(
                "button released after %.0f s or more: resetting the configuration", HOLD_RESET
            )
            self.on_reset()
        self._changed.set()

    def _elapsed(self, now: float, held: float | None) -> float:
        """Time into the current pattern: each starts from its beginning, as Edgent's does."""
        if held is not None and held >= HOLD_RESET:
            return held - HOLD_RESET
        if held is not None and held >= HOLD_INDICATION:
            return held - HOLD_INDICATION
        return now - self._since

    def update(self) -> float:
        """Set the LED for the clock's time now; seconds until it must be set again."""
        now = self.clock()
        held = self.hold.held(now)
        pattern = pattern_for(self.state, held)
        level, wait = level_at(pattern, self._elapsed(now, held), self.pwm)
        if self.led is not None:
            self.led.value = level if self.pwm else int(level)
        if self.pwm and pattern.breathe is not None:
            wait = max(wait, PWM_MIN_WAIT)
        if held is not None:
            # Wake when the held pattern changes (3 s, 10 s) as well as at LED edges.
            for mark in (HOLD_INDICATION, HOLD_RESET):
                if held < mark:
                    wait = min(wait, mark - held)
                    break
        return wait

    async def run(self) -> None:
        """Drive the LED at its pattern's edges until cancelled (no fixed polling)."""
        while True:
            wait = self.update()
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
            except TimeoutError:
                pass
