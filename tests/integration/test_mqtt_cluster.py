"""MQTT devices on two cloud processes (`wifiprov cloud --mqtt`) sharing PostgreSQL and NATS:
a claim over node B seen by a long poll on node A, presence, a pin write, a ping (answered by the
device's PUBACK) and a reboot from A delivered by B, and a newer login on A replacing B's
connection."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx

from tests.conftest import PASSWORD
from tests.integration.support import free_port, until, wait_http
from tests.integration.test_cluster_and_faults import NATS
from tests.integration.test_mqtt import RawMqtt
from wifiprov.cloud import accounts
from wifiprov.cloud.db import Database
from wifiprov.wire import mqtt
from wifiprov.wire.mqtt import MQTT_5


async def test_mqtt_devices_across_two_nodes(pg_db: str) -> None:
    db = Database(pg_db)
    owner = await accounts.create_user(db, "owner@example.com", PASSWORD)
    org_id = await accounts.create_org(db, "Acme", owner)
    await db.close()
    nodes = []
    try:
        for name in ("a", "b"):
            http, gw, mq = free_port(), free_port(), free_port()
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "wifiprov.cli", "cloud", "--db", pg_db, "--bus", NATS,
                    "--http", f"127.0.0.1:{http}", "--gateway", f"127.0.0.1:{gw}",
                    "--mqtt", f"127.0.0.1:{mq}", "--node-id", f"node-{name}",
                    "--public-host", "cloud.test",
                ],
                stderr=subprocess.PIPE,
            )  # fmt: skip
            nodes.append((proc, f"http://127.0.0.1:{http}", mq))
        for proc, url, _ in nodes:
            await wait_http(url, lambda p=proc: p.poll() is not None)
        (_, api_a, mqtt_a), (_, _, mqtt_b) = nodes
        async with httpx.AsyncClient(base_url=api_a, timeout=30) as api:
            token = (
                await api.post(
                    "/api/auth/sign-in", json={"email": "owner@example.com", "password": PASSWORD}
                )
            ).json()["token"]
            api.headers["Authorization"] = f"Bearer {token}"
            tmpl = (await api.post(f"/api/orgs/{org_id}/templates", json={"name": "T"})).json()
            put = await api.put(f"/api/templates/{tmpl['id']}/datastreams/Power", json={"pin": 4})
            assert put.status_code == 200
            request = (await api.post(f"/api/templates/{tmpl['id']}/provisioning")).json()
            poll = asyncio.create_task(api.get(f"/api/provisioning/{request['id']}?wait=20"))
            device = await RawMqtt.connect(mqtt_b, request["token"], MQTT_5)
            connack = await device.recv()
            assert isinstance(connack, mqtt.ConnAck) and connack.code == 0
            device.send(mqtt.encode_subscribe(1, [("downlink/#", 1)], MQTT_5))
            assert await device.recv() == mqtt.SubAck(1, [1])
            info = json.dumps({"tmpl": tmpl["id"], "ver": "1.0.0", "rxbuff": 1024})
            device.send(mqtt.encode_publish("info/mcu", info.encode(), MQTT_5, 1, 1))
            assert await device.recv() == mqtt.Ack(4, 1, 0)
            claim = (await poll).json()
            assert claim["status"] == "claimed"
            device_id = claim["device_id"]
            listed = (await api.get("/api/devices")).json()
            assert device_id in [d["id"] for d in listed]

            async def online_on(node: str) -> bool:
                shown = (await api.get(f"/api/devices/{device_id}")).json()
                return bool(shown["online"]) and shown.get("online_node") in (node, None)

            await until(lambda: online_on("node-b"), 10)
            reply = await api.put(f"/api/devices/{device_id}/pins/4", json={"value": "on"})
            assert reply.json()["delivered"] is True and reply.json()["node"] == "node-b"
            assert await device.recv() == mqtt.Publish(
                "downlink/ds/Power", b"on", 1, False, False, 1
            )
            # Ping and reboot asked on node A reach the device on node B; its PUBACK, read by
            # node B, answers the ping on node A.
            pinging = asyncio.create_task(api.post(f"/api/devices/{device_id}/ping"))
            sent = await device.recv()
            assert isinstance(sent, mqtt.Publish) and sent.topic == "downlink/ping"
            assert sent.qos == 1 and sent.payload == b""
            device.send(mqtt.encode_puback(sent.packet_id, MQTT_5))
            pinged = (await pinging).json()
            assert pinged["acked"] is True and pinged["node"] == "node-b", pinged
            reply = await api.post(f"/api/devices/{device_id}/reboot")
            assert reply.status_code == 202 and reply.json()["node"] == "node-b"
            assert await device.recv() == mqtt.Publish("downlink/reboot", b"")
            # A newer login on node A replaces the connection node B holds.
            again = await RawMqtt.connect(mqtt_a, request["token"], MQTT_5)
            assert isinstance(await again.recv(), mqtt.ConnAck)
            assert await device.closed(10)
            again.send(mqtt.encode_subscribe(1, [("downlink/ds/+", 0)], MQTT_5))
            assert await again.recv() == mqtt.SubAck(1, [0])
            reply = await api.put(f"/api/devices/{device_id}/pins/4", json={"value": "off"})
            assert reply.json()["delivered"] is True and reply.json()["node"] == "node-a"
            assert await again.recv() == mqtt.Publish("downlink/ds/Power", b"off")  # QoS 0
            again.send(mqtt.encode_disconnect(MQTT_5))

            async def offline() -> bool:
                return not (await api.get(f"/api/devices/{device_id}")).json()["online"]

            await until(offline, 10)
    finally:
        for proc, _, _ in nodes:
            proc.terminate()
        for proc, _, _ in nodes:
            proc.wait(10)
