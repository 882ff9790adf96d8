"""Blynk's time API for devices: what the cloud answers a device asking for the time and its
zone (Blynk protocol INTERNAL ``utc``; MQTT ``get/utc/all/json``)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import cache
from pathlib import Path
from typing import Any


def utc_reply(what: str, now: float, zone_name: str) -> list[Any] | None:
    """The answer to INTERNAL ``utc\0<what>`` as Blynk's server gives it (the C++ library's
    TimeAndLocation example and blynk-library-python's ``05_utc_and_timezone`` read these):
    ``time`` ms since the epoch; ``iso`` local ISO-8601 time with its offset; ``tz`` standard
    and DST offsets in minutes; ``tz_name``; ``tz_rule`` the POSIX TZ rule; ``dst_next`` up to
    two coming offset changes (epoch seconds, new offset in minutes). None for anything else."""
    zone = zoneinfo.ZoneInfo(zone_name)
    local = dt.datetime.fromtimestamp(now, zone)
    if what == "time":
        return ["time", int(now * 1000)]
    if what == "iso":
        return ["iso", local.replace(microsecond=0).isoformat()]
    if what == "tz":
        offset, dst = _minutes(local.utcoffset()), _minutes(local.dst())
        return ["tz", offset - dst, dst]
    if what == "tz_name":
        return ["tz_name", zone_name]
    if what == "tz_rule":
        return ["tz_rule", _posix_rule(zone_name)]
    if what == "dst_next":
        return ["dst_next", *[x for change in _offset_changes(zone, now, 2) for x in change]]
    return None


def _minutes(delta: dt.timedelta | None) -> int:
    return int((delta or dt.timedelta()).total_seconds() // 60)


@cache
def _posix_rule(zone_name: str) -> str:
    """The POSIX TZ rule: the footer line of the zone's TZif (version 2+) file."""
    for root in zoneinfo.TZPATH:
        try:
            data = (Path(root) / zone_name).read_bytes()
        except (OSError, ValueError):
            continue
        footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return footer.decode("ascii", "replace")
    return "UTC0" if zone_name in ("UTC", "Etc/UTC") else ""


def _offset_changes(zone: zoneinfo.ZoneInfo, now: float, count: int) -> list[tuple[int, int]]:
    """The next ``count`` UTC-offset changes within two years: (epoch seconds, offset minutes)."""

    def offset(t: float) -> int:
        return _minutes(dt.datetime.fromtimestamp(t, zone).utcoffset())

    found: list[tuple[int, int]] = []
    t, current = float(int(now)), offset(now)
    day = 86400.0
    while len(found) < count and t < now + 2 * 365 * day:
        if offset(t + day) == current:
            t += day
            continue
        lo, hi = t, t + day  # the change is in (lo, hi]: bisect to the second
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if offset(mid) == current else (lo, mid)
        current = offset(hi)
        found.append((int(hi), current))
        t = hi
    return found


def utc_json(now: float, zone_name: str) -> dict[str, Any]:
    """The JSON Blynk's MQTT API answers ``get/utc/all/json`` with (on
    ``downlink/utc/all/json``): ``tz_name``, ``tz_rule`` (POSIX), ``tz_offset`` (standard
    offset, minutes), ``dst_offset`` (minutes added now), ``time`` (ms since the epoch),
    ``iso8601`` (local time with its offset)."""
    zone = zoneinfo.ZoneInfo(zone_name)
    local = dt.datetime.fromtimestamp(now, zone)
    offset, dst = _minutes(local.utcoffset()), _minutes(local.dst())
    return {
        "tz_name": zone_name,
        "tz_rule": _posix_rule(zone_name),
        "tz_offset": offset - dst,
        "dst_offset": dst,
        "time": int(now * 1000),
        "iso8601": local.replace(microsecond=0).isoformat(),
    }
