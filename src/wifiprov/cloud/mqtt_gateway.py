"""Blynk's MQTT device API: MQTT 3.1.1 and 5 connections over the gateway's session core.

One ``MqttConnection`` (an asyncio Protocol) per socket, a thin shell on ``wire.mqtt``: the first
packet must be a CONNECT (within the login timeout) with user name ``device`` and the device's
auth token (or a provisioning token, which claims the device exactly as a Blynk-protocol first
login does) as password. After that the device publishes under Blynk's uplink topics and may
subscribe only under ``downlink/``. It is not a broker: nothing is routed between clients, no
session outlives its connection, retained messages are not kept, and QoS 2 is refused (MQTT 5
says so in the CONNACK). Values are addressed by datastream name; the template's datastreams
bind names to virtual pins, so a value is one value whichever protocol wrote it.

QoS 1 downlinks wait in ``inflight`` for their PUBACK (at most ``MAX_INFLIGHT``, and in MQTT 5 at
most the client's Receive Maximum; their packet identifiers are not reused meanwhile). They are
never resent: MQTT 5 forbids resending on a live connection and both versions resend only when a
session is resumed, which a clean session never is (docs/cloud.md §QoS). ``downlink/ping`` is
the cloud's ping (``cloud/device_actions.py``): its PUBACK is reported back over the bus.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import time
from typing import TYPE_CHECKING, Any

from wifiprov.cloud import device_actions, devices
from wifiprov.cloud.bus import Message
from wifiprov.cloud.db import DatabaseUnavailable
from wifiprov.cloud.device_time import utc_json
from wifiprov.cloud.sessions import DeviceSessions, Session, State
from wifiprov.wire import mqtt, websocket
from wifiprov.wire.blynk import Status
from wifiprov.wire.mqtt import (
    MQTT_5,
    Ack,
    ConnectCode,
    Packet,
    Publish,
    Reason,
    Subscribe,
    Unsubscribe,
)

if TYPE_CHECKING:
    from wifiprov.cloud.gateway import Gateway

log = logging.getLogger("wifiprov.gateway")

KEEPALIVE_FACTOR = 1.5  # MQTT: gone after keepalive x 1.5 without a packet
MAX_CLIENT_ID = 64  # characters, as Blynk.Cloud accepts
USERNAME = "device"
MAX_META_FIELDS = 32
MAX_META_VALUE = 256
DEFAULT_RXBUFF = 1024  # until info/mcu says otherwise (Blynk's libraries use 1024)
WS_PATH = "/mqtt"  # where MQTT over WebSocket is served, as Blynk.Cloud does
MAX_GETS = 4  # get/ds requests of one connection being answered at once
ALWAYS_DELIVERED = ("downlink/redirect", "downlink/ota/json")  # even without a subscription
MAX_INFLIGHT = 100  # QoS 1 downlinks awaiting their PUBACK (MQTT 5: at most Receive Maximum)

# The session core's login answers as CONNACK codes: (3.1.1, 5).
_CONNACK = {
    Status.OK: (ConnectCode.ACCEPTED, Reason.SUCCESS),
    Status.INVALID_TOKEN: (ConnectCode.BAD_USER_NAME_OR_PASSWORD, Reason.BAD_USER_NAME_OR_PASSWORD),
    Status.SERVER_EXCEPTION: (ConnectCode.SERVER_UNAVAILABLE, Reason.SERVER_UNAVAILABLE),
}


class MqttConnection(Session, asyncio.Protocol):
    """One MQTT connection: packets in, calls on the session core, packets out."""

    protocol = "Blynk's MQTT API"

    def __init__(self, core: DeviceSessions, scheme: str) -> None:
        super().__init__(core)
        self.scheme = scheme  # tcp | tls: what a redirect tells the device to use
        self.decoder = mqtt.Decoder(core.settings.mqtt_max_packet)
        self.version = mqtt.MQTT_311
        self.subscriptions: dict[str, int] = {}  # topic filter -> granted QoS
        self.packet_id = 0
        self.names: dict[str, int] = {}  # datastream name -> pin
        self.pins: dict[int, str] = {}
        self.buffer_in = DEFAULT_RXBUFF
        self.gets = 0  # get/ds answers under way
        # QoS 1 downlinks not yet acknowledged: packet id -> (sent at, the cloud's ping id)
        self.inflight: dict[int, tuple[float, str | None]] = {}
        self.receive_max = MAX_INFLIGHT

    # --- asyncio callbacks ---
    def connection_made(self, transport: Any) -> None:
        self.opened_on(transport)

    def data_received(self, data: bytes) -> None:
        self.last_input = time.monotonic()
        try:
            packets = self.decoder.feed(data)
        except mqtt.UnsupportedVersion as exc:
            if self.state is State.AWAIT_LOGIN:
                code = Reason.UNSUPPORTED_VERSION if exc.level == MQTT_5 else 1
                self.send(mqtt.encode_connack(code, mqtt.MQTT_311))
            self.close(f"MQTT: {exc}")
            return
        except mqtt.ProtocolError as exc:
            self.fail(f"MQTT protocol error: {exc}", exc.reason)
            return
        self.take(packets)

    def too_many_held(self) -> None:
        self.fail("MQTT: too many packets before the login was answered", 0x97)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost()
        # A clean session ends here: unacknowledged messages are dropped, not kept for later.
        for _, ping_id in self.inflight.values():
            if ping_id is not None:
                self.report_ping(ping_id, None)
        self.inflight.clear()

    # --- sending ---
    def fail(self, reason: str, code: int) -> None:
        """Close for a protocol fault (MQTT 5: after a DISCONNECT with the reason code)."""
        if self.version == MQTT_5 and self.state is not State.AWAIT_LOGIN:
            self.send(mqtt.encode_disconnect(MQTT_5, code))
        self.close(reason, fault=True)

    def next_packet_id(self) -> int:
        """The next packet identifier, skipping those of unacknowledged messages."""
        while True:
            self.packet_id = self.packet_id % 0xFFFF + 1
            if self.packet_id not in self.inflight:
                return self.packet_id

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Send a downlink message; False when not sent (see ``downlink``)."""
        return self.downlink(topic, payload, qos) is None

    def downlink(
        self, topic: str, payload: bytes, qos: int = 0, ping_id: str | None = None
    ) -> str | None:
        """Send a downlink message if the device subscribed to it, at the lower of the
        message's and the subscription's QoS, if it fits the device's ``rxbuff`` and (QoS 1)
        the device has room for another unacknowledged message. None when sent, else why not.

        A ping (``ping_id``) goes at QoS 1 whatever QoS the subscription has, as Blynk.Cloud
        sends it: its PUBACK is the answer (Blynk's own samples subscribe ``downlink/#`` at QoS
        0 and rely on it; every client library acknowledges a QoS 1 message it receives)."""
        granted = max(
            (q for f, q in self.subscriptions.items() if mqtt.topic_matches(f, topic)), default=-1
        )
        if granted < 0:
            if topic not in ALWAYS_DELIVERED:
                return f"the device has not subscribed to {topic}"
            granted = 0
        qos = 1 if ping_id is not None else min(qos, granted)
        if qos and len(self.inflight) >= self.receive_max:
            return (
                f"the device has {len(self.inflight)} QoS 1 messages unacknowledged, "
                f"as many as it may have"
            )
        packet_id = self.next_packet_id() if qos else 0
        data = mqtt.encode_publish(topic, payload, self.version, qos, packet_id)
        if len(data) > self.buffer_in:
            log.warning(
                "device %d: dropped a %d-byte message (its rxbuff is %d)",
                self.device_id,
                len(data),
                self.buffer_in,
            )
            return (
                f"the message is {len(data)} bytes; the device accepts at most "
                f"{self.buffer_in} (its rxbuff)"
            )
        self.send(data)
        if self.state is State.CLOSED:
            return "the connection closed"
        if qos:
            self.inflight[packet_id] = (time.monotonic(), ping_id)
        return None

    def on_puback(self, packet_id: int) -> None:
        """A QoS 1 downlink acknowledged (an unknown identifier, e.g. acknowledged twice, is
        ignored); a ping's acknowledgement goes to whoever asked for it."""
        sent = self.inflight.pop(packet_id, None)
        if sent is not None and sent[1] is not None:
            self.report_ping(sent[1], (time.monotonic() - sent[0]) * 1000)

    def report_ping(self, ping_id: str, rtt_ms: float | None) -> None:
        """Say over the bus that a ping was acknowledged (``rtt_ms``), or never will be."""
        answer: Message = {"node": self.core.node, "acked": rtt_ms is not None}
        if rtt_ms is None:
            answer["reason"] = "the connection closed before the device acknowledged the ping"
        else:
            answer["rtt_ms"] = round(rtt_ms, 3)
        self.core.spawn(self.core.bus.publish(device_actions.ping_subject(ping_id), answer))

    def diag(self, text: str) -> None:
        """Tell the device what it did wrong (Blynk's ``downlink/diag``)."""
        self.publish("downlink/diag", text.encode())

    # --- the session core's hooks ---
    def answer_login(self, status: int) -> None:
        v311, v5 = _CONNACK[Status(status)]
        if self.version == MQTT_5:
            props: mqtt.Properties = {}
            if status == Status.OK:
                props = {
                    mqtt.MAXIMUM_QOS: 1,
                    mqtt.SHARED_AVAILABLE: 0,
                    mqtt.SUBSCRIPTION_IDS_AVAILABLE: 0,
                    mqtt.MAXIMUM_PACKET_SIZE: self.decoder.max_packet + 5,
                }
            self.send(mqtt.encode_connack(v5, MQTT_5, properties=props))
        else:
            self.send(mqtt.encode_connack(v311, mqtt.MQTT_311))

    def held_info(self) -> tuple[Publish, str | None] | None:
        for packet in self.held:
            if isinstance(packet, Publish) and packet.topic == "info/mcu":
                return packet, _info(packet.payload).get("template_id") or None
        return None

    def refuse_info(self, item: Publish) -> None:
        self.held.remove(item)
        if self.version == MQTT_5:
            self.send(mqtt.encode_disconnect(MQTT_5, Reason.NOT_AUTHORIZED))

    async def prepare(self) -> None:
        """The template's datastreams (names and pins), read at login."""
        self.names = await self.core.datastreams.get(self.template_id)
        self.pins = {pin: name for name, pin in self.names.items()}

    def deliver_kind(self, kind: str, args: list[Any]) -> bool | None:
        if kind == "hardware" and len(args) >= 3 and args[0] == "vw":
            name = self.pins.get(int(args[1]))
            if name is None:
                return False  # the device's template has no datastream on that pin
            return self.publish(f"downlink/ds/{name}", _join(args[2:]), qos=1)
        if kind == "redirect" and len(args) == 2:
            return self.publish(
                "downlink/redirect", f"{self.scheme}://{args[0]}:{args[1]}".encode()
            )
        if kind == "internal" and args == ["dbg", devices.RECONFIGURE]:
            # Blynk's "Reconfigure" (the app's device menu): downlink/reconfigure, empty
            return self.publish("downlink/reconfigure", b"")
        return None  # Blynk's MQTT API has no such command (other console commands)

    # --- protocol ---
    def handle(self, packet: Packet) -> None:
        if self.state is State.AWAIT_LOGIN:
            if isinstance(packet, mqtt.Connect):
                self.on_connect(packet)
            else:
                self.close("MQTT: sent a packet before CONNECT")
            return
        if isinstance(packet, Publish):
            self.on_publish(packet)
        elif isinstance(packet, Subscribe):
            self.on_subscribe(packet)
        elif isinstance(packet, Unsubscribe):
            codes = [
                0 if self.subscriptions.pop(f, None) is not None else 0x11 for f in packet.filters
            ]
            self.send(mqtt.encode_unsuback(packet.packet_id, codes, self.version))
        elif isinstance(packet, mqtt.PingReq):
            self.send(mqtt.PINGRESP)
        elif isinstance(packet, mqtt.Disconnect):
            self.close(None)
        elif isinstance(packet, Ack):
            if packet.kind != mqtt.Type.PUBACK:  # (QoS 2 flows: never started by us)
                self.fail("MQTT: unexpected QoS 2 acknowledgement", Reason.PROTOCOL_ERROR)
            else:
                self.on_puback(packet.packet_id)
        elif isinstance(packet, mqtt.Connect):
            self.fail("MQTT: a second CONNECT", Reason.PROTOCOL_ERROR)
        else:
            self.fail(f"MQTT: a client may not send {type(packet).__name__}", Reason.PROTOCOL_ERROR)

    def on_connect(self, packet: mqtt.Connect) -> None:
        self.version = packet.version
        if len(packet.client_id) > MAX_CLIENT_ID:
            code = Reason.CLIENT_ID_INVALID if self.version == MQTT_5 else 2
            self.send(mqtt.encode_connack(code, self.version))
            self.close(f"MQTT: client id longer than {MAX_CLIENT_ID} characters")
            return
        if packet.username != USERNAME or not packet.password:
            self.failed_credentials()
            return
        receive_max = packet.properties.get(mqtt.RECEIVE_MAXIMUM, MAX_INFLIGHT)
        if receive_max == 0:  # MQTT 5 §3.1.2.11.3: a Protocol Error
            self.send(mqtt.encode_connack(Reason.PROTOCOL_ERROR, self.version))
            self.close("MQTT: CONNECT with a Receive Maximum of 0")
            return
        self.receive_max = min(MAX_INFLIGHT, receive_max)
        if packet.keepalive:
            self.heartbeat_timeout = packet.keepalive * KEEPALIVE_FACTOR
        else:
            self.heartbeat_timeout = math.inf  # keepalive 0: the client asked for none
        self.state = State.LOGGING_IN
        self.core.spawn(self.core.login(self, packet.password.strip()))

    def failed_credentials(self) -> None:
        """Not user ``device`` with a password: refused like a wrong token (and counted)."""
        core = self.core
        if core.throttle.failed(self.address, time.monotonic()):
            log.warning("%s: too many failed logins: throttling this address", self.address)
        core.failed_logins.add(self.address)
        self.answer_login(Status.INVALID_TOKEN)
        self.close(None)

    def on_subscribe(self, packet: Subscribe) -> None:
        codes = []
        for topic_filter, options in packet.filters:
            try:
                mqtt.check_topic_filter(topic_filter)
            except mqtt.ProtocolError:
                codes.append(Reason.TOPIC_FILTER_INVALID if self.version == MQTT_5 else 0x80)
                continue
            if topic_filter.split("/", 1)[0] != "downlink":
                codes.append(Reason.NOT_AUTHORIZED if self.version == MQTT_5 else 0x80)
                continue
            qos = min(options & 3, 1)
            self.subscriptions[topic_filter] = qos
            codes.append(qos)
        self.send(mqtt.encode_suback(packet.packet_id, codes, self.version))

    def on_publish(self, packet: Publish) -> None:
        if packet.qos == 2:
            self.fail("MQTT: QoS 2 is not supported", Reason.QOS_NOT_SUPPORTED)
            return
        try:
            self.uplink(packet.topic, packet.payload)
        except ValueError as exc:  # bad payload or unknown name: said, connection kept
            self.diag(f"{packet.topic}: {exc}")
        if packet.qos == 1:
            self.send(mqtt.encode_puback(packet.packet_id, self.version))

    def uplink(self, topic: str, payload: bytes) -> None:
        """One message of Blynk's uplink topics."""
        text = payload.decode("utf-8")  # (UnicodeDecodeError is a ValueError)
        device, writer = self.device_id, self.core.writer
        levels = topic.split("/")
        if levels[0] == "ds" and len(levels) == 2:
            writer.pin(device, self._pin(levels[1]), text.split("\0"), time.time())
        elif levels[0] == "ds" and len(levels) == 4 and levels[2] == "prop":
            writer.property(device, self._pin(levels[1]), levels[3][:64], text)
        elif levels[0] == "event" and len(levels) == 2 and levels[1]:
            writer.event(device, levels[1][:64], text, time.time())
        elif levels[0] == "meta" and len(levels) == 2 and levels[1]:
            name = levels[1][:64]
            if name in self.meta or len(self.meta) < MAX_META_FIELDS:
                self.meta[name] = text[:MAX_META_VALUE]
                writer.device_meta(device, dict(self.meta))
        elif topic == "info/mcu":
            self.on_info(payload)
        elif topic == "get/ds":
            names = [n.strip() for n in text.split(",") if n.strip()]
            for name in names:
                self._pin(name)  # unknown names are said before anything is sent
            self.get_values(names)
        elif topic == "get/ds/all":
            self.get_values(sorted(self.names, key=self.names.__getitem__))
        elif topic == "get/meta":
            wanted = [n.strip() for n in text.split(",") if n.strip()] or list(self.meta)
            for name in wanted:
                if name in self.meta:
                    self.publish(f"downlink/meta/{name}", self.meta[name].encode())
        elif topic == "get/utc/all/json":
            body = json.dumps(utc_json(time.time(), self.core.time_zone))
            self.publish("downlink/utc/all/json", body.encode())
        else:
            raise ValueError("not a topic of Blynk's MQTT API")

    def _pin(self, name: str) -> int:
        pin = self.names.get(name)
        if pin is None:
            raise ValueError(f"no datastream named {name[:64]!r} in this device's template")
        return pin

    def on_info(self, payload: bytes) -> None:
        info = _info(payload)
        if not info:
            raise ValueError("info/mcu is not a JSON object")
        rxbuff = info.get("rxbuff")
        if rxbuff is not None:
            try:
                self.buffer_in = max(64, min(65535, int(rxbuff)))
            except ValueError:
                pass
        if info.get("template_id") and info["template_id"] != self.template_id:
            log.info(
                "device %d: its firmware reports template %s, not its template %s",
                self.device_id,
                info["template_id"][:40],
                self.template_id,
            )
        self.core.writer.device_info(self.device_id, info, self.buffer_in)

    def get_values(self, names: list[str]) -> None:
        if self.gets >= MAX_GETS:
            raise ValueError(f"more than {MAX_GETS} get/ds requests at once: wait for answers")
        self.gets += 1
        self.core.spawn(self.send_values(names))

    async def send_values(self, names: list[str]) -> None:
        """``get/ds``: each named datastream's current value on ``downlink/ds/<name>``."""
        try:
            values = await self.core.current_pins(self.device_id)
        except DatabaseUnavailable:
            self.diag("get/ds: the cloud's database is unavailable, try again")
            return
        finally:
            self.gets -= 1
        for name in names:
            pin = self.names.get(name)
            if pin is not None and pin in values:
                self.publish(f"downlink/ds/{name}", _join(values[pin]))


