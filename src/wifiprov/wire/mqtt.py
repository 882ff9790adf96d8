"""MQTT 3.1.1 and 5 packets, with no I/O (the server side of Blynk's MQTT device API).

A packet is a fixed header (type and flags in one byte, then the remaining length as a variable
byte integer of at most 4 bytes) and ``remaining length`` bytes. ``Decoder`` is fed received
bytes and returns whole packets as small dataclasses; it refuses a remaining length over its
limit as soon as the length is read (nothing of the body is buffered). The protocol version a
CONNECT announces decides how later packets are read (MQTT 5 adds properties and reason codes).
``encode_*`` functions turn packets into bytes, for both sides (the client ones serve tests and
the benchmark). The only exception raised for a peer's bad bytes is ``ProtocolError``; its
``reason`` is the MQTT 5 reason code a server answers it with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

MQTT_311 = 4
MQTT_5 = 5
DEFAULT_MAX_PACKET = 64 * 1024  # remaining length a receiver accepts unless told otherwise
MAX_REMAINING = 268_435_455  # the largest a 4-byte variable byte integer holds


class Type(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class Reason(IntEnum):
    """MQTT 5 reason codes used here (3.1.1 CONNACK codes are ``ConnectCode``)."""

    SUCCESS = 0x00
    GRANTED_QOS_1 = 0x01
    UNSPECIFIED = 0x80
    MALFORMED = 0x81
    PROTOCOL_ERROR = 0x82
    UNSUPPORTED_VERSION = 0x84
    CLIENT_ID_INVALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_TOO_LARGE = 0x95
    QUOTA_EXCEEDED = 0x97
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C


class ConnectCode(IntEnum):
    """MQTT 3.1.1 CONNACK return codes."""

    ACCEPTED = 0
    UNACCEPTABLE_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USER_NAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class ProtocolError(Exception):
    """The peer sent bytes that break MQTT; the connection should be closed (MQTT 5: after a
    DISCONNECT carrying ``reason``)."""

    def __init__(self, message: str, reason: int = Reason.MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


class UnsupportedVersion(ProtocolError):
    """A CONNECT of a protocol level other than 4 (3.1.1) or 5: answer CONNACK 1 / 0x84."""

    def __init__(self, level: int) -> None:
        super().__init__(f"unsupported protocol level {level}", Reason.UNSUPPORTED_VERSION)
        self.level = level


# --- properties (MQTT 5, section 2.2.2.2) ---
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES: dict[int, int] = {
    0x01: _BYTE,  # payload format indicator
    0x02: _U32,  # message expiry interval
    0x03: _STR,  # content type
    0x08: _STR,  # response topic
    0x09: _BIN,  # correlation data
    0x0B: _VARINT,  # subscription identifier
    0x11: _U32,  # session expiry interval
    0x12: _STR,  # assigned client identifier
    0x13: _U16,  # server keep alive
    0x15: _STR,  # authentication method
    0x16: _BIN,  # authentication data
    0x17: _BYTE,  # request problem information
    0x18: _U32,  # will delay interval
    0x19: _BYTE,  # request response information
    0x1A: _STR,  # response information
    0x1C: _STR,  # server reference
    0x1F: _STR,  # reason string
    0x21: _U16,  # receive maximum
    0x22: _U16,  # topic alias maximum
    0x23: _U16,  # topic alias
    0x24: _BYTE,  # maximum QoS
    0x25: _BYTE,  # retain available
    0x26: _PAIR,  # user property (may repeat)
    0x27: _U32,  # maximum packet size
    0x28: _BYTE,  # wildcard subscription available
    0x29: _BYTE,  # subscription identifiers available
    0x2A: _BYTE,  # shared subscription available
}
USER_PROPERTY = 0x26
TOPIC_ALIAS = 0x23
SESSION_EXPIRY = 0x11
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_AVAILABLE = 0x28
SUBSCRIPTION_IDS_AVAILABLE = 0x29
SHARED_AVAILABLE = 0x2A
SERVER_KEEP_ALIVE = 0x13
ASSIGNED_CLIENT_ID = 0x12
REASON_STRING = 0x1F

Properties = dict[int, Any]  # user properties (0x26): a list of (name, value) pairs


# --- packets ---
@dataclass(frozen=True)
class Connect:
    version: int
    client_id: str
    clean: bool
    keepalive: int
    username: str | None = None
    password: bytes | None = None
    will_topic: str | None = None
    will_payload: bytes = b""
    will_qos: int = 0
    will_retain: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True)
class ConnAck:
    session_present: bool
    code: int
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True)
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (``kind``)."""

    kind: int
    packet_id: int
    reason: int = 0


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    filters: list[tuple[str, int]]  # (topic filter, options byte: QoS in the low 2 bits)
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True)
class SubAck:
    packet_id: int
    codes: list[int]


