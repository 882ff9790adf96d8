"""Unit tests for wifiprov.wire.websocket with RFC 6455's own examples (section 1.3: the accept
key; section 5.7: single-frame, fragmented, ping and 256-byte / 64 KiB messages)."""

from __future__ import annotations

import pytest

from wifiprov.wire import websocket
from wifiprov.wire.websocket import BINARY, PING, PONG, TEXT, Decoder, WebSocketError

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def test_accept_key_of_the_rfc() -> None:
    answer = websocket.accept("dGhlIHNhbXBsZSBub25jZQ==", "mqtt")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Protocol: mqtt\r\n" in answer and answer.endswith(b"\r\n\r\n")


def test_frames_of_the_rfc() -> None:
    assert websocket.encode(TEXT, b"Hello") == b"\x81\x05\x48\x65\x6c\x6c\x6f"
    masked = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"  # masked "Hello"
    assert websocket.mask_frame(TEXT, b"Hello", MASK) == masked
    assert Decoder(1024).feed(masked) == [(TEXT, b"Hello")]
    assert websocket.encode(PONG, b"Hello") == b"\x8a\x05Hello"
    assert websocket.encode(BINARY, bytes(256))[:4] == b"\x82\x7e\x01\x00"
    assert websocket.encode(BINARY, bytes(65536))[:10] == b"\x82\x7f" + (65536).to_bytes(8, "big")


def test_fragments_with_a_ping_between_them() -> None:
    data = (
        websocket.mask_frame(TEXT, b"Hel", MASK, fin=False)
        + websocket.mask_frame(PING, b"", MASK)
        + websocket.mask_frame(0, b"lo", MASK)
    )
    decoder = Decoder(1024)
    out = []
    for i in range(len(data)):  # byte by byte
        out += decoder.feed(data[i : i + 1])
    assert out == [(PING, b""), (TEXT, b"Hello")]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x82\x05Hello", "not masked"),
        (b"\xc2\x80" + MASK, "reserved bits"),
        (websocket.mask_frame(0, b"x", MASK), "continuation without"),
        (websocket.mask_frame(3, b"x", MASK), "reserved opcode"),
        (websocket.mask_frame(PING, b"x", MASK, fin=False), "control frame"),
        (websocket.mask_frame(BINARY, bytes(2000), MASK), "over 1024"),
    ],
)
def test_bad_frames(data: bytes, words: str) -> None:
    with pytest.raises(WebSocketError, match=words):
        Decoder(1024).feed(data)


def test_upgrade_requests() -> None:
    head = (
        b"GET /mqtt?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, "
        b"Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
        b"\r\nSec-WebSocket-Protocol: mqtt, mqttv3.1"
    )
    assert websocket.parse_request(head) == websocket.Request(
        "/mqtt", "dGhlIHNhbXBsZSBub25jZQ==", ["mqtt", "mqttv3.1"]
    )
    with pytest.raises(WebSocketError, match="version 13"):
        websocket.parse_request(head.replace(b"Version: 13", b"Version: 8"))
    with pytest.raises(WebSocketError, match="Key"):
        websocket.parse_request(head.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"))
    with pytest.raises(WebSocketError, match="not an HTTP GET"):
        websocket.parse_request(b"POST /mqtt HTTP/1.1\r\n")
