"""The device's cloud link: the Blynk device protocol, client side, as a thin shell on wire.blynk.

``CloudLink.open`` connects (TLS on ``port_ssl`` with certificate verification when set, plain TCP
on ``port`` otherwise), logs in with HW_LOGIN and sends the info message in the current C++ key
set. Failures are ``LinkError`` with the provisioning code a user can act on (710 DNS, 711 TLS,
702 unreachable, 703 token rejected, 705 other). ``run`` then serves the connection until it is
lost: answers pings, pings after ``heartbeat`` seconds idle, gives up after 2.3 heartbeats without
input, follows REDIRECT, and hands pin writes and console commands (INTERNAL ``dbg``) to callbacks.

``run`` never raises for anything the cloud sends: a bad frame (a REDIRECT that names no usable
host or port, a command the device does not expect, a body that is not UTF-8, broken framing), a
reset connection or a callback that fails all end the same way, logged, with the connection
closed and the reason returned: the caller reconnects.

After login, ``open`` sends ``LinkSettings.meta`` as Edgent does (INTERNAL ``meta\0set\0<field>\0
<value>``, one message per field; see ``edgent_meta``), and ``send_console_reply`` returns a
console command's output to the cloud.
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
MAX_REDIRECTS = 5  # in a row, within one login
MAX_HOST = 255
CONSOLE_CHUNK = 1000  # bytes of console output per message; longer output is sent in parts
DEFAULT_PORT, DEFAULT_PORT_SSL = 80, 443  # the C++ library's, for a REDIRECT that names no port

# What the cloud may send a device once it is logged in (the C++ library's BlynkProtocol handles
# these; it drops the connection on any other command, and so does the link).
ACCEPTED = frozenset(
    {
        Command.RESPONSE,
        Command.PING,
        Command.HARDWARE,
        Command.BRIDGE,
        Command.INTERNAL,
        Command.REDIRECT,
        Command.DEBUG_PRINT,
    }
)


class LinkError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class BadFrame(Exception):
    """The cloud sent a frame the device cannot act on; the connection is given up."""


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
    # INTERNAL ``meta set <field> <value>`` messages sent once, after the login of ``open`` (not
    # after a redirect's login), in this order; empty: none. See ``edgent_meta``.
    meta: dict[str, str] = field(default_factory=dict)


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
        except (BadFrame, blynk.ProtocolError, OSError) as exc:
            await self.close()
            raise LinkError(E.CLOUD_OTHER, f"login failed: {_why(exc)}") from None
        for name, value in self.settings.meta.items():
            self.send_meta(name, value)

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
        except UnicodeError as exc:  # a name IDNA cannot encode (a label over 63 characters ...)
            raise LinkError(E.DNS_FAILED, f"cannot resolve {self.host!r}: {exc}") from None
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
        self._pending = []
        self._msg_id = 0

    async def _login(self, redirects: int = 0) -> None:
        started = time.monotonic()
        self._send(Command.HW_LOGIN, self.settings.token)
        reply = await self._next_frame()
        if reply is None:
            raise LinkError(E.CLOUD_OTHER, "the cloud closed the connection at login")
        if reply.command == Command.REDIRECT:
            if redirects >= MAX_REDIRECTS:
                raise LinkError(E.CLOUD_OTHER, f"more than {MAX_REDIRECTS} redirects at login")
            await self._follow(reply)
            return await self._login(redirects + 1)
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
        """Connect where a REDIRECT says; BadFrame (before closing anything) if it is unusable."""
        host, port = parse_redirect(
            frame.text_args(), DEFAULT_PORT_SSL if self.tls else DEFAULT_PORT
        )
        log.info("redirected to %s:%d", host, port)
        await self.close()
        self.host, self.port = host, port
        await self._connect()

    # --- serving ---
    async def run(self) -> str:
        """Serve the connection until it is lost; returns the reason in words.

        Whatever ends it (the cloud closing, a heartbeat timeout, a bad frame, a reset socket,
        a failed redirect), the connection is closed when this returns; it raises only
        CancelledError.
        """
        try:
            return await self._serve()
        except Exception as exc:  # nothing the cloud sends may kill the caller's task
            log.exception("the cloud link failed unexpectedly")
            await self.close()
            return f"link failure: {_why(exc)}"

    async def _serve(self) -> str:
        hb = self.settings.heartbeat
        while self._reader is not None:
            idle = time.monotonic() - max(self._last_input, self._last_output)
            try:
                try:
                    frame = await asyncio.wait_for(self._next_frame(), max(0.05, hb - idle))
                except TimeoutError:
                    if time.monotonic() - self._last_input > hb * 2.3:
                        await self.close()
                        return "heartbeat timeout"
                    if self._writer is not None:
                        self._send(Command.PING)
                    continue
                if frame is None:
                    await self.close()
                    return "the cloud closed the connection"
                reason = await self._handle(frame)
            except (BadFrame, blynk.ProtocolError) as exc:
                reason = f"bad frame from the cloud: {_why(exc)}"
            except (LinkError, OSError) as exc:
                reason = f"connection failed: {_why(exc)}"
            else:
                if reason:
                    return reason
                continue
            log.warning("dropping the cloud connection: %s", reason)
            await self.close()
            return reason
        return "closed"

    async def _handle(self, frame: blynk.Frame) -> str | None:
        """Act on one frame; a reason when the connection is over. BadFrame, ProtocolError,
        LinkError and OSError mean the frame (or the connection) is unusable."""
        command = frame.command
        if command not in ACCEPTED:
            raise BadFrame(f"unexpected command {command} (msg_id {frame.msg_id})")
        if command == Command.PING:
            self._respond(frame.msg_id, Status.OK)
        elif command == Command.HARDWARE:
            args = frame.text_args()
            if len(args) >= 3 and args[0] == "vw" and _is_pin(args[1]):
                self._callback(self.callbacks.on_write, int(args[1]), args[2:])
            elif args and args[0] not in ("vw", "pm"):
                self._respond(frame.msg_id, Status.ILLEGAL_COMMAND)
        elif command == Command.INTERNAL:
            args = frame.text_args()
            if args and args[0] == "dbg":
                self._callback(self.callbacks.on_console, args[1] if len(args) > 1 else "")
        elif command == Command.DEBUG_PRINT:
            log.info("the cloud says: %s", frame.body.decode("utf-8", "replace")[:200])
        elif command == Command.REDIRECT:
            host, port = self.host, self.port
            try:
                async with asyncio.timeout(LOGIN_TIMEOUT):
                    await self._follow(frame)
                    await self._login()
            except BadFrame:
                raise
            except TimeoutError:  # before OSError, its base class
                reason = f"redirect to {self.host}:{self.port} failed: no answer to login"
            except (LinkError, blynk.ProtocolError, OSError) as exc:
                reason = f"redirect to {self.host}:{self.port} failed: {_why(exc)}"
            else:
                log.info("logged in again after a redirect from %s:%d", host, port)
                return None
            log.warning("%s", reason)
            await self.close()
            return reason
        elif command == Command.RESPONSE and frame.status == Status.NOT_AUTHENTICATED:
            await self.close()
            return "the cloud says we are not logged in"
        return None  # other RESPONSEs and BRIDGE: nothing to do

    def _callback(self, func: Callable[..., None], *args: object) -> None:
        """Run a user callback; its failure is logged, and the link goes on."""
        try:
            func(*args)
        except Exception:
            log.exception("a cloud link callback failed")

    def virtual_write(self, pin: int, *values: str | int | float) -> None:
        if self._writer is not None:
            self._send(Command.HARDWARE, "vw", pin, *values)

    def send_meta(self, name: str, value: str) -> None:
        """INTERNAL ``meta\0set\0<name>\0<value>``, as Edgent sets its Device UID and Hotspot
        Name after it connects."""
        if self._writer is not None:
            self._send(Command.INTERNAL, "meta", "set", _no_nul(name), _no_nul(value))

    def send_console_reply(self, text: str) -> None:
        """A console command's output, back to the cloud as INTERNAL ``dbg\0<text>``.

        Edgent prints its console's output to its serial port only, even for commands that came
        over ``dbg``; wifiprov returns it on the same channel the command arrived on. Output
        longer than CONSOLE_CHUNK bytes is sent in several messages, split between lines.
        Nothing is sent for empty output or when the link is down.
        """
        if self._writer is None:
            return
        for chunk in console_chunks(_no_nul(text), CONSOLE_CHUNK):
            self._send(Command.INTERNAL, "dbg", chunk)

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


def parse_redirect(args: list[str], default_port: int) -> tuple[str, int]:
    """Host and port of a REDIRECT's arguments (``host[\0port]``); BadFrame if unusable.

    As in the C++ library, a missing port means the default one. An empty or oversized host, a
    host with spaces or control characters, an empty, non-numeric or out-of-range port, and
    extra arguments (a host that contained a NUL) are refused.
    """
    if not 1 <= len(args) <= 2:
        raise BadFrame(f"REDIRECT with {len(args)} arguments (expected host and port)")
    host = args[0]
    if not host or len(host) > MAX_HOST or any(c.isspace() or not c.isprintable() for c in host):
        raise BadFrame(f"REDIRECT to an unusable host {host[:80]!r}")
    if len(args) == 1:
        return host, default_port
    port = args[1]
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise BadFrame(f"REDIRECT to {host} with an unusable port {port[:20]!r}")
    return host, int(port)


def edgent_meta(device_uid: str, hotspot_name: str) -> dict[str, str]:
    """The meta fields Edgent-Arduino sets once after its first login since boot, in its order."""
    return {"Device UID": device_uid, "Hotspot Name": hotspot_name}


def console_chunks(text: str, limit: int) -> list[str]:
    """``text`` (trailing newlines dropped) in parts of at most ``limit`` UTF-8 bytes, split after
    a newline where possible; no part is empty."""
    text = text.rstrip("\n")
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > limit:  # a line longer than a part: cut it by characters
            head = line.encode()[:limit].decode("utf-8", "ignore")
            if current:
                chunks.append(current.rstrip("\n"))
                current = ""
            chunks.append(head)
            line = line[len(head) :]
        if len((current + line).encode()) > limit:
            chunks.append(current.rstrip("\n"))
            current = ""
        current += line
    if current.rstrip("\n"):
        chunks.append(current.rstrip("\n"))
    return [c for c in chunks if c]


def _is_pin(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


def _no_nul(text: str) -> str:
    return text.replace("\0", "")


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


INFO_ORDER = ["mcu", "fw-type", "build", "blynk", "h-beat", "buff-in", "dev", "tmpl"]


def _ordered(info: dict[str, str]) -> list[tuple[str, str]]:
    """The info pairs in the C++ library's order; keys it does not know come last."""
    known = [(k, info[k]) for k in INFO_ORDER if k in info]
    return known + [(k, v) for k, v in info.items() if k not in INFO_ORDER]
