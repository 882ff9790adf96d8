"""The provisioner's BLE session (provisioner/ble.py) against our agent on the sim BLE air."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.support import provisioning_token
from tests.integration.test_device_ble import HOME, PASSWORD, Rig, rig  # noqa: F401 (fixture)
from wifiprov.device.machine import State
from wifiprov.provisioner.ble import BleDeviceSession
from wifiprov.provisioner.flow import ProvisioningFailed


async def test_provisioner_session_provisions_our_agent(rig: Rig) -> None:  # noqa: F811
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    events: list[tuple[str, str, dict[str, Any]]] = []
    phone = await rig.phone()
    session = BleDeviceSession(
        phone.link, lambda step, msg, **data: events.append((step, msg, data))
    )
    info = await session.info()
    assert info["name"] == "Acme Thermostat-W8FH"
    assert [n["ssid"] for n in await session.scan()] == [HOME, "Neighbour"]
    await session.configure(ssid=HOME, password=PASSWORD, token=request["token"])
    await rig.until_state(State.RUNNING)
    steps = [e[0] for e in events]
    assert steps[:3] == ["info", "scan", "config"] and ("progress", "connected") in [
        (e[0], e[1]) for e in events
    ]
    assert all(PASSWORD not in repr(e) and request["token"] not in repr(e) for e in events)


@pytest.mark.parametrize(
    ("ssid", "password", "token", "code"),
    [
        (HOME, "wrong password", None, 722),
        (HOME, PASSWORD, "y" * 32, 703),
    ],
)
async def test_provisioner_session_reports_the_devices_failure(
    rig: Rig,  # noqa: F811
    ssid: str,
    password: str,
    token: str | None,
    code: int,  # noqa: F811
) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    session = BleDeviceSession(phone.link)
    with pytest.raises(ProvisioningFailed) as caught:
        await session.configure(ssid=ssid, password=password, token=token or request["token"])
    assert caught.value.code == code


async def test_provisioner_session_short_token_is_refused(rig: Rig) -> None:  # noqa: F811
    phone = await rig.phone()
    session = BleDeviceSession(phone.link)
    with pytest.raises(ProvisioningFailed) as caught:
        await session.configure(ssid=HOME, password=PASSWORD, token="short")
    assert caught.value.code == 700 and "blynk: must be 32 characters" in caught.value.what
