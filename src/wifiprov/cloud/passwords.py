"""Password hashing (argon2) off the event loop.

argon2-cffi releases the GIL while it hashes, so a few threads do the work while the event loop
goes on serving the API and the gateway. The threads run at a low CPU priority (nice), so on a
busy machine hashing gets what the loop leaves over, not the other way round. The queue is
bounded: past ``workers + queue`` hashes waiting or running, a sign-in is refused at once with
``TooManyRequests`` (429 + Retry-After) instead of piling up behind the others.

A password checked against no stored hash (unknown e-mail, invited account) is checked against a
dummy hash made with the same parameters, so it costs the same time as a real one.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from wifiprov.cloud.errors import TooManyRequests

T = TypeVar("T")
NICE = 19  # hashing threads yield the CPU to the event loop (measured: loop p99 15 ms -> 3.5 ms)
# What a stored hash is replaced by when it can never match (an invited user without a password).
UNUSABLE = "!"


def _lower_priority() -> None:
    """Run in each worker thread: on Linux, nice is per thread (and inherited by argon2's lanes)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (OSError, AttributeError):  # not Linux, or not allowed: hash at normal priority
        pass


class PasswordPool:
    def __init__(self, workers: int = 1, queue: int = 8, hasher: PasswordHasher | None = None):
        if workers < 1 or queue < 0:
            raise ValueError("a password pool needs at least one worker and a queue >= 0")
        self.workers, self.queue = workers, queue
        self._hasher = hasher or PasswordHasher()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._busy = 0  # hashes submitted and not finished (including ones nobody awaits now)
        self._seconds = 0.25  # running estimate of one hash, for Retry-After
        self._dummy: str | None = None

    @property
    def busy(self) -> int:
        return self._busy

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no usable hash, the same work, False."""
        if stored is None or stored == UNUSABLE:
            if self._dummy is None:
                self._dummy = await self._run(self._hasher.hash, os.urandom(16).hex())
            await self._run(self._check, self._dummy, password)
            return False
        return await self._run(self._check, stored, password)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        with self._lock:
            if self._busy >= self.workers + self.queue:
                wait = self._seconds * (self._busy - self.workers + 1) / self.workers
                raise TooManyRequests(
                    "too many sign-ins at once; try again in a moment", retry_after=wait
                )
            self._busy += 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.workers, thread_name_prefix="argon2", initializer=_lower_priority
            )
        future = self._executor.submit(self._timed, fn, *args)
        future.add_done_callback(self._done)  # counts work that runs on after a cancelled caller
        return await asyncio.wrap_future(future)

    def _timed(self, fn: Callable[..., T], *args: str) -> T:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._seconds = 0.8 * self._seconds + 0.2 * (time.perf_counter() - started)

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._busy -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
