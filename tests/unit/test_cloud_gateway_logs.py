"""The gateway's log stays readable under a flood of bad logins: a throttled address is logged
once per block, and failed logins are counted into one summary line a minute."""

from __future__ import annotations

import logging

import pytest

from wifiprov.cloud.gateway import FailedLogins, LoginThrottle


def test_a_block_is_reported_once_even_with_logins_in_flight() -> None:
    throttle = LoginThrottle(limit=3, window=10)
    reports = [throttle.failed("10.0.0.9", now=float(i) / 10) for i in range(50)]
    assert reports.count(True) == 1 and reports.index(True) == 2
    assert throttle.blocked("10.0.0.9", 1.0)
    # After the window the address is free; a new block is reported again, once.
    later = [throttle.failed("10.0.0.9", now=100 + i) for i in range(10)]
    assert later.count(True) == 1


def test_failed_logins_are_summarised_not_logged_one_by_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "wifiprov.gateway")
    failed = FailedLogins(interval=60)
    failed.report(0.0)
    for i in range(500):
        failed.add(f"10.0.0.{i % 7}")
        failed.report(i * 0.1)
    assert caplog.records == []  # not a line each
    failed.report(61.0)
    (record,) = caplog.records
    assert "500 failed device login(s) (invalid token) in the last 61 s from 7 address(es)" in (
        record.getMessage()
    )
    failed.report(200.0)
    assert len(caplog.records) == 1  # nothing new: nothing logged
    failed.add("10.0.0.1")
    failed.report(201.0, force=True)  # the gateway stopping: said at once
    assert len(caplog.records) == 2 and "1 failed device login(s)" in caplog.records[1].getMessage()
