"""The server side of WebSocket (RFC 6455), with no I/O: the opening handshake and frames.

Enough to carry MQTT over WebSocket (MQTT 5 section 6: binary frames, subprotocol ``mqtt``):
``parse_request`` reads a client's upgrade request, ``accept`` answers it; ``Decoder`` is fed
bytes and returns whole messages (fragments joined, client frames unmasked, control frames
kept apart), ``encode`` makes an unmasked server frame. Bad input raises ``WebSocketError``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import NamedTuple

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_REQUEST = 8192  # bytes of an upgrade request's head
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(Exception):
    """The peer broke the handshake or the framing; ``status`` for a handshake answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Request(NamedTuple):
    path: str
    key: str
    protocols: list[str]


def parse_request(head: bytes) -> Request:
    """An HTTP/1.1 upgrade request's head (up to and without the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise WebSocketError(str(exc)) from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/1."):
        raise WebSocketError("not an HTTP GET request")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise WebSocketError("a malformed header line")
        headers[name.strip().lower()] = value.strip()
    if "websocket" not in headers.get("upgrade", "").lower():
        raise WebSocketError("not a WebSocket upgrade", 426)
    if "upgrade" not in headers.get("connection", "").lower():
        raise WebSocketError("not a WebSocket upgrade (Connection)", 426)
    if headers.get("sec-websocket-version") != "13":
        raise WebSocketError("WebSocket version 13 only", 426)
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except ValueError:
        raise WebSocketError("a bad Sec-WebSocket-Key") from None
    protocols = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    return Request(parts[1].split("?", 1)[0], key, [p for p in protocols if p])


def accept(key: str, protocol: str | None) -> bytes:
    """The 101 answer to an upgrade request with ``key``, choosing ``protocol``."""
    digest = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {digest}",
    ]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def refuse(status: int, reason: str) -> bytes:
    phrase = {400: "Bad Request", 404: "Not Found", 426: "Upgrade Required"}.get(status, "Error")
    body = reason.encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n"
    ).encode() + body


def encode(opcode: int, payload: bytes = b"") -> bytes:
    """One final, unmasked (server) frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class Decoder:
    """Client frames to messages: ``feed`` returns (opcode, payload) pairs; a data message is
    returned whole once its last fragment arrives, and its size is capped at ``max_size``."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._opcode: int | None = None  # of the data message being fragmented
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while True:
            frame = self._frame()
            if frame is None:
                return out
            fin, opcode, payload = frame
            if opcode >= CLOSE:
                if not fin or len(payload) > 125:
                    raise WebSocketError("a fragmented or long control frame")
                out.append((opcode, payload))
                continue
            if opcode == CONTINUATION:
                if self._opcode is None:
                    raise WebSocketError("a continuation without a message")
            elif opcode in (TEXT, BINARY):
                if self._opcode is not None:
                    raise WebSocketError("a new message inside a fragmented one")
                self._opcode = opcode
            else:
                raise WebSocketError(f"reserved opcode {opcode}")
            self._parts.append(payload)
            if fin:
                out.append((self._opcode, b"".join(self._parts)))
                self._opcode, self._parts, self._size = None, [], 0

    def _frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        if first & 0x70:
            raise WebSocketError("reserved bits set (no extension was agreed)")
        if not second & 0x80:
            raise WebSocketError("a client frame that is not masked")
        length, pos = second & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        self._size += length
        if self._size > self.max_size:
            raise WebSocketError(f"a message over {self.max_size} bytes")
        if len(buf) < pos + 4 + length:
            self._size -= length
            return None
        mask = bytes(buf[pos : pos + 4])
        payload = _unmask(bytes(buf[pos + 4 : pos + 4 + length]), mask)
        del buf[: pos + 4 + length]
        return bool(first & 0x80), first & 0x0F, payload


def _unmask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    key = int.from_bytes((mask * (len(data) // 4 + 1))[: len(data)], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(len(data), "big")


def mask_frame(opcode: int, payload: bytes, mask: bytes, fin: bool = True) -> bytes:
    """A masked (client) frame: for tests and load generators."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + _unmask(payload, mask)
