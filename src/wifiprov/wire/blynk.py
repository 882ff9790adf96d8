"""The Blynk device protocol (device <-> cloud), with no I/O.

A frame is a 5-byte big-endian header ``type:u8 msg_id:u16 length:u16`` and ``length`` bytes of
body; body arguments are separated by NUL with no trailing NUL. A RESPONSE (type 0) has no body:
its length field carries the status code. msg_id 0 is invalid; ids count 1..65535 and wrap to 1.

``Decoder`` is fed received bytes and returns whole frames; ``encode``/``encode_response`` turn
frames into bytes. The only exception raised for a peer's bad bytes is ``ProtocolError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum
from typing import NamedTuple

HEADER = struct.Struct("!BHH")
HEADER_SIZE = HEADER.size
MAX_MSG_ID = 0xFFFF
# The protocol allows bodies up to 2**16 - 1 bytes; a receiver caps what it accepts.
DEFAULT_MAX_BODY = 1024


class Command(IntEnum):
    RESPONSE = 0
    LOGIN = 2  # legacy login, still sent by blynklib
    PING = 6
    BRIDGE = 15
    HARDWARE_SYNC = 16
    INTERNAL = 17
    PROPERTY = 19
    HARDWARE = 20
    GROUP = 21
    HW_LOGIN = 29
    REDIRECT = 41
    DEBUG_PRINT = 55
    EVENT_LOG = 64
    EVENT_CLEAR = 65


class Status(IntEnum):
    OK = 200
    QUOTA_LIMIT = 1
    ILLEGAL_COMMAND = 2
    NOT_REGISTERED = 3
    ALREADY_REGISTERED = 4
    NOT_AUTHENTICATED = 5
    NOT_ALLOWED = 6
    DEVICE_NOT_IN_NETWORK = 7
    INVALID_TOKEN = 9
    ILLEGAL_COMMAND_BODY = 11
    TIMEOUT = 16
    DEVICE_WENT_OFFLINE = 18
    SERVER_EXCEPTION = 19


LOGIN_COMMANDS = frozenset({Command.LOGIN, Command.HW_LOGIN})
KNOWN_COMMANDS = frozenset(int(c) for c in Command)


class ProtocolError(Exception):
    """The peer sent bytes that break the protocol; the connection should be closed."""


class Frame(NamedTuple):
    command: int
    msg_id: int
    body: bytes = b""
    status: int = 0  # RESPONSE frames only

    @property
    def args(self) -> list[bytes]:
        return split_args(self.body)

    def text_args(self) -> list[str]:
        """The arguments as text; a body that is not UTF-8 is a protocol error."""
        try:
            return self.body.decode("utf-8").split("\0") if self.body else []
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"command {self.command}: body is not UTF-8") from exc


def split_args(body: bytes) -> list[bytes]:
    return body.split(b"\0") if body else []


Arg = str | bytes | int | float


def _to_bytes(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    return str(arg).encode("utf-8")


def join_args(args: Iterable[Arg]) -> bytes:
    return b"\0".join(_to_bytes(a) for a in args)


def next_msg_id(msg_id: int) -> int:
    """The id after ``msg_id``: 1..65535, wrapping to 1 (0 is never used)."""
    return msg_id % MAX_MSG_ID + 1


def encode(command: int, msg_id: int, *args: Arg) -> bytes:
    """A non-RESPONSE frame with its arguments joined by NUL."""
    return encode_body(command, msg_id, join_args(args))


def encode_body(command: int, msg_id: int, body: bytes) -> bytes:
    if command == Command.RESPONSE:
        raise ValueError("use encode_response for RESPONSE frames")
    if not 1 <= msg_id <= MAX_MSG_ID:
        raise ValueError(f"msg_id {msg_id} out of range 1..{MAX_MSG_ID}")
    if len(body) > 0xFFFF:
        raise ValueError(f"body of {len(body)} bytes does not fit the 16-bit length field")
    return HEADER.pack(command, msg_id, len(body)) + body


def encode_response(msg_id: int, status: int) -> bytes:
    if not 1 <= msg_id <= MAX_MSG_ID:
        raise ValueError(f"msg_id {msg_id} out of range 1..{MAX_MSG_ID}")
    return HEADER.pack(Command.RESPONSE, msg_id, status)


def encode_frame(frame: Frame) -> bytes:
    if frame.command == Command.RESPONSE:
        return encode_response(frame.msg_id, frame.status)
    return encode_body(frame.command, frame.msg_id, frame.body)


class Decoder:
    """Incremental frame decoder with a hard cap on body size.

    ``feed`` returns every complete frame in the bytes received so far and keeps the rest.
    After it raises ``ProtocolError`` the stream is unusable.
    """

    __slots__ = ("max_body", "_buf")

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.max_body = max_body
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        unpack = HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            command, msg_id, length = unpack(buf, pos)
            if msg_id == 0:
                raise ProtocolError("msg_id 0 is invalid")
            if command == Command.RESPONSE:
                frames.append(Frame(command, msg_id, b"", length))
                pos += HEADER_SIZE
                continue
            if length > self.max_body:
                raise ProtocolError(f"body of {length} bytes exceeds the limit of {self.max_body}")
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            frames.append(Frame(command, msg_id, bytes(buf[pos + HEADER_SIZE : stop])))
            pos = stop
        if pos:
            del buf[:pos]
        return frames


# --- device info (the INTERNAL message a device sends right after login) -------------------------

# Both generations of key names, mapped to one vocabulary. Current C++: mcu, fw-type, build,
# blynk, h-beat, buff-in, dev, tmpl. Older C++ and Python libraries: ver, fw, h-beat, buff-in, dev,
# fw-type, build, tmpl.
INFO_KEYS = {
    "mcu": "firmware_version",
    "fw": "firmware_version",
    "ncp": "ncp_version",
    "fw-type": "firmware_type",
    "build": "build",
    "blynk": "library_version",
    "ver": "library_version",
    "h-beat": "heartbeat",
    "buff-in": "buffer_in",
    "dev": "board",
    "cpu": "cpu",
    "con": "connection",
    "tmpl": "template_id",
}


def is_info(args: list[str]) -> bool:
    """Whether an INTERNAL message from a device is its info message (not ``rtc``, ``meta``)."""
    return bool(args) and args[0] in INFO_KEYS


def parse_info(args: list[str]) -> dict[str, str]:
    """Key/value pairs of an info message, under wifiprov's names; unknown keys kept as sent.

    A trailing empty argument (older libraries sent one) and an unpaired last key are ignored.
    """
    info: dict[str, str] = {}
    for i in range(0, len(args) - 1, 2):
        key, value = args[i], args[i + 1]
        if key:
            info[INFO_KEYS.get(key, key)] = value
    return info


def int_or(value: str | None, default: int, lo: int, hi: int) -> int:
    """An integer field of the info message, clamped to ``lo..hi``; ``default`` if unparsable."""
    try:
        n = int(value) if value is not None else default
    except ValueError:
        return default
    return max(lo, min(hi, n))
