"""Blynk's MQTT device API on a real cloud (SQLite and PostgreSQL), with real clients: paho-mqtt
2.x (MQTT 3.1.1 and 5, plain and TLS), aiomqtt and Mosquitto's own mosquitto_pub / mosquitto_sub,
plus a raw client (wire.mqtt) for the bad input each real client would never send."""

from __future__ import annotations

import asyncio
import json
import queue
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import RunningCloud, start_cloud, stop_cloud, with_owner
from tests.integration.support import (
    RawDevice,
    provisioning_token,
    server_certificate,
    template,
    until,
)
from wifiprov.cloud.settings import CloudSettings
from wifiprov.wire import mqtt
from wifiprov.wire.blynk import Command
from wifiprov.wire.mqtt import MQTT_5, MQTT_311


@pytest.fixture
async def mq(settings: CloudSettings) -> AsyncIterator[RunningCloud]:
    settings.mqtt = ("127.0.0.1", 0)
    settings.mqtt_max_packet = 4096
    running, task = await start_cloud(settings)
    try:
        yield await with_owner(running, hotspot_prefix="Acme")
    finally:
        await stop_cloud(running, task)


def mqtt_port(rc: RunningCloud, kind: str = "mqtt") -> int:
    return rc.cloud.gateway.mqtt_addresses()[kind][1]


async def thermostat(rc: RunningCloud) -> str:
    """A template with datastreams Temperature (V1) and Mode (V2)."""
    template_id = await template(rc)
    async with rc.client(rc.owner_token) as api:
        for name, pin, kind in (("Temperature", 1, "double"), ("Mode", 2, "string")):
            reply = await api.put(
                f"/api/templates/{template_id}/datastreams/{name}",
                json={"pin": pin, "type": kind, "unit": "°C" if pin == 1 else ""},
            )
            assert reply.status_code == 200, reply.text
    return template_id


def info(template_id: str, rxbuff: int = 1024) -> str:
    return json.dumps(
        {
            "tmpl": template_id,
            "ver": "0.1.2",
            "build": "Jan 19 2024",
            "type": template_id,
            "rxbuff": rxbuff,
        }
    )


