"""The provisioner's BLE decisions that need no radio (provisioner/ble.py)."""

from __future__ import annotations

from typing import Any

import pytest

from wifiprov.provisioner.ble import online_already


@pytest.mark.parametrize(
    ("interfaces", "online"),
    [
        ([{"name": "eth", "status": "ready"}], True),  # Blynk's library, configure_network=False
        ([{"name": "eth", "status": "unavailable"}], False),
        ([{"name": "wifi", "status": "unavailable", "scan": 1}], False),
        ([{"name": "wifi", "scan": 1}, {"name": "eth", "status": "ready"}], False),
        ([], False),
    ],
)
def test_online_already(interfaces: list[dict[str, Any]], online: bool) -> None:
    assert online_already(interfaces) is online
