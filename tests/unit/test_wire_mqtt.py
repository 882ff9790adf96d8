"""Unit tests for wifiprov.wire.mqtt: MQTT 3.1.1 and 5 packets (PROTOCOLS.md section 6).

Byte vectors are the specifications' own examples where they give one (OASIS MQTT 3.1.1 and 5.0:
the remaining-length table, the UTF-8 string example, the CONNECT variable headers of 3.1.2.10
and 3.1.2.11 / 5.0 figure 3-6) and otherwise the spec's field layout written out by hand.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wifiprov.wire import mqtt
from wifiprov.wire.mqtt import (
    MQTT_5,
    MQTT_311,
    Ack,
    ConnAck,
    Connect,
    Decoder,
    Disconnect,
    PingReq,
    ProtocolError,
    Publish,
    Reason,
    Subscribe,
    Unsubscribe,
    UnsupportedVersion,
)

# MQTT 3.1.1 table 2.4 / MQTT 5 table 1-1: size of the variable byte integer.
REMAINING_LENGTHS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"),
    (2_097_152, b"\x80\x80\x80\x01"),
    (268_435_455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("value", "encoded"), REMAINING_LENGTHS)
def test_remaining_length_examples_of_the_spec(value: int, encoded: bytes) -> None:
    assert mqtt.encode_varint(value) == encoded


def test_utf8_string_example_of_the_spec() -> None:
    # 3.1.1 figure 1.3 / 5.0 figure 1-2: "A\U0002A6D4" is 00 05 41 F0 AA 9B 94
    assert mqtt.encode_string("A\U0002a6d4") == b"\x00\x05\x41\xf0\xaa\x9b\x94"


def test_connect_variable_header_example_311() -> None:
    # 3.1.1 figure 3.6: protocol name MQTT, level 4, flags CE (user, password, will QoS 1,
    # will flag, clean session), keep alive 10.
    header = b"\x00\x04MQTT\x04\xce\x00\x0a"
    payload = (
        mqtt.encode_string("c1")
        + mqtt.encode_string("w/t")
        + mqtt.encode_binary(b"bye")
        + mqtt.encode_string("device")
        + mqtt.encode_binary(b"secret")
    )
    body = header + payload
    [packet] = Decoder().feed(b"\x10" + mqtt.encode_varint(len(body)) + body)
    assert packet == Connect(
        MQTT_311,
        "c1",
        True,
        10,
        "device",
        b"secret",
        "w/t",
        b"bye",
        1,
        False,
    )


def test_connect_variable_header_example_5() -> None:
    # 5.0 figure 3-6: 00 04 MQTT 05 C2 00 0A, properties length 5, session expiry (0x11) = 10.
    header = b"\x00\x04MQTT\x05\xc2\x00\x0a\x05\x11\x00\x00\x00\x0a"
    body = header + mqtt.encode_string("") + mqtt.encode_string("device")
    body += mqtt.encode_binary(b"T" * 32)
    decoder = Decoder()
    [packet] = decoder.feed(b"\x10" + mqtt.encode_varint(len(body)) + body)
    assert isinstance(packet, Connect)
    assert packet.version == MQTT_5 and decoder.version == MQTT_5
    assert packet.properties == {mqtt.SESSION_EXPIRY: 10}
    assert (packet.client_id, packet.username, packet.password) == ("", "device", b"T" * 32)
    assert packet.clean and packet.keepalive == 10


def test_connect_encoder_round_trips() -> None:
    for version in (MQTT_311, MQTT_5):
        data = mqtt.encode_connect("dev-1", version, 45, "device", b"x" * 32)
        [packet] = Decoder().feed(data)
        assert packet == Connect(version, "dev-1", True, 45, "device", b"x" * 32)


def test_fixed_packets() -> None:
    assert mqtt.PINGREQ == b"\xc0\x00" and mqtt.PINGRESP == b"\xd0\x00"
    assert mqtt.encode_disconnect(MQTT_311) == b"\xe0\x00"
    assert mqtt.encode_disconnect(MQTT_5) == b"\xe0\x00"  # reason 0 may be left out
    assert mqtt.encode_disconnect(MQTT_5, Reason.KEEP_ALIVE_TIMEOUT) == b"\xe0\x01\x8d"
    assert Decoder().feed(b"\xc0\x00\xe0\x00") == [PingReq(), Disconnect()]


def test_connack_bytes() -> None:
    assert mqtt.encode_connack(0, MQTT_311) == b"\x20\x02\x00\x00"
    assert mqtt.encode_connack(4, MQTT_311) == b"\x20\x02\x00\x04"
    assert mqtt.encode_connack(0x86, MQTT_5) == b"\x20\x03\x00\x86\x00"
    data = mqtt.encode_connack(0, MQTT_5, properties={mqtt.MAXIMUM_QOS: 1, 0x22: 0})
    assert data == b"\x20\x08\x00\x00\x05\x24\x01\x22\x00\x00"
    [packet] = Decoder(version=MQTT_5).feed(data)
    assert packet == ConnAck(False, 0, {mqtt.MAXIMUM_QOS: 1, 0x22: 0})


def test_publish_bytes_311_and_5() -> None:
    # QoS 1, topic "ds/Temp", packet id 10, payload "21.5"
    data = mqtt.encode_publish("ds/Temp", b"21.5", MQTT_311, qos=1, packet_id=10)
    assert data == b"\x32\x0f\x00\x07ds/Temp\x00\x0a21.5"
    assert Decoder().feed(data) == [Publish("ds/Temp", b"21.5", 1, False, False, 10)]
    v5 = mqtt.encode_publish("ds/Temp", b"21.5", MQTT_5)
    assert v5 == b"\x30\x0e\x00\x07ds/Temp\x0021.5"  # QoS 0: no id; empty properties
    assert Decoder(version=MQTT_5).feed(v5) == [Publish("ds/Temp", b"21.5")]


def test_puback_bytes() -> None:
    assert mqtt.encode_puback(10, MQTT_311) == b"\x40\x02\x00\x0a"
    assert mqtt.encode_puback(10, MQTT_5, 0x10) == b"\x40\x03\x00\x0a\x10"
    assert Decoder(version=MQTT_5).feed(b"\x40\x02\x00\x0a") == [Ack(4, 10, 0)]
    assert Decoder(version=MQTT_5).feed(b"\x40\x04\x00\x0a\x10\x00") == [Ack(4, 10, 0x10)]


def test_subscribe_and_suback() -> None:
    data = mqtt.encode_subscribe(1, [("downlink/#", 1)])
    assert data == b"\x82\x0f\x00\x01\x00\x0adownlink/#\x01"
    assert Decoder().feed(data) == [Subscribe(1, [("downlink/#", 1)])]
    assert mqtt.encode_suback(1, [1, 0x80], MQTT_311) == b"\x90\x04\x00\x01\x01\x80"
    assert mqtt.encode_suback(1, [0x87], MQTT_5) == b"\x90\x04\x00\x01\x00\x87"


def test_unsubscribe_and_unsuback() -> None:
    data = mqtt.encode_unsubscribe(2, ["downlink/#"], MQTT_5)
    assert Decoder(version=MQTT_5).feed(data) == [Unsubscribe(2, ["downlink/#"])]
    assert mqtt.encode_unsuback(2, [0], MQTT_311) == b"\xb0\x02\x00\x02"
    assert mqtt.encode_unsuback(2, [0, 0x11], MQTT_5) == b"\xb0\x05\x00\x02\x00\x00\x11"


def test_properties_round_trip_with_user_properties() -> None:
    props = {0x26: [("a", "1"), ("a", "2")], 0x1F: "why", 0x27: 1024, 0x09: b"\x00\x01"}
    data = mqtt.encode_publish("t", b"", MQTT_5, properties=props)
    [packet] = Decoder(version=MQTT_5).feed(data)
    assert isinstance(packet, Publish) and packet.properties == props


def test_incremental_feed_byte_by_byte() -> None:
    data = mqtt.encode_connect("c", MQTT_5, 45, "device", b"t" * 32)
    data += mqtt.encode_publish("ds/a", b"1\x002", MQTT_5, qos=1, packet_id=7)
    decoder = Decoder()
    out: list[object] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    assert len(out) == 2
    assert out[1] == Publish("ds/a", b"1\x002", 1, False, False, 7)


@given(
    topic=st.text(
        st.characters(blacklist_characters="+#\0", blacklist_categories=("Cs",)), min_size=1
    ).filter(lambda t: len(t.encode()) < 1000),
    payload=st.binary(max_size=2000),
    qos=st.integers(0, 1),
    version=st.sampled_from([MQTT_311, MQTT_5]),
)
def test_publish_round_trip(topic: str, payload: bytes, qos: int, version: int) -> None:
    data = mqtt.encode_publish(topic, payload, version, qos=qos, packet_id=qos and 65535)
    assert Decoder(version=version).feed(data) == [
        Publish(topic, payload, qos, False, False, qos and 65535)
    ]


@given(st.binary(max_size=300))
def test_garbage_raises_only_protocol_error(data: bytes) -> None:
    try:
        Decoder(max_packet=256).feed(data)
    except ProtocolError:
        pass


# --- bad input ---
def _publish_raw(topic: bytes, flags: int = 0) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + b"v"
    return bytes([0x30 | flags]) + mqtt.encode_varint(len(body)) + body


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (b"\x00\x00", Reason.MALFORMED, "reserved"),
        (b"\x82\x02\x00\x01", Reason.PROTOCOL_ERROR, "without a topic filter"),
        (b"\x80\x02\x00\x01", Reason.MALFORMED, "wrong flags"),  # SUBSCRIBE needs flags 2
        (b"\xc1\x00", Reason.MALFORMED, "wrong flags"),
        (b"\xc0\xff\xff\xff\xff\x01", Reason.MALFORMED, "longer than 4 bytes"),
        (_publish_raw(b"ds/+"), Reason.TOPIC_NAME_INVALID, "wildcard"),
        (_publish_raw(b"ds/#"), Reason.TOPIC_NAME_INVALID, "wildcard"),
        (_publish_raw(b""), Reason.TOPIC_NAME_INVALID, "empty"),
        (_publish_raw(b"ds/\xff\xfe"), Reason.MALFORMED, "UTF-8"),
        (_publish_raw(b"ds/\xed\xa0\x80"), Reason.MALFORMED, "UTF-8"),  # a surrogate
        (_publish_raw(b"ds/\x00"), Reason.MALFORMED, r"U\+0000"),
        (_publish_raw(b"t", flags=0x06), Reason.MALFORMED, "QoS 3"),
        (_publish_raw(b"t", flags=0x08), Reason.MALFORMED, "DUP"),
        (b"\x30\x05\x00\x09abc", Reason.MALFORMED, "shorter"),
        (b"\x40\x02\x00\x00", Reason.PROTOCOL_ERROR, "identifier 0"),
        (b"\xc0\x01\x00", Reason.MALFORMED, "longer than its contents"),
    ],
)
def test_bad_packets_raise_a_clear_error(data: bytes, reason: int, words: str) -> None:
    with pytest.raises(ProtocolError, match=words) as caught:
        Decoder().feed(data)
    assert caught.value.reason == reason


def test_remaining_length_over_the_limit_is_refused_before_the_body() -> None:
    decoder = Decoder(max_packet=1024)
    with pytest.raises(ProtocolError, match="over the limit") as caught:
        decoder.feed(b"\x30" + mqtt.encode_varint(1025))  # header only: no body yet
    assert caught.value.reason == Reason.PACKET_TOO_LARGE
    assert Decoder(max_packet=1024).feed(mqtt.encode_publish("t", b"x" * 1019, MQTT_311))


def test_connect_versions_and_names() -> None:
    v3 = b"\x00\x06MQIsdp\x03\x02\x00\x0a" + mqtt.encode_string("c")
    with pytest.raises(UnsupportedVersion) as caught:
        Decoder().feed(b"\x10" + mqtt.encode_varint(len(v3)) + v3)
    assert caught.value.level == 3 and caught.value.reason == Reason.UNSUPPORTED_VERSION
    v6 = b"\x00\x04MQTT\x06\x02\x00\x0a" + mqtt.encode_string("c")
    with pytest.raises(UnsupportedVersion):
        Decoder().feed(b"\x10" + mqtt.encode_varint(len(v6)) + v6)
    other = b"\x00\x04MQTU\x04\x02\x00\x0a" + mqtt.encode_string("c")
    with pytest.raises(ProtocolError, match="not MQTT"):
        Decoder().feed(b"\x10" + mqtt.encode_varint(len(other)) + other)
    reserved = b"\x00\x04MQTT\x04\x03\x00\x0a" + mqtt.encode_string("c")
    with pytest.raises(ProtocolError, match="reserved flag"):
        Decoder().feed(b"\x10" + mqtt.encode_varint(len(reserved)) + reserved)
    # 3.1.1: a password without a user name is malformed
    nouser = b"\x00\x04MQTT\x04\x42\x00\x0a" + mqtt.encode_string("c") + mqtt.encode_binary(b"p")
    with pytest.raises(ProtocolError, match="no user name"):
        Decoder().feed(b"\x10" + mqtt.encode_varint(len(nouser)) + nouser)


def test_properties_errors() -> None:
    unknown = b"\x00\x01t\x02\x7f\x00"  # topic "t", properties length 2: id 0x7f
    with pytest.raises(ProtocolError, match="unknown property"):
        Decoder(version=MQTT_5).feed(b"\x30" + bytes([len(unknown)]) + unknown)
    twice = b"\x00\x01t\x04\x01\x00\x01\x01"  # payload format indicator twice
    with pytest.raises(ProtocolError, match="twice"):
        Decoder(version=MQTT_5).feed(b"\x30" + bytes([len(twice)]) + twice)
    alias = b"\x00\x00\x03\x23\x00\x01v"  # empty topic + a topic alias
    with pytest.raises(ProtocolError, match="alias"):
        Decoder(version=MQTT_5).feed(b"\x30" + bytes([len(alias)]) + alias)


@pytest.mark.parametrize(
    ("topic_filter", "ok"),
    [("downlink/#", True), ("downlink/+/x", True), ("#", True), ("a/#/b", False), ("a+", False)],
)
def test_topic_filters(topic_filter: str, ok: bool) -> None:
    if ok:
        mqtt.check_topic_filter(topic_filter)
    else:
        with pytest.raises(ProtocolError):
            mqtt.check_topic_filter(topic_filter)


def test_topic_matching() -> None:
    assert mqtt.topic_matches("downlink/#", "downlink/ds/Temp")
    assert mqtt.topic_matches("downlink/ds/+", "downlink/ds/Temp")
    assert not mqtt.topic_matches("downlink/ds/+", "downlink/ds/a/prop")
    assert mqtt.topic_matches("downlink/#", "downlink")  # '#' includes the parent level
    assert not mqtt.topic_matches("downlink/meta", "downlink/ping")
