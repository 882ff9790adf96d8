"""The provisioner's BLE session (provisioner/ble.py) against our agent on the sim BLE air."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.support import provisioning_token
from tests.integration.test_device_ble import (  # noqa: F401 (fixtures)
    HOME,
    PASSWORD,
    Rig,
    ble_code,
    db_url,
    rig,
)
from wifiprov.demo import run_demo
from wifiprov.device.machine import State
from wifiprov.provisioner.ble import BleDeviceSession, BleProvisioner, SimBleCentral
from wifiprov.provisioner.client import CloudClient
from wifiprov.provisioner.flow import Choices, Event, ProvisioningFailed
from wifiprov.sim.ble import SimCentral


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
    assert steps[:3] == ["info", "scan", "config"]
    states = [e[2].get("state") for e in events if e[0] == "progress"]
    assert states == ["connecting_net", "connecting_cloud", None, "connected"]
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


class LocalCloud(CloudClient):
    """The test cloud names itself cloud.test, which the sim air's DNS does not know."""

    async def provisioning_token(self, template_id: str) -> dict[str, Any]:
        return {**await super().provisioning_token(template_id), "host": "127.0.0.1"}


async def test_ble_provisioner_whole_flow_names_the_device(rig: Rig) -> None:  # noqa: F811
    events: list[Event] = []
    async with LocalCloud(rig.cloud.http_url, rig.cloud.owner_token) as client:
        flow = BleProvisioner(
            client, SimBleCentral(SimCentral(rig.ble)), events.append, online_timeout=20
        )
        device = await flow.run(
            Choices(
                template=rig.agent.config.template_id,
                ssid=HOME,
                password=PASSWORD,
                name="Hall thermostat",
            )
        )
    assert device["name"] == "Hall thermostat" and device["online"]
    find = next(e for e in events if e.step == "find")
    assert find.data["device"] == "Acme Thermostat-W8FH" and find.data["rssi"] == -50
    assert [e.step for e in events][-1] == "done"
    assert all(PASSWORD not in repr(e) for e in events)


async def test_ble_provisioner_finds_nothing_of_another_template(rig: Rig) -> None:  # noqa: F811
    async with CloudClient(rig.cloud.http_url, rig.cloud.owner_token) as client:
        flow = BleProvisioner(client, SimBleCentral(SimCentral(rig.ble)), lambda e: None)
        with pytest.raises(ProvisioningFailed) as caught:
            await flow.run(
                Choices(
                    template=rig.agent.config.template_id,
                    device="Acme Other-0000",
                    ssid=HOME,
                    password=PASSWORD,
                    name="x",
                )
            )
    assert "in setup mode over Bluetooth" in caught.value.what
    assert "Acme Thermostat-W8FH (-50 dBm)" in caught.value.what


@pytest.mark.parametrize("fail", [None, "wrong-password"])
async def test_demo_over_ble(fail: str | None) -> None:
    lines: list[str] = []
    result = await run_demo(lines.append, fail=fail, ble=True)
    assert result["V2"] == "brightness is 80"
    assert any("over Bluetooth LE (Blynk.Inject)" in line for line in lines)
    if fail:
        assert any("FAILED (error 722)" in line for line in lines)


async def test_token_only_to_a_device_without_ethernet_is_refused(rig: Rig) -> None:  # noqa: F811
    phone = await rig.phone()
    session = BleDeviceSession(phone.link)
    with pytest.raises(ProvisioningFailed) as caught:
        await session.configure(ssid=None, password="", token="z" * 32)
    assert caught.value.code == 700 and "no Ethernet interface" in caught.value.what


@pytest.mark.parametrize("ble_code", ["482913"])
async def test_ble_provisioner_sends_the_label_code(rig: Rig, ble_code: str) -> None:  # noqa: F811
    choices = Choices(template=rig.agent.config.template_id, ssid=HOME, password=PASSWORD, name="x")
    async with LocalCloud(rig.cloud.http_url, rig.cloud.owner_token) as client:
        central = SimBleCentral(SimCentral(rig.ble))
        with pytest.raises(ProvisioningFailed) as caught:  # required, and nobody to ask
            await BleProvisioner(client, central, lambda e: None).run(choices)
        assert "--ble-code" in caught.value.todo
        with pytest.raises(ProvisioningFailed) as caught:
            await BleProvisioner(client, central, lambda e: None, code="111111").run(choices)
        assert "does not match" in caught.value.what
        device = await BleProvisioner(
            client, central, lambda e: None, online_timeout=20, code=ble_code
        ).run(choices)
    assert device["online"]
