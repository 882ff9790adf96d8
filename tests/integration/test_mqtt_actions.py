"""Ping and reboot from the cloud (Blynk's device menu) and QoS 1 downlinks: paho acknowledging
a ping by itself, a raw client (wire.mqtt) that withholds its PUBACK, a client's Receive Maximum,
clean sessions that redeliver nothing, and a Blynk-protocol device told to reboot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.conftest import RunningCloud
from tests.integration.support import online_device, provisioning_token, until
from tests.integration.test_cli_objects import Terminal
from tests.integration.test_mqtt import (
    PahoDevice,
    RawMqtt,
    claimed,
    info,
    mq,  # noqa: F401 (the fixture)
    mqtt_port,
    online_mqtt,
    thermostat,
)
from wifiprov.wire import mqtt
from wifiprov.wire.blynk import Command
from wifiprov.wire.mqtt import MQTT_5, MQTT_311


async def ping(rc: RunningCloud, device_id: int, timeout: float = 5) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with rc.client(rc.owner_token) as api:
        reply = await api.post(f"/api/devices/{device_id}/ping", params={"timeout": timeout})
        return reply.status_code, reply.json()


@pytest.mark.parametrize("version", [paho.MQTTv311, paho.MQTTv5])
async def test_paho_acknowledges_a_ping_by_itself(mq: RunningCloud, version: int) -> None:  # noqa: F811
    """Blynk's samples subscribe downlink/# at QoS 0 and rely on the client library's PUBACK:
    the ping goes at QoS 1 all the same."""
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    dev = PahoDevice(request["token"], version)
    assert not (await dev.connect(mqtt_port(mq))).is_failure
    try:
        await dev.subscribe("downlink/#", qos=0)
        await dev.publish("info/mcu", info(template_id))  # QoS 1: returns on its PUBACK
        device_id = (await claimed(mq, request["id"]))["device_id"]
        status, body = await ping(mq, device_id)
        assert status == 200, body
        assert body["acked"] is True and body["delivered"] is True
        assert body["rtt_ms"] >= 0 and "acknowledged" in body["message"]
        assert body["sent"] == "downlink/ping (QoS 1)"
        assert await dev.receive() == ("downlink/ping", b"")
    finally:
        dev.stop()


async def test_a_ping_the_device_never_acknowledges(mq: RunningCloud) -> None:  # noqa: F811
    device_id, _, _, dev = await online_mqtt(mq)
    status, body = await ping(mq, device_id, timeout=0.3)
    assert status == 200 and body["delivered"] is True
    assert body["acked"] is False and body["rtt_ms"] is None
    assert "did not acknowledge it within 0.3 s" in body["message"]
    sent = await dev.recv()
    assert isinstance(sent, mqtt.Publish)
    assert (sent.topic, sent.payload, sent.qos, sent.dup) == ("downlink/ping", b"", 1, False)
    # Not resent on the live connection (MQTT 5 forbids it; 3.1.1 resends only on a resumed
    # session): the next packet is the answer to our PINGREQ.
    dev.send(mqtt.PINGREQ)
    assert await dev.recv() == mqtt.PingResp()
    # A late PUBACK is taken (and frees its identifier); the next ping gets another one.
    dev.send(mqtt.encode_puback(sent.packet_id, MQTT_311))
    task = asyncio.create_task(ping(mq, device_id, timeout=10))
    second = await dev.recv()
    assert isinstance(second, mqtt.Publish) and second.topic == "downlink/ping"
    assert second.packet_id != sent.packet_id
    # The connection closes before the acknowledgement: said at once, not after the timeout.
    dev.close()
    status, body = await task
    assert status == 200 and body["acked"] is False
    assert "closed before the device acknowledged" in body["message"]


async def test_ping_and_reboot_refusals(mq: RunningCloud) -> None:  # noqa: F811
    device_id, _, _, dev = await online_mqtt(mq, MQTT_5)
    dev.send(mqtt.encode_unsubscribe(3, ["downlink/#"], MQTT_5))
    assert await dev.recv() == mqtt.UnsubAck(3, [0])
    status, body = await ping(mq, device_id)
    assert status == 409 and "has not subscribed to downlink/ping" in body["message"]
    async with mq.client(mq.owner_token) as api:
        reply = await api.post(f"/api/devices/{device_id}/reboot")
        assert reply.status_code == 409
        assert "has not subscribed to downlink/reboot" in reply.json()["message"]
        dev.send(mqtt.encode_disconnect(MQTT_5))
        assert await dev.closed()
        reply = await api.post(f"/api/devices/{device_id}/reboot")
        assert reply.status_code == 409 and "offline" in reply.json()["message"]
        assert (await api.post(f"/api/devices/{device_id}/ping")).status_code == 409
        for bad in ("0", "31", "x"):
            reply = await api.post(f"/api/devices/{device_id}/ping", params={"timeout": bad})
            assert reply.status_code == 422, bad
        assert (await api.post("/api/devices/999999/ping")).status_code == 404


async def test_reboot_reaches_an_mqtt_device_and_a_blynk_protocol_device(
    mq: RunningCloud,  # noqa: F811
) -> None:
    device_id, _, _, dev = await online_mqtt(mq)
    async with mq.client(mq.owner_token) as api:
        reply = await api.post(f"/api/devices/{device_id}/reboot")
        assert reply.status_code == 202, reply.text
        assert reply.json()["delivered"] is True and reply.json()["sent"] == "downlink/reboot"
        assert await dev.recv() == mqtt.Publish("downlink/reboot", b"")
        # Blynk's "Reboot" for a Blynk-protocol device: INTERNAL dbg reboot (as Edgent reads it).
        blynk_id, _, device = await online_device(mq)
        reply = await api.post(f"/api/devices/{blynk_id}/reboot")
        assert reply.status_code == 202 and reply.json()["sent"] == "INTERNAL dbg reboot"
        frame = await device.recv()
        assert frame is not None and frame.command == Command.INTERNAL
        assert frame.text_args() == ["dbg", "reboot"]
        # A ping of a Blynk-protocol device is refused, saying why.
        status, body = await ping(mq, blynk_id)
        assert status == 409 and "Blynk protocol" in body["message"]
        assert "not supported" in body["message"]
    dev.close()
    device.close()


async def test_qos1_downlinks_wait_within_the_clients_receive_maximum(
    mq: RunningCloud,  # noqa: F811
) -> None:
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    dev = await RawMqtt.connect(mqtt_port(mq), None, MQTT_5)
    dev.send(
        mqtt.encode_connect(
            "rm", MQTT_5, 30, "device", request["token"].encode(), properties={0x21: 1}
        )
    )
    assert isinstance(await dev.recv(), mqtt.ConnAck)
    dev.send(mqtt.encode_subscribe(1, [("downlink/#", 1)], MQTT_5))
    assert await dev.recv() == mqtt.SubAck(1, [1])
    dev.send(mqtt.encode_publish("info/mcu", info(template_id).encode(), MQTT_5, 1, 2))
    assert await dev.recv() == mqtt.Ack(4, 2, 0)
    device_id = (await claimed(mq, request["id"]))["device_id"]
    url = f"/api/devices/{device_id}/pins/1"
    async with mq.client(mq.owner_token) as api:
        assert (await api.put(url, json={"value": "1"})).json()["delivered"] is True
        first = await dev.recv()
        assert isinstance(first, mqtt.Publish) and first.qos == 1
        refused = (await api.put(url, json={"value": "2"})).json()
        assert refused["delivered"] is False and refused["delivery"] == "refused"
        dev.send(mqtt.encode_puback(first.packet_id, MQTT_5))
        dev.send(mqtt.PINGREQ)  # (the PUBACK is read before the answer to this)
        assert await dev.recv() == mqtt.PingResp()
        assert (await api.put(url, json={"value": "3"})).json()["delivered"] is True
        third = await dev.recv()
        assert isinstance(third, mqtt.Publish) and third.payload == b"3"
    dev.close()


async def test_a_receive_maximum_of_zero_is_a_protocol_error(mq: RunningCloud) -> None:  # noqa: F811
    dev = await RawMqtt.connect(mqtt_port(mq), None, MQTT_5)
    dev.send(mqtt.encode_connect("rm", MQTT_5, 30, "device", b"A" * 32, properties={0x21: 0}))
    assert await dev.recv() == mqtt.ConnAck(False, 0x82)
    assert await dev.closed()


async def test_a_clean_session_redelivers_nothing(mq: RunningCloud) -> None:  # noqa: F811
    device_id, token, _, dev = await online_mqtt(mq)
    async with mq.client(mq.owner_token) as api:
        reply = await api.put(f"/api/devices/{device_id}/pins/2", json={"value": "heat"})
        assert reply.json()["delivered"] is True
    unacked = await dev.recv()
    assert isinstance(unacked, mqtt.Publish) and unacked.qos == 1
    dev.close()  # without its PUBACK
    again = await RawMqtt.connect(mqtt_port(mq), token)
    assert await again.recv() == mqtt.ConnAck(False, 0)  # no session present
    again.send(mqtt.encode_subscribe(1, [("downlink/#", 1)]))
    assert await again.recv() == mqtt.SubAck(1, [1])
    again.send(mqtt.PINGREQ)
    assert await again.recv() == mqtt.PingResp()  # nothing was resent before it
    again.close()


async def test_ping_and_reboot_from_the_terminal(mq: RunningCloud, tmp_path: Path) -> None:  # noqa: F811
    term = Terminal(tmp_path / "config")
    term.sign_in(mq.http_url, mq.owner_token)
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    dev = PahoDevice(request["token"])
    assert not (await dev.connect(mqtt_port(mq))).is_failure
    try:
        await dev.subscribe("downlink/#", qos=1)
        await dev.publish("info/mcu", info(template_id))
        device_id = (await claimed(mq, request["id"]))["device_id"]
        async with mq.client(mq.owner_token) as api:
            await api.patch(f"/api/devices/{device_id}", json={"name": "Porch lamp"})
        code, out, err = await term.run("ping", "Porch lamp")
        assert code == 0, (out, err)
        assert f"device {device_id} 'Porch lamp' acknowledged the ping in" in out
        reply = await term.json("ping", str(device_id))
        assert reply["acked"] is True and reply["rtt_ms"] >= 0 and reply["api_ms"] > 0
        code, out, err = await term.run("ping", str(device_id), "--count", "3")
        assert code == 0 and "3 pings, 3 acknowledged; device round trip min/median/max" in out
        code, out, err = await term.run("reboot", "Porch lamp")
        assert code == 0, (out, err)
        assert f"reboot: sent downlink/reboot to device {device_id} 'Porch lamp'" in out
        seen = [await dev.receive() for _ in range(6)]
        assert seen == [("downlink/ping", b"")] * 5 + [("downlink/reboot", b"")]
        code, out, err = await term.run("ping", "Garage")
        assert code == 1 and "no device named 'Garage'" in out + err
    finally:
        dev.stop()
    # A device that withholds its PUBACK: exit status 1, saying so.
    raw_id, _, _, raw = await online_mqtt(mq)
    code, out, err = await term.run("ping", str(raw_id), "--timeout", "0.3")
    assert code == 1 and "did not acknowledge it within 0.3 s" in err, (out, err)
    raw.close()
    code, out, err = await term.run("reboot", str(raw_id))
    assert code == 1 and "offline" in out + err


async def test_mosquitto_sub_acknowledges_a_ping_as_blynks_docs_show(mq: RunningCloud) -> None:  # noqa: F811
    """Blynk's docs: ``mosquitto_sub -t 'downlink/ping'`` (QoS 0 by default)."""
    device_id, token, _, raw = await online_mqtt(mq)
    raw.close()  # the raw client made the device; mosquitto_sub takes its place
    port = str(mqtt_port(mq))
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-u", "device", "-P", token,
        "-t", "downlink/ping", "-C", "1", "-v",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:

        async def answered() -> bool:
            status, body = await ping(mq, device_id)
            return status == 200 and body["acked"] is True

        await until(answered, timeout=10)  # (409 until mosquitto_sub has subscribed)
        out, _ = await asyncio.wait_for(sub.communicate(), 20)
        assert out.decode().split()[0] == "downlink/ping"  # ("(null)": no payload)
    finally:
        if sub.returncode is None:
            sub.kill()
            await sub.wait()


