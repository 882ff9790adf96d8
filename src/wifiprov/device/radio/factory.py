"""Which radio backend to build: kept apart from ``base`` because the backends import ``base``."""

from __future__ import annotations

from typing import Any

from wifiprov.device.radio.base import Radio

RADIO_KINDS = ("sim", "nm")


def make_radio(kind: str, **options: Any) -> Radio:
    """The radio backend ``kind`` built with ``options``.

    ``sim``: ``SimRadio`` options (``air`` may be an ``Air`` or its folder, ``device_id``, ...).
    ``nm``: ``NmRadio`` options (``interface``, ``takeover``, ``country``, ``snippet_dir``, ...);
    ``await radio.open()`` reaches NetworkManager and learns the MAC before the agent starts."""
    if kind == "sim":
        from wifiprov.device.radio.sim import SimRadio

        return SimRadio(**options)
    if kind == "nm":
        from wifiprov.device.radio.nm import NmRadio

        return NmRadio(**options)
    raise ValueError(f"unknown radio {kind!r}: choose one of {', '.join(RADIO_KINDS)}")