class PahoDevice:
    """paho-mqtt 2.x with its own network thread; what it receives goes to a queue."""

    def __init__(self, token: str, version: int = paho.MQTTv311, transport: str = "tcp") -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            protocol=version,
            transport=transport,  # type: ignore[arg-type]
        )
        self.client.username_pw_set("device", token)
        self.connack: queue.Queue[Any] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.gone = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_disconnect = lambda c, u, f, rc, p: self.gone.set()

    async def connect(self, port: int, tls: ssl.SSLContext | None = None) -> Any:
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.reconnect_delay_set(60, 120)  # a refused client does not retry meanwhile
        await asyncio.to_thread(self.client.connect, "localhost" if tls else "127.0.0.1", port, 45)
        self.client.loop_start()
        return await asyncio.to_thread(self.connack.get, True, 10)

    async def publish(self, topic: str, payload: str | bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        await asyncio.to_thread(info.wait_for_publish, 10)

    async def subscribe(self, topic: str = "downlink/#", qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos)
        assert await asyncio.to_thread(done.wait, 10)

    async def receive(self, timeout: float = 10) -> tuple[str, bytes]:
        return await asyncio.to_thread(self.messages.get, True, timeout)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class RawMqtt:
    """A raw MQTT client on the codec: every byte as the test writes it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: int):
        self.reader, self.writer = reader, writer
        self.decoder = mqtt.Decoder(1 << 20, version)
        self.pending: list[mqtt.Packet] = []

    @classmethod
    async def connect(
        cls, port: int, token: str | None = None, version: int = MQTT_311, source: str = ""
    ) -> RawMqtt:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0) if source else None
        )
        raw = cls(reader, writer, version)
        if token is not None:
            raw.send(mqtt.encode_connect("raw", version, 30, "device", token.encode()))
        return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv(self, timeout: float = 5.0) -> mqtt.Packet | None:
        """The next packet, or None when the server closed the connection."""
        async with asyncio.timeout(timeout):
            while not self.pending:
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server closes (packets before that are skipped)."""
        async with asyncio.timeout(timeout):
            while await self.recv(timeout) is not None:
                pass
        return True

    def close(self) -> None:
        self.writer.close()


async def claimed(rc: RunningCloud, request_id: int) -> dict[str, Any]:
    async with rc.client(rc.owner_token) as api:
        return dict((await api.get(f"/api/provisioning/{request_id}?wait=10")).json())


# --- real clients ---
@pytest.mark.parametrize("version", [paho.MQTTv311, paho.MQTTv5])
async def test_paho_claims_with_a_provisioning_token_and_values_flow_both_ways(
    mq: RunningCloud, version: int
) -> None:
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    dev = PahoDevice(request["token"], version)
    rc = await dev.connect(mqtt_port(mq))
    try:
        assert not rc.is_failure
        await dev.subscribe()
        await dev.publish("info/mcu", info(template_id))
        status = await claimed(mq, request["id"])
        assert status["status"] == "claimed"
        device_id = status["device_id"]
        await dev.publish("ds/Temperature", "21.5")
        async with mq.client(mq.owner_token) as api:

            async def stored() -> bool:
                pins = (await api.get(f"/api/devices/{device_id}/pins")).json()
                return bool(pins.get("V1") == ["21.5"])

            await until(stored)
            shown = (await api.get(f"/api/devices/{device_id}")).json()
            assert shown["online"] is True
            assert shown["info"]["template_id"] == template_id
            assert shown["info"]["firmware_version"] == "0.1.2"
            reply = await api.put(f"/api/devices/{device_id}/pins/2", json={"value": "heat"})
            assert reply.json()["delivered"] is True, reply.text
        assert await dev.receive() == ("downlink/ds/Mode", b"heat")
        # multi-values: NUL-separated, both ways
        await dev.publish("ds/Mode", b"a\0b")
        async with mq.client(mq.owner_token) as api:

            async def multi() -> bool:
                pins = (await api.get(f"/api/devices/{device_id}/pins")).json()
                return bool(pins.get("V2") == ["a", "b"])

            await until(multi)
    finally:
        dev.stop()


@pytest.mark.parametrize("version", [paho.MQTTv311, paho.MQTTv5])
async def test_a_wrong_token_is_refused_with_the_protocols_code(
    mq: RunningCloud, version: int
) -> None:
    """paho reports 3.1.1's return code 4 as the v5 reason it maps to (0x86); the raw bytes of
    both are checked in test_wrong_token_connack_bytes."""
    dev = PahoDevice("A" * 32, version)
    rc = await dev.connect(mqtt_port(mq))
    try:
        assert rc.is_failure and rc.getName() == "Bad user name or password"
        assert await asyncio.to_thread(dev.gone.wait, 10)
    finally:
        dev.client.loop_stop()


@pytest.mark.parametrize(("version", "code"), [(MQTT_311, 4), (MQTT_5, 0x86)])
async def test_wrong_token_connack_bytes(mq: RunningCloud, version: int, code: int) -> None:
    dev = await RawMqtt.connect(mqtt_port(mq), "A" * 32, version)
    assert await dev.recv() == mqtt.ConnAck(False, code)
    assert await dev.closed()


async def test_mosquitto_clients_publish_and_subscribe(mq: RunningCloud) -> None:
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    port = str(mqtt_port(mq))
    auth = ["-h", "127.0.0.1", "-p", port, "-u", "device", "-P", request["token"]]
    pub = await asyncio.create_subprocess_exec(
        "mosquitto_pub", *auth, "-V", "mqttv5", "-q", "1", "-t", "ds/Temperature", "-m", "30"
    )
    assert await asyncio.wait_for(pub.wait(), 20) == 0
    status = await claimed(mq, request["id"])
    device_id = status["device_id"]
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub",
        *auth,
        "-V",
        "mqttv311",
        "-t",
        "downlink/ds/#",
        "-C",
        "1",
        "-v",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with mq.client(mq.owner_token) as api:

            async def delivered() -> bool:
                reply = await api.put(f"/api/devices/{device_id}/pins/1", json={"value": "19"})
                return bool(reply.json()["delivered"])

            await until(delivered, timeout=10)
            assert (await api.get(f"/api/devices/{device_id}/pins")).json()["V1"] == ["19"]
        out, _ = await asyncio.wait_for(sub.communicate(), 20)
        assert out.decode().strip() == "downlink/ds/Temperature 19"
    finally:
        if sub.returncode is None:
            sub.kill()
            await sub.wait()


async def test_aiomqtt_reads_values_written_over_the_blynk_protocol(mq: RunningCloud) -> None:
    """One value whatever protocol wrote it: a Blynk-protocol login writes V1, the same device
    over MQTT asks for ds Temperature (V1) and gets it."""
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    blynk_dev = await RawDevice.connect(mq.gateway)
    assert await blynk_dev.login(request["token"]) == 200
    await blynk_dev.send(Command.INTERNAL, 2, "tmpl", template_id)
    assert (await blynk_dev.recv()).status == 200  # type: ignore[union-attr]
    await blynk_dev.send(Command.HARDWARE, 3, "vw", "1", "23.25")
    async with aiomqtt.Client(
        "127.0.0.1",
        mqtt_port(mq),
        username="device",
        password=request["token"],
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        # the MQTT login replaced the Blynk-protocol connection of the same device
        assert await blynk_dev.wait_closed()
        await client.subscribe("downlink/#", qos=1)
        await client.publish("get/ds", "Temperature,Mode", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
        assert (str(message.topic), message.payload) == ("downlink/ds/Temperature", b"23.25")
        await client.publish("get/utc/all/json", b"", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
        assert str(message.topic) == "downlink/utc/all/json"
        utc = json.loads(message.payload)  # type: ignore[arg-type]
        assert utc["tz_name"] == "UTC" and utc["tz_offset"] == 0 and utc["time"] > 0


async def test_tls_with_a_verifying_paho_client(db_url: str, tmp_path: Path) -> None:
    ca = server_certificate(tmp_path)
    settings = CloudSettings(
        db_url=db_url,
        http=("127.0.0.1", 0),
        gateway=("127.0.0.1", 0),
        mqtt_tls=("127.0.0.1", 0),
        cert=tmp_path / "server.pem",
        key=tmp_path / "server.pem",
        public_host="localhost",
    )
    cloud, task = await start_cloud(settings)
    try:
        rc = await with_owner(cloud)
        template_id = await thermostat(rc)
        request = await provisioning_token(rc, template_id)
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        dev = PahoDevice(request["token"], paho.MQTTv5)
        try:
            assert not (await dev.connect(mqtt_port(rc, "mqtt_tls"), ctx)).is_failure
            await dev.subscribe()
            await dev.publish("info/mcu", info(template_id))
            assert (await claimed(rc, request["id"]))["status"] == "claimed"
            device_id = (await claimed(rc, request["id"]))["device_id"]
            async with rc.client(rc.owner_token) as api:
                reply = await api.post(
                    f"/api/devices/{device_id}/redirect", json={"host": "ny3.example", "port": 8883}
                )
                assert reply.json()["delivered"] is True
            assert await dev.receive() == ("downlink/redirect", b"tls://ny3.example:8883")
        finally:
            dev.stop()
    finally:
        await stop_cloud(cloud, task)


# --- what the cloud does to an MQTT device ---
async def online_mqtt(rc: RunningCloud, version: int = MQTT_311) -> tuple[int, str, str, RawMqtt]:
    """A device claimed over MQTT by a raw client subscribed to downlink/#."""
    template_id = await thermostat(rc)
    request = await provisioning_token(rc, template_id)
    dev = await RawMqtt.connect(mqtt_port(rc), request["token"], version)
    connack = await dev.recv()
    assert isinstance(connack, mqtt.ConnAck) and connack.code == 0
    dev.send(mqtt.encode_subscribe(1, [("downlink/#", 1)], version))
    suback = await dev.recv()
    assert isinstance(suback, mqtt.SubAck) and suback.codes == [1]
    dev.send(mqtt.encode_publish("info/mcu", info(template_id).encode(), version, 1, 2))
    assert await dev.recv() == mqtt.Ack(4, 2, 0)
    status = await claimed(rc, request["id"])
    return int(status["device_id"]), request["token"], template_id, dev


async def test_one_connection_per_token_and_delete_closes_and_refuses(mq: RunningCloud) -> None:
    device_id, token, _, first = await online_mqtt(mq, MQTT_5)
    second = await RawMqtt.connect(mqtt_port(mq), token, MQTT_5)
    assert isinstance(await second.recv(), mqtt.ConnAck)
    assert await first.closed()
    second.send(mqtt.encode_subscribe(1, [("downlink/#", 1)], MQTT_5))
    assert await second.recv() == mqtt.SubAck(1, [1])
    async with mq.client(mq.owner_token) as api:
        # Blynk's "Reconfigure" for an MQTT device: downlink/reconfigure, empty (Blynk's docs)
        reply = await api.post(f"/api/devices/{device_id}/reconfigure")
        assert reply.status_code == 202 and reply.json()["delivered"] is True, reply.text
        assert await second.recv() == mqtt.Publish("downlink/reconfigure", b"")
        assert (await api.delete(f"/api/devices/{device_id}")).status_code == 204
    assert await second.closed()
    again = await RawMqtt.connect(mqtt_port(mq), token, MQTT_5)
    connack = await again.recv()
    assert isinstance(connack, mqtt.ConnAck) and connack.code == 0x86
    assert await again.closed()


async def test_ping_keeps_and_rxbuff_caps_what_is_sent(mq: RunningCloud) -> None:
    device_id, _, template_id, dev = await online_mqtt(mq)
    dev.send(mqtt.encode_publish("info/mcu", info(template_id, rxbuff=64).encode(), MQTT_311))
    dev.send(mqtt.PINGREQ)
    assert await dev.recv() == mqtt.PingResp()
    async with mq.client(mq.owner_token) as api:

        async def reported() -> bool:
            shown = (await api.get(f"/api/devices/{device_id}")).json()
            return bool(shown["info"].get("rxbuff") == "64")

        await until(reported)
        reply = await api.put(f"/api/devices/{device_id}/pins/2", json={"value": "x" * 100})
        assert reply.status_code == 413 and "64" in reply.json()["message"]
        reply = await api.put(f"/api/devices/{device_id}/pins/2", json={"value": "ok"})
        assert reply.json()["delivered"] is True
    assert await dev.recv() == mqtt.Publish("downlink/ds/Mode", b"ok", 1, False, False, 1)
    dev.close()


# --- bad input ---
async def test_unknown_datastream_is_said_on_diag_and_the_connection_lives(
    mq: RunningCloud,
) -> None:
    _, _, _, dev = await online_mqtt(mq, MQTT_5)
    dev.send(mqtt.encode_publish("ds/Nope", b"1", MQTT_5, 1, 3))
    diag = await dev.recv()
    assert isinstance(diag, mqtt.Publish) and diag.topic == "downlink/diag"
    assert b"no datastream named 'Nope'" in diag.payload
    assert await dev.recv() == mqtt.Ack(4, 3, 0)
    dev.send(mqtt.encode_publish("ds/Temperature", b"\xff\xfe", MQTT_5, 1, 4))  # not UTF-8
    diag = await dev.recv()
    assert isinstance(diag, mqtt.Publish) and diag.topic == "downlink/diag"
    assert await dev.recv() == mqtt.Ack(4, 4, 0)
    dev.send(mqtt.PINGREQ)
    assert await dev.recv() == mqtt.PingResp()
    dev.close()


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
async def test_subscribing_outside_downlink_is_refused(mq: RunningCloud, version: int) -> None:
    _, _, _, dev = await online_mqtt(mq, version)
    dev.send(mqtt.encode_subscribe(5, [("ds/#", 0), ("#", 1), ("downlink/ds/+", 1)], version))
    refused = 0x87 if version == MQTT_5 else 0x80
    assert await dev.recv() == mqtt.SubAck(5, [refused, refused, 1])
    dev.send(mqtt.PINGREQ)
    assert await dev.recv() == mqtt.PingResp()
    dev.close()


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"\x30\x0c\x00\x04ds/#\x00value", mqtt.Reason.TOPIC_NAME_INVALID),  # wildcard topic
        (b"\x30\x0c\x00\x04ds/\xff\x00value", mqtt.Reason.MALFORMED),  # topic not UTF-8
        (b"\x30\xff\xff\x03", mqtt.Reason.PACKET_TOO_LARGE),  # over --mqtt-max-packet
        (b"\x30\x05\x00\x09abc", mqtt.Reason.MALFORMED),  # shorter than its topic
        (b"\x34\x08\x00\x01t\x00\x01\x00ab", mqtt.Reason.QOS_NOT_SUPPORTED),  # QoS 2
    ],
)
async def test_bad_packets_close_the_connection_with_a_reason(
    mq: RunningCloud, packet: bytes, reason: int
) -> None:
    device_id, _, _, dev = await online_mqtt(mq, MQTT_5)
    dev.send(packet)
    assert await dev.recv() == mqtt.Disconnect(reason)
    assert await dev.closed()
    async with mq.client(mq.owner_token) as api:

        async def noted() -> bool:
            shown = (await api.get(f"/api/devices/{device_id}")).json()
            return bool(shown["last_error"]) and not shown["online"]

        await until(noted)


async def test_a_client_that_never_connects_is_closed(mq: RunningCloud) -> None:
    dev = await RawMqtt.connect(mqtt_port(mq))
    assert await dev.closed(timeout=10)  # the login timeout (2 s here)
    late = await RawMqtt.connect(mqtt_port(mq))
    late.send(mqtt.PINGREQ)  # anything before CONNECT
    assert await late.closed()


async def test_connect_details(mq: RunningCloud) -> None:
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    port = mqtt_port(mq)
    long_id = await RawMqtt.connect(port, version=MQTT_5)
    long_id.send(mqtt.encode_connect("c" * 65, MQTT_5, 30, "device", request["token"].encode()))
    assert await long_id.recv() == mqtt.ConnAck(False, 0x85)
    assert await long_id.closed()
    user = await RawMqtt.connect(port)
    user.send(mqtt.encode_connect("", MQTT_311, 30, "admin", request["token"].encode()))
    assert await user.recv() == mqtt.ConnAck(False, 4)
    v3 = await RawMqtt.connect(port)
    body = b"\x00\x06MQIsdp\x03\x02\x00\x0a" + mqtt.encode_string("c")
    v3.send(b"\x10" + mqtt.encode_varint(len(body)) + body)
    assert await v3.recv() == mqtt.ConnAck(False, 1)
    # none of these claimed the token
    assert (await claimed(mq, request["id"]))["status"] != "claimed"


async def test_connect_floods_are_throttled_per_address(mq: RunningCloud) -> None:
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    port = mqtt_port(mq)
    limit = mq.cloud.settings.throttle_failures
    for _ in range(limit):
        guess = await RawMqtt.connect(port, "B" * 32, source="127.0.0.2")
        assert await guess.recv() == mqtt.ConnAck(False, 4)
        guess.close()
    blocked = await RawMqtt.connect(port, request["token"], source="127.0.0.2")
    assert await blocked.recv() is None  # closed without an answer, even with a good token
    other = await RawMqtt.connect(port, request["token"])
    assert await other.recv() == mqtt.ConnAck(False, 0)
    other.close()


async def test_a_claim_by_another_templates_firmware_is_refused(mq: RunningCloud) -> None:
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    dev = await RawMqtt.connect(mqtt_port(mq), request["token"], MQTT_5)
    assert await dev.recv() == mqtt.ConnAck(False, 0, {0x24: 1, 0x2A: 0, 0x29: 0, 0x27: 4101})
    dev.send(mqtt.encode_publish("info/mcu", info("TMPLother").encode(), MQTT_5, 1, 1))
    assert await dev.recv() == mqtt.Disconnect(mqtt.Reason.NOT_AUTHORIZED)
    assert await dev.closed()
    status = await claimed(mq, request["id"])
    assert status["status"] == "refused"
    again = await RawMqtt.connect(mqtt_port(mq), request["token"])
    assert await again.recv() == mqtt.ConnAck(False, 4)


async def test_datastream_api_checks(mq: RunningCloud) -> None:
    template_id = await thermostat(mq)
    async with mq.client(mq.owner_token) as api:
        listed = (await api.get(f"/api/templates/{template_id}/datastreams")).json()
        assert [(d["name"], d["pin"]) for d in listed] == [("Temperature", "V1"), ("Mode", "V2")]
        url = f"/api/templates/{template_id}/datastreams"
        taken = await api.put(f"{url}/Other", json={"pin": 1})
        assert taken.status_code == 409 and "Temperature" in taken.text
        assert (await api.put(f"{url}/Bad", json={"pin": 256})).status_code == 422
        assert (await api.put(f"{url}/a%2Bb", json={"pin": 3})).status_code == 422
        assert (await api.put(f"{url}/R", json={"pin": 3, "min": 5, "max": 1})).status_code == 422
        assert (await api.delete(f"{url}/Mode")).status_code == 204
        assert (await api.delete(f"{url}/Mode")).status_code == 404
        listed = (await api.get(url)).json()
        assert [d["name"] for d in listed] == ["Temperature"]


async def test_blynk_provisioning_library_checks_in_and_is_rejected_once_deleted(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blynk's own Linux library (PyPI blynk-provisioning), unchanged: its
    ``Credentials.get_mqtt_client()`` connects with MQTT 5 over TLS to port 8883 of the host
    its pairing stored (the port is fixed in the library, so this test needs 8883 free) and
    verifies the certificate against the system's roots (here: SSL_CERT_FILE, the test CA)."""
    from blynk_provisioning.credentials import Credentials, CredentialsRejectedError

    server_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    settings = CloudSettings(
        db_url=db_url,
        http=("127.0.0.1", 0),
        gateway=("127.0.0.1", 0),
        mqtt_tls=("127.0.0.1", 8883),
        cert=tmp_path / "server.pem",
        key=tmp_path / "server.pem",
        public_host="localhost",
    )
    try:
        cloud, task = await start_cloud(settings)
    except OSError as exc:
        pytest.fail(f"blynk-provisioning connects to port 8883 only, and it is taken: {exc}")
    try:
        rc = await with_owner(cloud)
        template_id = await thermostat(rc)
        request = await provisioning_token(rc, template_id)
        creds = Credentials("localhost", request["token"], template_id, fw_version="1.2.3")
        client = await asyncio.to_thread(creds.get_mqtt_client)
        received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        subscribed = threading.Event()
        client.on_message = lambda c, u, m: received.put((m.topic, m.payload))
        client.on_subscribe = lambda *a: subscribed.set()
        client.loop_start()
        try:
            client.subscribe("downlink/#", 1)
            assert await asyncio.to_thread(subscribed.wait, 10)
            status = await claimed(rc, request["id"])
            assert status["status"] == "claimed"
            device_id = status["device_id"]
            client.publish("ds/Temperature", "20.5", qos=1).wait_for_publish(10)
            async with rc.client(rc.owner_token) as api:

                async def checked_in() -> bool:
                    shown = (await api.get(f"/api/devices/{device_id}")).json()
                    pins = (await api.get(f"/api/devices/{device_id}/pins")).json()
                    return bool(
                        shown["info"].get("firmware_version") == "1.2.3"
                        and shown["info"].get("rxbuff") == "1024"
                        and pins.get("V1") == ["20.5"]
                    )

                await until(checked_in)
                reply = await api.put(f"/api/devices/{device_id}/pins/2", json={"value": "cool"})
                assert reply.json()["delivered"] is True
                topic, payload = await asyncio.to_thread(received.get, True, 10)
                assert (topic, payload) == ("downlink/ds/Mode", b"cool")
                assert (await api.delete(f"/api/devices/{device_id}")).status_code == 204
        finally:
            client.disconnect()
            client.loop_stop()
        with pytest.raises(CredentialsRejectedError):
            await asyncio.to_thread(creds.get_mqtt_client)
    finally:
        await stop_cloud(cloud, task)


async def test_datastreams_from_the_cli(mq: RunningCloud, tmp_path: Path) -> None:
    from tests.integration.test_cli_objects import Terminal

    term = Terminal(tmp_path / "config")
    term.sign_in(mq.http_url, mq.owner_token)
    template_id = await template(mq, name="Heater")
    flags = ["--type", "integer", "--min", "0", "--max", "3000", "--unit", "W"]
    made = await term.json("templates", "datastreams", "set", "Heater", "Power", "V4", *flags)
    assert made == {
        "name": "Power",
        "pin": "V4",
        "type": "integer",
        "min": 0.0,
        "max": 3000.0,
        "unit": "W",
    }
    code, out, err = await term.run("templates", "datastreams", "set", template_id, "Fan", "4")
    assert code != 0 and "already bound to the datastream 'Power'" in out + err
    code, out, err = await term.run("templates", "datastreams", "set", "Heater", "a/b", "V5")
    assert code != 0 and "datastream name" in out + err
    listed = await term.json("templates", "datastreams", "list", "Heater")
    assert [d["name"] for d in listed] == ["Power"]
    code, out, _ = await term.run("templates", "datastreams", "list", "Heater")
    assert code == 0 and "Power" in out and "V4" in out
    code, out, _ = await term.run("templates", "datastreams", "remove", "Heater", "Power")
    assert code == 0 and "removed" in out
    assert await term.json("templates", "datastreams", "list", "Heater") == []


async def test_websocket_with_paho_and_bad_upgrades(
    settings: CloudSettings, tmp_path: Path
) -> None:
    ca = server_certificate(tmp_path)
    settings.mqtt_ws = ("127.0.0.1", 0)
    settings.mqtt_wss = ("127.0.0.1", 0)
    settings.cert = settings.key = tmp_path / "server.pem"
    cloud, task = await start_cloud(settings)
    try:
        rc = await with_owner(cloud)
        template_id = await thermostat(rc)
        request = await provisioning_token(rc, template_id)
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        for kind, tls in (("mqtt_ws", None), ("mqtt_wss", ctx)):
            dev = PahoDevice(request["token"], paho.MQTTv5, transport="websockets")
            dev.client.ws_set_options(path="/mqtt")
            try:
                assert not (await dev.connect(mqtt_port(rc, kind), tls)).is_failure
                await dev.subscribe()
                await dev.publish("info/mcu", info(template_id))
                await dev.publish("ds/Temperature", "17" if tls else "16")
                status = await claimed(rc, request["id"])
                async with rc.client(rc.owner_token) as api:
                    url = f"/api/devices/{status['device_id']}/pins/2"
                    reply = await api.put(url, json={"value": kind})
                    assert reply.json()["delivered"] is True
                assert await dev.receive() == ("downlink/ds/Mode", kind.encode())
            finally:
                dev.stop()
        # not /mqtt; not an upgrade
        port = mqtt_port(rc, "mqtt_ws")
        for head, status_line in (
            (b"GET /other HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
             b"HTTP/1.1 404 "),
            (b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 426 "),
        ):  # fmt: skip
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head)
            answer = await asyncio.wait_for(reader.read(), 10)
            assert answer.startswith(status_line)
            writer.close()
    finally:
        await stop_cloud(cloud, task)


async def test_a_silent_device_is_gone_after_its_keepalive(mq: RunningCloud) -> None:
    """Keepalive 1 s: gone after 1.5 s without a packet (checked by the sweeper, once a second);
    the reason is kept as the device's last_error."""
    template_id = await thermostat(mq)
    request = await provisioning_token(mq, template_id)
    dev = await RawMqtt.connect(mqtt_port(mq))
    dev.send(mqtt.encode_connect("k", MQTT_311, 1, "device", request["token"].encode()))
    assert await dev.recv() == mqtt.ConnAck(False, 0)
    assert await dev.closed(timeout=15)
    device_id = (await claimed(mq, request["id"]))["device_id"]
    async with mq.client(mq.owner_token) as api:

        async def noted() -> bool:
            shown = (await api.get(f"/api/devices/{device_id}")).json()
            return "heartbeat timeout" in (shown["last_error"] or "")

        await until(noted)


async def test_get_ds_floods_are_bounded(mq: RunningCloud) -> None:
    """At most 4 get/ds answers under way per connection: the rest of a burst (one read) is
    refused on downlink/diag, and the connection lives on."""
    device_id, _, _, dev = await online_mqtt(mq)
    async with mq.client(mq.owner_token) as api:
        await api.put(f"/api/devices/{device_id}/pins/1", json={"value": "5"})
    while True:  # the pin write above, delivered as downlink/ds/Temperature
        packet = await dev.recv()
        if isinstance(packet, mqtt.Publish) and packet.topic == "downlink/ds/Temperature":
            break
    dev.send(mqtt.encode_publish("get/ds/all", b"", MQTT_311) * 10)
    got = [await dev.recv() for _ in range(10)]
    topics = sorted(p.topic for p in got if isinstance(p, mqtt.Publish))
    assert topics == ["downlink/diag"] * 6 + ["downlink/ds/Temperature"] * 4
    dev.send(mqtt.PINGREQ)
    assert await dev.recv() == mqtt.PingResp()
    dev.close()
