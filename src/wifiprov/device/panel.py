"""The LED and the reset button: patterns and hold logic on the agent's clock.

Pure parts (``pattern_for``, ``led_at``, ``ButtonHold``) decide what the LED shows and when the
button resets the device; ``Panel`` only turns a gpiozero LED on and off at the computed edges and
feeds button edges in. Tests drive the pure parts with a fake clock and the Panel with gpiozero's
MockFactory pins.
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


@dataclass(frozen=True)
class Pattern:
    """Alternating on/off durations in seconds, starting with on; repeats."""

    color: str
    steps: tuple[float, ...]


def _wave(color: str, period: float) -> Pattern:
    # "Breathing" on an on/off LED: half the period on, half off.
    return Pattern(color, (period / 2, period / 2))


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
    the agent's monotonic clock. Button callbacks arrive on gpiozero's thread and are handed to
    the event loop.
    """

    def __init__(
        self,
        led: Any | None,
        button: Any | None,
        on_reset: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self.led, self.button, self.on_reset, self.clock = led, button, on_reset, clock
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

    async def run(self) -> None:
        """Drive the LED at its pattern's edges until cancelled (no fixed polling)."""
        while True:
            now = self.clock()
            held = self.hold.held(now)
            pattern = pattern_for(self.state, held)
            on, wait = led_at(pattern, now - self._since)
            if self.led is not None:
                self.led.value = 1 if on else 0
            if held is not None:
                # Wake when the held pattern changes (3 s, 10 s) as well as at LED edges.
                for mark in (HOLD_INDICATION, HOLD_RESET):
                    if held < mark:
                        wait = min(wait, mark - held)
                        break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
            except TimeoutError:
                pass
