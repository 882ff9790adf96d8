"""Backoff per key (sign-in throttling) and the password pool's bounded queue (issue 11.7)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from argon2 import PasswordHasher

from wifiprov.cloud.errors import TooManyRequests
from wifiprov.cloud.passwords import UNUSABLE, PasswordPool
from wifiprov.cloud.throttle import Backoff

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_cap_and_is_logged_once_per_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    b = Backoff("address", free=2, base=1, cap=4, clock=clock)
    waits = []
    for _ in range(6):
        assert b.blocked("a") == 0
        b.attempt("a")
        waits.append(b.blocked("a"))
        clock.now += waits[-1]
    assert waits == [0, 0, 1, 2, 4, 4]
    assert b.blocks == 4
    blocked_lines = [r for r in caplog.records if "blocked" in r.getMessage()]
    assert len(blocked_lines) == 4 and all(r.levelno == logging.WARNING for r in blocked_lines)
    assert b.blocked("b") == 0  # other keys are not slowed


def test_success_takes_back_the_attempt_or_forgets_the_key() -> None:
    clock = Clock()
    b = Backoff("account", free=1, clock=clock)
    b.attempt("a")
    b.succeeded("a", forget=False)
    b.attempt("a")
    assert b.blocked("a") == 0
    b.attempt("a")
    assert b.blocked("a") == 1
    b.succeeded("a", forget=True)
    assert b.blocked("a") == 0


def test_quiet_keys_are_forgotten_and_memory_is_bounded() -> None:
    clock = Clock()
    b = Backoff("address", free=1, forget=60, max_keys=3, clock=clock)
    b.attempt("a")
    clock.now += 61
    b.attempt("a")
    assert b.blocked("a") == 0
    for key in "bcde":
        b.attempt(key)
    assert len(b._entries) == 3


async def test_pool_refuses_past_its_queue_with_retry_after() -> None:
    pool = PasswordPool(workers=1, queue=1, hasher=FAST)
    stored = FAST.hash("password")
    results = await asyncio.gather(
        *(pool.verify(stored, "wrong") for _ in range(5)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, TooManyRequests)]
    assert results.count(False) == 2 and len(refused) == 3
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert await pool.verify(stored, "password") is True
    assert await pool.verify(None, "password") is False
    assert await pool.verify(UNUSABLE, "password") is False
    assert pool.busy == 0
    pool.close()
