"""The device's cloud link: the Blynk device protocol, client side, as a thin shell on wire.blynk.

``CloudLink.open`` connects (TLS on ``port_ssl`` with certificate verification when set, plain TCP
on ``port`` otherwise), logs in with HW_LOGIN and sends the info message in the current C++ key
set. Failures are ``LinkError`` with the provisioning code a user can act on (710 DNS, 711 TLS,
702 unreachable, 703 token rejected, 705 other). ``run`` then serves the connection until it is
lost: answers pings, pings after ``heartbeat`` seconds idle, gives up after 2.3 heartbeats without
input, follows REDIRECT, and hands pin writes and console commands (INTERNAL ``dbg``) to callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status
from wifiprov.wire.errors import ProvisioningError as E

log = logging.getLogger("wifiprov.device.link")

LOGIN_TIMEOUT = 10.0


class LinkError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class LinkSettings:
    token: str
    host: str
    port: int | None
    port_ssl: int | None = None
    ca_file: str | None = None  # None: the system's trusted roots
    heartbeat: int = 40
    buffer_in: int = 1024
    info: dict[str, str] = field(default_factory=dict)  # mcu, fw-type, build, dev, tmpl ...


@dataclass
class LinkCallbacks:
    on_write: Callable[[int, list[str]], None] = lambda pin, values: None
    on_console: Callable[[str], None] = lambda command: None


class CloudLink:
    def __init__(self, settings: LinkSettings, callbacks: LinkCallbacks | None = None) -> None:
        self.settings = settings
        self.callbacks = callbacks or LinkCallbacks()
        self.host = settings.host
        self.port = settings.port_ssl or settings.port
        self.tls = settings.port_ssl is not None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = blynk.Decoder(settings.buffer_in)
        self._pending: list[blynk.Frame] = []
        self._msg_id = 0
        self._last_input = self._last_output = 0.0
        self.ping_ms: float | None = None

    # --- connecting ---
    async def open(self, timeout: float) -> None:
        """Connect and log in; LinkError with a provisioning code on failure."""
        try:
            async with asyncio.timeout(timeout):
                await self._connect()
                await self._login()
        except TimeoutError:
            await self.close()
            raise LinkError(E.CLOUD_TIMEOUT, f"no answer from {self.host}:{self.port}") from None
        except LinkError:
            await self.close()
            raise

    async def _connect(self) -> None:
        ctx: ssl.SSLContext | None = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.settings.ca_file)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise LinkError(E.DNS_FAILED, f"cannot resolve {self.host}: {exc}") from None
        family, _, _, _, address = infos[0]
        try:
            self._reader, self._writer = await asyncio.open_connection(
                str(address[0]),
                int(address[1]),
                ssl=ctx,
                server_hostname=self.host if ctx else None,
                family=family,
            )
        except ssl.SSLCertVerificationError as exc:
            message = f"{self.host}'s certificate: {exc.verify_message}"
            raise LinkError(E.TLS_REJECTED, message) from None
        except ssl.SSLError as exc:
            raise LinkError(E.TLS_REJECTED, f"TLS with {self.host} failed: {exc}") from None
        except OSError as exc:
            raise LinkError(
                E.CLOUD_TIMEOUT, f"cannot connect to {self.host}:{self.port}: {exc.strerror}"
            ) from None
        self._decoder = blynk.Decoder(self.settings.buffer_in)
        self._msg_id = 0

    async def _login(self) -> None:
        started = time.monotonic()
        self._send(Command.HW_LOGIN, self.settings.token)
        reply = await self._next_frame()
        if reply is None:
            raise LinkError(E.CLOUD_OTHER, "the cloud closed the connection at login")
        if reply.command == Command.REDIRECT:
            await self._follow(reply)
            return await self._login()
        if reply.command != Command.RESPONSE or reply.msg_id != 1:
            raise LinkError(E.CLOUD_OTHER, f"unexpected answer to login: command {reply.command}")
        if reply.status == Status.INVALID_TOKEN:
            raise LinkError(E.TOKEN_REJECTED, "the cloud rejected the token (status 9)")
        if reply.status not in (Status.OK, Status.ALREADY_REGISTERED):
            raise LinkError(E.CLOUD_OTHER, f"login failed with status {reply.status}")
        self.ping_ms = (time.monotonic() - started) * 1000
        info = {
            **self.settings.info,
            "h-beat": str(self.settings.heartbeat),
            "buff-in": str(self.settings.buffer_in),
        }
        self._send(Command.INTERNAL, *[x for kv in _ordered(info) for x in kv])

    async def _follow(self, frame: blynk.Frame) -> None:
        args = frame.text_args()
        self.host = args[0]
        self.port = int(args[1]) if len(args) > 1 and args[1] else 80
        log.info("redirected to %s:%d", self.host, self.port)
        await self.close()
        await self._connect()

    # --- serving ---
    async def run(self) -> str:
        """Serve the connection until it is lost; returns the reason in words."""
        hb = self.settings.heartbeat
        while self._reader is not None:
            idle = time.monotonic() - max(self._last_input, self._last_output)
            try:
                frame = await asyncio.wait_for(self._next_frame(), max(0.05, hb - idle))
            except TimeoutError:
                if time.monotonic() - self._last_input > hb * 2.3:
                    await self.close()
                    return "heartbeat timeout"
                self._send(Command.PING)
                continue
            except (LinkError, blynk.ProtocolError) as exc:
                await self.close()
                return str(exc)
            if frame is None:
                await self.close()
                return "the cloud closed the connection"
            reason = await self._handle(frame)
            if reason:
                return reason
        return "closed"

    async def _handle(self, frame: blynk.Frame) -> str | None:
        if frame.command == Command.PING:
            self._respond(frame.msg_id, Status.OK)
        elif frame.command == Command.HARDWARE:
            args = frame.text_args()
            if len(args) >= 3 and args[0] == "vw" and args[1].isdigit():
                self.callbacks.on_write(int(args[1]), args[2:])
            elif args and args[0] not in ("vw", "pm"):
                self._respond(frame.msg_id, Status.ILLEGAL_COMMAND)
        elif frame.command == Command.INTERNAL:
            args = frame.text_args()
            if len(args) >= 2 and args[0] == "dbg":
                self.callbacks.on_console(args[1])
        elif frame.command == Command.REDIRECT:
            try:
                await self._follow(frame)
                await self._login()
            except (LinkError, blynk.ProtocolError) as exc:
                await self.close()
                return f"redirect failed: {exc}"
        elif frame.command == Command.RESPONSE and frame.status == Status.NOT_AUTHENTICATED:
            await self.close()
            return "the cloud says we are not logged in"
        return None

    def virtual_write(self, pin: int, *values: str | int | float) -> None:
        if self._writer is not None:
            self._send(Command.HARDWARE, "vw", pin, *values)

    # --- bytes ---
    async def _next_frame(self) -> blynk.Frame | None:
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._reader is None:
                return None
            data = await self._reader.read(4096)
            if not data:
                return None
            self._last_input = time.monotonic()
            self._pending = self._decoder.feed(data)

    def _send(self, command: int, *args: str | int | float) -> None:
        assert self._writer is not None
        self._msg_id = blynk.next_msg_id(self._msg_id)
        self._writer.write(blynk.encode(command, self._msg_id, *args))
        self._last_output = time.monotonic()

    def _respond(self, msg_id: int, status: int) -> None:
        if self._writer is not None:
            self._writer.write(blynk.encode_response(msg_id, status))

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._pending = []
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


INFO_ORDER = ["mcu", "fw-type", "build", "blynk", "h-beat", "buff-in", "dev", "tmpl"]


def _ordered(info: dict[str, str]) -> list[tuple[str, str]]:
    """The info pairs in the C++ library's order; keys it does not know come last."""
    known = [(k, info[k]) for k in INFO_ORDER if k in info]
    return known + [(k, v) for k, v in info.items() if k not in INFO_ORDER]
