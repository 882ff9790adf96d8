"""``wifiprov demo --link mqtt``: the demo's device links to the demo cloud over Blynk's MQTT
API (the cloud listens for MQTT on a free loopback port); the provisioner's flow is the same,
over the SoftAP or over BLE."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_cli import run
from wifiprov.demo import run_demo


async def test_demo_over_mqtt_runs_the_whole_flow() -> None:
    code, out = await run("demo", "--link", "mqtt")
    assert code == 0, out
    found = re.search(r"MQTT 127\.0\.0\.1:(\d+)", out)
    assert found is not None and int(found.group(1)) > 0, out
    assert f"its cloud link is Blynk's MQTT API (127.0.0.1:{found.group(1)})" in out
    assert "the device is connected to the cloud" in out
    assert "the device answered on V2: 'brightness is 80'" in out
    assert out.strip().endswith("is online and answered 'brightness is 80'")


async def test_demo_says_its_default_link_is_the_blynk_protocol() -> None:
    lines: list[str] = []
    result = await run_demo(lines.append)
    assert result["link"] == "blynk"
    assert any("its cloud link is the Blynk protocol" in line for line in lines)
    assert not any("MQTT" in line for line in lines)


async def test_demo_over_ble_and_mqtt() -> None:
    lines: list[str] = []
    result = await run_demo(lines.append, ble=True, link="mqtt")
    assert result["V2"] == "brightness is 80" and result["link"] == "mqtt"
    assert any("over Bluetooth LE (Blynk.Inject)" in line for line in lines)
    assert any("its cloud link is Blynk's MQTT API" in line for line in lines)


async def test_demo_refuses_an_unknown_link() -> None:
    code, out = await run("demo", "--link", "coap")
    assert code == 1 and "--link must be one of blynk, mqtt" in out
    with pytest.raises(ValueError, match="--link"):
        await run_demo(lambda line: None, link="coap")
