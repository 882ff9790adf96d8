"""The MQTT connection's QoS 1 downlinks on their own (no sockets): packet identifiers of
unacknowledged messages are never reused, the budget of unacknowledged messages, a ping at QoS 1
whatever the subscription's QoS, and where a ping's PUBACK is reported."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from wifiprov.cloud.mqtt_gateway import MAX_INFLIGHT, MqttConnection
from wifiprov.cloud.sessions import State
from wifiprov.wire import mqtt


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0


def connection(subscriptions: dict[str, int]) -> tuple[MqttConnection, list[Any], Transport]:
    reported: list[Any] = []
    core = SimpleNamespace(
        settings=SimpleNamespace(mqtt_max_packet=4096),
        node="node-x",
        bus=SimpleNamespace(publish=lambda subject, message: (subject, message)),
        spawn=reported.append,
    )
    conn = MqttConnection(core, "tcp")  # type: ignore[arg-type]
    transport = Transport()
    conn.transport, conn.state, conn.subscriptions = transport, State.ONLINE, subscriptions
    return conn, reported, transport


def sent(transport: Transport) -> list[mqtt.Publish]:
    packets = mqtt.Decoder().feed(b"".join(transport.written))
    return [p for p in packets if isinstance(p, mqtt.Publish)]


def test_identifiers_of_unacknowledged_messages_are_skipped_when_they_wrap() -> None:
    conn, _, transport = connection({"downlink/#": 1})
    conn.packet_id = 0xFFFE
    conn.inflight = {0xFFFF: (0.0, None), 1: (0.0, None)}
    assert conn.downlink("downlink/ds/A", b"x", 1) is None
    assert sent(transport)[0].packet_id == 2
    conn.on_puback(0xFFFF)
    assert set(conn.inflight) == {1, 2}


def test_the_budget_of_unacknowledged_messages() -> None:
    conn, _, transport = connection({"downlink/#": 1})
    conn.receive_max = 2
    assert conn.downlink("downlink/ds/A", b"1", 1) is None
    assert conn.downlink("downlink/ds/A", b"2", 1) is None
    why = conn.downlink("downlink/ds/A", b"3", 1)
    assert why is not None and "2 QoS 1 messages unacknowledged" in why
    assert conn.downlink("downlink/diag", b"QoS 0 still goes", 0) is None
    conn.on_puback(1)
    conn.on_puback(1)  # acknowledged twice: ignored
    assert conn.downlink("downlink/ds/A", b"3", 1) is None
    assert [p.payload for p in sent(transport)] == [b"1", b"2", b"QoS 0 still goes", b"3"]
    assert MAX_INFLIGHT == 100


def test_a_ping_goes_at_qos_1_under_a_qos_0_subscription_and_its_puback_is_reported() -> None:
    conn, reported, transport = connection({"downlink/#": 0})
    assert conn.downlink("downlink/ds/A", b"v", 1) is None  # capped at the subscription's QoS 0
    assert conn.downlink("downlink/ping", b"", 1, "abc123") is None
    first, ping = sent(transport)
    assert (first.qos, ping.qos, ping.topic, ping.payload) == (0, 1, "downlink/ping", b"")
    assert conn.inflight[ping.packet_id][1] == "abc123"
    conn.on_puback(ping.packet_id)
    [(subject, answer)] = reported
    assert subject == "wifiprov.device.pings.abc123"
    assert answer["acked"] is True and answer["node"] == "node-x" and answer["rtt_ms"] >= 0
    assert conn.inflight == {}


def test_a_ping_still_waiting_when_the_connection_ends_is_reported_unanswered() -> None:
    conn, reported, _ = connection({"downlink/ping": 1})
    conn.core.forget = lambda c: None  # type: ignore[attr-defined]
    assert conn.downlink("downlink/ping", b"", 1, "p1") is None
    conn.connection_lost(None)
    [(subject, answer)] = reported
    assert subject.endswith(".p1") and answer["acked"] is False
    assert "closed before the device acknowledged" in answer["reason"]


def test_not_subscribed_says_so_and_sends_nothing() -> None:
    conn, _, transport = connection({"downlink/ds/+": 1})
    assert conn.downlink("downlink/ping", b"", 1, "p2") == (
        "the device has not subscribed to downlink/ping"
    )
    assert conn.downlink("downlink/redirect", b"tcp://h:1") is None  # always delivered
    assert [p.topic for p in sent(transport)] == ["downlink/redirect"]
