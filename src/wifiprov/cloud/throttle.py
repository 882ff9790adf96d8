"""Backoff for failed attempts, per key (a client address, an account's e-mail).

Each attempt counts as a failure when it starts (so a burst of concurrent attempts is counted
before any of them finishes) and a success takes it back. Past ``free`` failures, every further
attempt blocks the key for twice as long as the one before: ``base``, ``2 base``, ... up to
``cap`` seconds. A key quiet for ``forget`` seconds is forgotten. Each block is logged once, when
it starts; attempts refused during it are not logged. In memory, per process; at most
``max_keys`` keys (the least recently seen go first).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("wifiprov.cloud.throttle")


@dataclass
class _Entry:
    failures: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class Backoff:
    def __init__(
        self,
        what: str,
        *,
        free: int,
        base: float = 1.0,
        cap: float = 900.0,
        forget: float = 3600.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.free, self.base, self.cap = what, free, base, cap
        self.forget, self.max_keys, self.clock = forget, max_keys, clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.blocks = 0  # blocks started (each logged once)

    def _entry(self, key: str, now: float) -> _Entry:
        entry = self._entries.get(key)
        if entry is None or now - entry.last > self.forget and now >= entry.blocked_until:
            entry = _Entry()
            self._entries[key] = entry
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return entry

    def blocked(self, key: str) -> float:
        """Seconds ``key`` must still wait (0: it may try now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - self.clock())

    def attempt(self, key: str) -> None:
        """Count an attempt as a failure up front; past ``free`` failures, block the key."""
        now = self.clock()
        entry = self._entry(key, now)
        entry.failures += 1
        entry.last = now
        over = entry.failures - self.free
        if over > 0:
            seconds = min(self.cap, self.base * 2 ** min(over - 1, 30))
            entry.blocked_until = now + seconds
            self.blocks += 1
            log.warning(
                "%s %s blocked for %.0f s after %d failed sign-ins",
                self.what,
                key,
                seconds,
                entry.failures,
            )

    def succeeded(self, key: str, *, forget: bool) -> None:
        """Take back the attempt's failure; ``forget`` also clears the key's past failures."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if forget:
            del self._entries[key]
        else:
            entry.failures = max(0, entry.failures - 1)