def _join(values: list[Any]) -> bytes:
    return "\0".join(str(v) for v in values).encode()


# info/mcu keys -> the names the device's info is stored under (as the Blynk protocol's)
_INFO_KEYS = {
    "tmpl": "template_id",
    "ver": "firmware_version",
    "build": "build",
    "type": "firmware_type",
    "rxbuff": "rxbuff",
}


def _info(payload: bytes) -> dict[str, str]:
    """``info/mcu`` JSON (``tmpl``, ``ver``, ``build``, ``type``, ``rxbuff``) under wifiprov's
    info names, values as text (at most 32 keys); {} when it is not a JSON object."""
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    info: dict[str, str] = {}
    for key, value in list(data.items())[:32]:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            info[_INFO_KEYS.get(str(key), str(key))[:64]] = str(value)[:128]
    return info


class WebSocketTransport:
    """What an ``MqttConnection`` writes to, when it is carried by WebSocket: every write is one
    binary message."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.upgraded = False  # the handshake is done: frames may be written
        self.closing = False

    def write(self, data: bytes) -> None:
        self.transport.write(websocket.encode(websocket.BINARY, data))

    def close(self) -> None:
        if self.upgraded and not self.closing:
            self.closing = True
            self.transport.write(websocket.encode(websocket.CLOSE, struct.pack("!H", 1000)))
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return int(self.transport.get_write_buffer_size())


class MqttOverWebSocket(asyncio.Protocol):
    """MQTT over WebSocket at ``/mqtt`` (subprotocol ``mqtt``): the upgrade, then each binary
    message's bytes go to an ``MqttConnection`` (which keeps the login timeout from the TCP
    connection on)."""

    def __init__(self, core: DeviceSessions, scheme: str) -> None:
        self.mqtt = MqttConnection(core, scheme)
        self.head = b""
        self.decoder: websocket.Decoder | None = None  # after the upgrade
        self.transport: Any = None
        self.ws: WebSocketTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ws = WebSocketTransport(transport)
        self.mqtt.opened_on(self.ws)

    def connection_lost(self, exc: Exception | None) -> None:
        self.mqtt.connection_lost(exc)

    def pause_writing(self) -> None:
        self.mqtt.pause_writing()

    def resume_writing(self) -> None:
        self.mqtt.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.mqtt.state is State.CLOSED:
            return
        if self.decoder is None:
            self._handshake(data)
            return
        try:
            messages = self.decoder.feed(data)
        except websocket.WebSocketError as exc:
            self.mqtt.close(f"WebSocket: {exc}", fault=True)
            return
        for opcode, payload in messages:
            if opcode == websocket.BINARY:
                self.mqtt.data_received(payload)
            elif opcode == websocket.PING:
                self.transport.write(websocket.encode(websocket.PONG, payload))
            elif opcode == websocket.CLOSE:
                self.mqtt.close(None)
            elif opcode == websocket.TEXT:
                self.mqtt.close("WebSocket: MQTT travels in binary messages", fault=True)
            if self.mqtt.state is State.CLOSED:
                return

    def _handshake(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > websocket.MAX_REQUEST:
                self._refuse(400, "request head too long")
            return
        rest = self.head[end + 4 :]
        try:
            request = websocket.parse_request(self.head[:end])
        except websocket.WebSocketError as exc:
            self._refuse(exc.status, str(exc))
            return
        if request.path != WS_PATH:
            self._refuse(404, f"MQTT is at {WS_PATH}")
            return
        if request.protocols and "mqtt" not in request.protocols:
            self._refuse(400, "the WebSocket subprotocol must be mqtt")
            return
        self.transport.write(websocket.accept(request.key, "mqtt" if request.protocols else None))
        self.decoder = websocket.Decoder(self.mqtt.decoder.max_packet + 5)
        if self.ws is not None:
            self.ws.upgraded = True
        self.head = b""
        if rest:
            self.data_received(rest)

    def _refuse(self, status: int, reason: str) -> None:
        self.transport.write(websocket.refuse(status, reason))
        self.mqtt.state = State.CLOSED  # (nothing more to write through the MQTT side)
        self.transport.close()


def act(core: DeviceSessions, msg: Message) -> Message | None:
    """``device_actions.DEVICE_ACTIONS`` on the node: reply only when holding the device's live
    connection, ``{"node", "delivered", "sent"}`` or ``{"node", "delivered": false,
    "reason"}``."""
    try:
        device_id, action = int(msg["device_id"]), str(msg["action"])
    except (KeyError, TypeError, ValueError):
        log.warning("dropped a malformed device action on the bus")
        return None
    conn = core.sessions.get(device_id)
    if conn is None or conn.state is not State.ONLINE:
        return None
    sent, why = "", None
    if isinstance(conn, MqttConnection):
        if action == "ping":
            sent = "downlink/ping (QoS 1)"
            ping_id = str(msg.get("ping_id", ""))
            if not (ping_id.isascii() and ping_id.isalnum() and len(ping_id) <= 32):
                log.warning("dropped a ping without a well-formed id")
                return None
            why = conn.downlink("downlink/ping", b"", 1, ping_id)
        elif action == "reboot":
            sent = "downlink/reboot"
            why = conn.downlink("downlink/reboot", b"")
        else:
            why = f"no such action: {action[:32]}"
    elif action == "reboot":  # Blynk's device menu "Reboot": INTERNAL dbg reboot (docs/cloud.md)
        sent = "INTERNAL dbg reboot"
        if not conn.deliver_kind("internal", ["dbg", "reboot"]):
            why = "the connection could not take the message"
    elif action == "ping":
        why = (
            f"the device is connected over {conn.protocol}: pinging it from the cloud is not "
            "supported yet (only devices on Blynk's MQTT API answer a ping here)"
        )
    else:
        why = f"no such action: {action[:32]}"
    if why is not None:
        return {"node": core.node, "delivered": False, "reason": why}
    return {"node": core.node, "delivered": True, "sent": sent}


async def start_listeners(gateway: Gateway) -> list[asyncio.Server]:
    """The MQTT listeners the settings ask for (``--mqtt``, ``--mqtt-tls``, ``--mqtt-ws``,
    ``--mqtt-wss``)."""
    from wifiprov.cloud.gateway import tls_context

    loop = asyncio.get_running_loop()
    s = gateway.settings
    # Ping and reboot, for devices of either protocol (the core unsubscribes it at stop).
    actions = await gateway.bus.subscribe(
        device_actions.DEVICE_ACTIONS, lambda msg: act(gateway, msg)
    )
    gateway._subs.append(actions)
    servers = []
    if s.mqtt:
        servers.append(
            await loop.create_server(lambda: MqttConnection(gateway, "tcp"), *s.mqtt, backlog=4096)
        )
        if s.mqtt[1] == 0:
            s.mqtt = servers[-1].sockets[0].getsockname()[:2]
    if s.mqtt_ws:
        servers.append(
            await loop.create_server(
                lambda: MqttOverWebSocket(gateway, "ws"), *s.mqtt_ws, backlog=4096
            )
        )
        if s.mqtt_ws[1] == 0:
            s.mqtt_ws = servers[-1].sockets[0].getsockname()[:2]
    if s.mqtt_wss:
        servers.append(
            await loop.create_server(
                lambda: MqttOverWebSocket(gateway, "wss"),
                *s.mqtt_wss,
                ssl=tls_context(s),
                backlog=4096,
            )
        )
        if s.mqtt_wss[1] == 0:
            s.mqtt_wss = servers[-1].sockets[0].getsockname()[:2]
    if s.mqtt_tls:
        servers.append(
            await loop.create_server(
                lambda: MqttConnection(gateway, "tls"),
                *s.mqtt_tls,
                ssl=tls_context(s),
                backlog=4096,
            )
        )
        if s.mqtt_tls[1] == 0:
            s.mqtt_tls = servers[-1].sockets[0].getsockname()[:2]
    return servers


def addresses(gateway: Gateway) -> dict[str, tuple[str, int]]:
    s = gateway.settings
    found = {"mqtt": s.mqtt, "mqtt_tls": s.mqtt_tls, "mqtt_ws": s.mqtt_ws, "mqtt_wss": s.mqtt_wss}
    return {k: v for k, v in found.items() if v is not None}