@dataclass(frozen=True)
class Unsubscribe:
    packet_id: int
    filters: list[str]


@dataclass(frozen=True)
class UnsubAck:
    packet_id: int
    codes: list[int]


@dataclass(frozen=True)
class PingReq:
    pass


@dataclass(frozen=True)
class PingResp:
    pass


@dataclass(frozen=True)
class Disconnect:
    reason: int = 0
    properties: Properties = field(default_factory=dict)


Packet = (
    Connect
    | ConnAck
    | Publish
    | Ack
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)


# --- primitives ---
def encode_varint(value: int) -> bytes:
    if not 0 <= value <= MAX_REMAINING:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_string(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string holds at most 65535 bytes")
    return struct.pack("!H", len(data)) + data


def encode_binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("MQTT binary data holds at most 65535 bytes")
    return struct.pack("!H", len(data)) + data


def encode_properties(props: Properties) -> bytes:
    out = bytearray()
    for ident, value in props.items():
        kind = PROPERTY_TYPES[ident]
        items = value if kind == _PAIR else [value]
        for item in items:
            out += encode_varint(ident)
            if kind == _BYTE:
                out.append(item)
            elif kind == _U16:
                out += struct.pack("!H", item)
            elif kind == _U32:
                out += struct.pack("!I", item)
            elif kind == _VARINT:
                out += encode_varint(item)
            elif kind == _STR:
                out += encode_string(item)
            elif kind == _BIN:
                out += encode_binary(item)
            else:
                out += encode_string(item[0]) + encode_string(item[1])
    return encode_varint(len(out)) + bytes(out)


class _Reader:
    """Reads one packet's body; running past its end is a malformed packet."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left:
            raise ProtocolError("packet shorter than its contents")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack("!I", self.take(4))[0]
        return value

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise ProtocolError("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        return decode_utf8(self.binary())

    def properties(self) -> Properties:
        end = self.varint()
        if end > self.left:
            raise ProtocolError("properties longer than the packet")
        end += self.pos
        props: Properties = {}
        while self.pos < end:
            ident = self.varint()
            kind = PROPERTY_TYPES.get(ident)
            if kind is None:
                raise ProtocolError(f"unknown property 0x{ident:02x}")
            value: Any
            if kind == _BYTE:
                value = self.byte()
            elif kind == _U16:
                value = self.u16()
            elif kind == _U32:
                value = self.u32()
            elif kind == _VARINT:
                value = self.varint()
            elif kind == _STR:
                value = self.string()
            elif kind == _BIN:
                value = self.binary()
            else:
                value = (self.string(), self.string())
            if kind == _PAIR:
                props.setdefault(ident, []).append(value)
            elif ident in props and ident != 0x0B:
                raise ProtocolError(f"property 0x{ident:02x} given twice", Reason.PROTOCOL_ERROR)
            else:
                props[ident] = value
        if self.pos != end:
            raise ProtocolError("a property runs past the properties' length")
        return props


def decode_utf8(data: bytes) -> str:
    """An MQTT UTF-8 string: well-formed UTF-8 (no surrogates) without U+0000."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("a string is not valid UTF-8") from None
    if "\0" in text:
        raise ProtocolError("a string holds U+0000")
    return text


def check_topic_name(topic: str) -> None:
    """A PUBLISH topic: not empty, no wildcard."""
    if not topic:
        raise ProtocolError("empty topic name", Reason.TOPIC_NAME_INVALID)
    if "+" in topic or "#" in topic:
        raise ProtocolError("wildcard in a PUBLISH topic", Reason.TOPIC_NAME_INVALID)


def check_topic_filter(topic: str) -> None:
    """A SUBSCRIBE filter: not empty; ``#`` only last and alone in its level; ``+`` alone."""
    if not topic:
        raise ProtocolError("empty topic filter", Reason.TOPIC_FILTER_INVALID)
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ProtocolError("misplaced '#' in a topic filter", Reason.TOPIC_FILTER_INVALID)
        if "+" in level and level != "+":
            raise ProtocolError("misplaced '+' in a topic filter", Reason.TOPIC_FILTER_INVALID)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (with ``+`` and ``#``)."""
    fl, tl = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(fl):
        if level == "#":
            return True
        if i >= len(tl) or (level != "+" and level != tl[i]):
            return False
    return len(fl) == len(tl)


# --- decoding ---
_FLAGS = {  # required fixed-header flags (PUBLISH carries its own)
    Type.CONNECT: 0,
    Type.CONNACK: 0,
    Type.PUBACK: 0,
    Type.PUBREC: 0,
    Type.PUBREL: 2,
    Type.PUBCOMP: 0,
    Type.SUBSCRIBE: 2,
    Type.SUBACK: 0,
    Type.UNSUBSCRIBE: 2,
    Type.UNSUBACK: 0,
    Type.PINGREQ: 0,
    Type.PINGRESP: 0,
    Type.DISCONNECT: 0,
    Type.AUTH: 0,
}


class Decoder:
    """Incremental decoder. ``feed`` returns whole packets; a remaining length over
    ``max_packet`` raises at once. ``version`` is 4 (3.1.1) until a CONNECT says otherwise (a
    client sets it from what it sent)."""

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET, version: int = MQTT_311) -> None:
        self.max_packet = max_packet
        self.version = version
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        packets: list[Packet] = []
        buf = self._buf
        pos = 0
        while True:
            if len(buf) - pos < 2:
                break
            length, shift, i = 0, 0, pos + 1
            complete = False
            while i < len(buf) and i < pos + 5:
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    complete = True
                    break
            if not complete:
                if i >= pos + 5:
                    raise ProtocolError("remaining length longer than 4 bytes")
                break
            if length > self.max_packet:
                raise ProtocolError(
                    f"packet of {length} bytes over the limit of {self.max_packet}",
                    Reason.PACKET_TOO_LARGE,
                )
            if len(buf) - i < length:
                break
            first = buf[pos]
            body = bytes(buf[i : i + length])
            pos = i + length
            packets.append(self.decode(first, body))
        del buf[:pos]
        return packets

    def decode(self, first: int, body: bytes) -> Packet:
        """One packet from its first byte and body."""
        kind, flags = first >> 4, first & 0x0F
        if kind == 3 and flags < 2:  # QoS 0 PUBLISH, the common case: no general reader
            fast = _publish_qos0(body, flags, self.version)
            if fast is not None:
                return fast
        if kind == 0:
            raise ProtocolError("packet type 0 is reserved")
        ptype = Type(kind)
        if ptype is not Type.PUBLISH and flags != _FLAGS[ptype]:
            raise ProtocolError(f"{ptype.name} with wrong flags 0x{flags:x}")
        r = _Reader(body)
        packet: Packet
        if ptype is Type.CONNECT:
            packet = self._connect(r)
        elif ptype is Type.PUBLISH:
            packet = self._publish(r, flags)
        elif ptype in (Type.PUBACK, Type.PUBREC, Type.PUBREL, Type.PUBCOMP):
            pid = _packet_id(r)
            reason = 0
            if self.version == MQTT_5 and r.left:
                reason = r.byte()
                if r.left:
                    r.properties()
            packet = Ack(int(ptype), pid, reason)
        elif ptype is Type.SUBSCRIBE:
            packet = self._subscribe(r)
        elif ptype is Type.UNSUBSCRIBE:
            pid = _packet_id(r)
            if self.version == MQTT_5:
                r.properties()
            filters = []
            while r.left:
                filters.append(r.string())
            if not filters:
                raise ProtocolError("UNSUBSCRIBE without a topic filter", Reason.PROTOCOL_ERROR)
            packet = Unsubscribe(pid, filters)
        elif ptype is Type.PINGREQ:
            packet = PingReq()
        elif ptype is Type.PINGRESP:
            packet = PingResp()
        elif ptype is Type.DISCONNECT:
            reason, props = 0, {}
            if self.version == MQTT_5 and r.left:
                reason = r.byte()
                if r.left:
                    props = r.properties()
            packet = Disconnect(reason, props)
        elif ptype is Type.CONNACK:
            ack_flags = r.byte()
            if ack_flags & 0xFE:
                raise ProtocolError("CONNACK with reserved flags set")
            code = r.byte()
            props = r.properties() if self.version == MQTT_5 else {}
            packet = ConnAck(bool(ack_flags & 1), code, props)
        elif ptype in (Type.SUBACK, Type.UNSUBACK):
            pid = _packet_id(r)
            if self.version == MQTT_5:
                r.properties()
            codes = list(r.take(r.left))
            packet = SubAck(pid, codes) if ptype is Type.SUBACK else UnsubAck(pid, codes)
        else:
            raise ProtocolError("AUTH is not supported", Reason.PROTOCOL_ERROR)
        if r.left:
            raise ProtocolError(f"{ptype.name} longer than its contents")
        return packet

    def _connect(self, r: _Reader) -> Connect:
        name = r.binary()
        level = r.byte()
        if name != b"MQTT":
            if name == b"MQIsdp":  # MQTT 3.1
                raise UnsupportedVersion(level)
            raise ProtocolError(f"protocol name {name[:16]!r} is not MQTT", Reason.PROTOCOL_ERROR)
        if level not in (MQTT_311, MQTT_5):
            raise UnsupportedVersion(level)
        self.version = level
        flags = r.byte()
        if flags & 0x01:
            raise ProtocolError("CONNECT with the reserved flag set")
        keepalive = r.u16()
        props = r.properties() if level == MQTT_5 else {}
        client_id = r.string()
        will = bool(flags & 0x04)
        will_qos, will_retain = (flags >> 3) & 3, bool(flags & 0x20)
        if will_qos == 3 or (not will and (will_qos or will_retain)):
            raise ProtocolError("CONNECT with invalid will flags")
        will_topic, will_payload = None, b""
        if will:
            if level == MQTT_5:
                r.properties()
            will_topic = r.string()
            check_topic_name(will_topic)
            will_payload = r.binary()
        username = r.string() if flags & 0x80 else None
        if flags & 0x40 and level == MQTT_311 and username is None:
            raise ProtocolError("CONNECT with a password but no user name")
        password = r.binary() if flags & 0x40 else None
        return Connect(
            level,
            client_id,
            bool(flags & 0x02),
            keepalive,
            username,
            password,
            will_topic,
            will_payload,
            will_qos,
            will_retain,
            props,
        )

    def _publish(self, r: _Reader, flags: int) -> Publish:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        dup = bool(flags & 0x08)
        if dup and qos == 0:
            raise ProtocolError("PUBLISH with DUP set at QoS 0")
        topic = r.string()
        pid = _packet_id(r) if qos else 0
        props = r.properties() if self.version == MQTT_5 else {}
        if not topic and TOPIC_ALIAS in props:
            raise ProtocolError("topic aliases are not accepted", Reason.PROTOCOL_ERROR)
        check_topic_name(topic)
        return Publish(topic, r.take(r.left), qos, bool(flags & 1), dup, pid, props)

    def _subscribe(self, r: _Reader) -> Subscribe:
        pid = _packet_id(r)
        props = r.properties() if self.version == MQTT_5 else {}
        filters: list[tuple[str, int]] = []
        while r.left:
            topic = r.string()
            options = r.byte()
            reserved = 0xC0 if self.version == MQTT_5 else 0xFC
            if options & reserved or options & 3 == 3:
                raise ProtocolError("SUBSCRIBE with invalid options")
            filters.append((topic, options))
        if not filters:
            raise ProtocolError("SUBSCRIBE without a topic filter", Reason.PROTOCOL_ERROR)
        return Subscribe(pid, filters, props)


def _publish_qos0(body: bytes, flags: int, version: int) -> Publish | None:
    """A QoS 0 PUBLISH (the bulk of a device's data) without properties; None when it has
    properties (MQTT 5), for the general reader."""
    if len(body) < 2:
        raise ProtocolError("packet shorter than its contents")
    end = 2 + ((body[0] << 8) | body[1])
    if end > len(body):
        raise ProtocolError("packet shorter than its contents")
    if version == MQTT_5:
        if end >= len(body) or body[end] != 0:
            return None  # properties follow (or the packet is short): the general reader
        payload = body[end + 1 :]
    else:
        payload = body[end:]
    topic = decode_utf8(body[2:end])
    check_topic_name(topic)
    return Publish(topic, payload, 0, bool(flags & 1))


def _packet_id(r: _Reader) -> int:
    pid = r.u16()
    if pid == 0:
        raise ProtocolError("packet identifier 0", Reason.PROTOCOL_ERROR)
    return pid


# --- encoding ---
def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


def encode_connack(
    code: int, version: int, session_present: bool = False, properties: Properties | None = None
) -> bytes:
    body = bytes([1 if session_present else 0, code])
    if version == MQTT_5:
        body += encode_properties(properties or {})
    return _packet(0x20, body)


def encode_publish(
    topic: str,
    payload: bytes,
    version: int,
    qos: int = 0,
    packet_id: int = 0,
    retain: bool = False,
    dup: bool = False,
    properties: Properties | None = None,
) -> bytes:
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = encode_string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == MQTT_5:
        body += encode_properties(properties or {})
    return _packet(first, body + payload)


def encode_ack(kind: int, packet_id: int, version: int, reason: int = 0) -> bytes:
    """PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7); MQTT 5 adds a non-zero reason."""
    first = (kind << 4) | (2 if kind == Type.PUBREL else 0)
    body = struct.pack("!H", packet_id)
    if version == MQTT_5 and reason:
        body += bytes([reason])
    return _packet(first, body)


def encode_puback(packet_id: int, version: int, reason: int = 0) -> bytes:
    return encode_ack(Type.PUBACK, packet_id, version, reason)


def encode_suback(packet_id: int, codes: list[int], version: int) -> bytes:
    body = struct.pack("!H", packet_id)
    if version == MQTT_5:
        body += encode_properties({})
    return _packet(0x90, body + bytes(codes))


def encode_unsuback(packet_id: int, codes: list[int], version: int) -> bytes:
    """3.1.1's UNSUBACK has no codes; MQTT 5's has one per filter."""
    body = struct.pack("!H", packet_id)
    if version == MQTT_5:
        body += encode_properties({}) + bytes(codes)
    return _packet(0xB0, body)


PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"


def encode_disconnect(version: int, reason: int = 0, properties: Properties | None = None) -> bytes:
    if version != MQTT_5 or (not reason and not properties):
        return b"\xe0\x00"
    body = bytes([reason])
    if properties:
        body += encode_properties(properties)
    return _packet(0xE0, body)


def encode_connect(
    client_id: str,
    version: int = MQTT_311,
    keepalive: int = 60,
    username: str | None = None,
    password: bytes | None = None,
    clean: bool = True,
    properties: Properties | None = None,
) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    body = encode_string("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == MQTT_5:
        body += encode_properties(properties or {})
    body += encode_string(client_id)
    if username is not None:
        body += encode_string(username)
    if password is not None:
        body += encode_binary(password)
    return _packet(0x10, body)


def encode_subscribe(
    packet_id: int, filters: list[tuple[str, int]], version: int = MQTT_311
) -> bytes:
    body = struct.pack("!H", packet_id)
    if version == MQTT_5:
        body += encode_properties({})
    for topic, options in filters:
        body += encode_string(topic) + bytes([options])
    return _packet(0x82, body)


def encode_unsubscribe(packet_id: int, filters: list[str], version: int = MQTT_311) -> bytes:
    body = struct.pack("!H", packet_id)
    if version == MQTT_5:
        body += encode_properties({})
    for topic in filters:
        body += encode_string(topic)
    return _packet(0xA2, body)