@pytest.mark.parametrize(
    "role,ping_ok,reboot_ok", [("operator", True, False), ("viewer", False, False)]
)
async def test_ping_needs_operate_and_reboot_manage(
    mq: RunningCloud,  # noqa: F811
    role: str,
    ping_ok: bool,
    reboot_ok: bool,
) -> None:
    device_id, _, _, dev = await online_mqtt(mq)
    member = await mq.user(f"{role}@example.com", role=role)
    async with mq.client(member) as api:
        reply = await api.post(f"/api/devices/{device_id}/ping", params={"timeout": 0.2})
        assert reply.status_code == (200 if ping_ok else 403), reply.text
        reply = await api.post(f"/api/devices/{device_id}/reboot")
        assert reply.status_code == (202 if reboot_ok else 403), reply.text
        assert "manage" in reply.json()["message"]
    stranger = await mq.user("stranger@example.com")
    async with mq.client(stranger) as api:
        assert (await api.post(f"/api/devices/{device_id}/ping")).status_code == 404
        assert (await api.post(f"/api/devices/{device_id}/reboot")).status_code == 404
    dev.send(mqtt.PINGREQ)  # the refused reboots sent nothing: the next packet answers this
    while isinstance(packet := await dev.recv(), mqtt.Publish):
        assert packet.topic == "downlink/ping"  # (the operator's ping)
    assert packet == mqtt.PingResp()
    dev.close()
