"""The device gateway: its listeners, and the Blynk device protocol as a thin shell on wire.blynk.

One ``DeviceConnection`` (an asyncio Protocol, cheap enough for tens of thousands) per socket:
it must log in first (HW_LOGIN or legacy LOGIN), within ``login_timeout`` seconds; after that it
answers pings and the info message, stores what the device writes (through the write-behind
``DeviceDataWriter``) and delivers what the cloud sends it. Logins, claims, presence, commands
and timeouts are the session core's (``sessions.py``), shared with the MQTT connections
(``mqtt_gateway.py``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from wifiprov.cloud import devices, mqtt_gateway
from wifiprov.cloud.bus import Bus
from wifiprov.cloud.db import Database, DatabaseUnavailable
from wifiprov.cloud.device_time import utc_reply
from wifiprov.cloud.ingest import DeviceDataWriter
from wifiprov.cloud.sessions import (
    DEFAULT_HEARTBEAT,
    HEARTBEAT_FACTOR,
    DeviceSessions,
    Session,
    State,
)
from wifiprov.cloud.sessions import FailedLogins as FailedLogins  # (re-exported)
from wifiprov.cloud.sessions import LoginThrottle as LoginThrottle  # (re-exported)
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.tokens import TokenHasher
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Frame, Status

log = logging.getLogger("wifiprov.gateway")

MAX_BODY_IN = 4096  # larger than any library's send buffer; bigger frames close the connection
MAX_META_FIELDS = 32  # INTERNAL meta fields kept per device (Edgent sets two)
MAX_META_VALUE = 256
# A pin as devices write it ("0".."255"); anything else ("07", " 7", "300") takes the slow path.
_PIN_NUMBERS = {str(pin).encode(): pin for pin in range(devices.MAX_PIN + 1)}


class DeviceConnection(Session, asyncio.Protocol):
    """One Blynk-protocol connection: frames in, calls on the session core, frames out."""

    protocol = "the Blynk protocol"

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        self.gw = gateway
        self.decoder = blynk.Decoder(MAX_BODY_IN)
        self.msg_id = 0
        self.login_msg_id = 1

    # --- asyncio callbacks ---
    def connection_made(self, transport: Any) -> None:
        self.opened_on(transport)

    def data_received(self, data: bytes) -> None:
        self.last_input = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except blynk.ProtocolError as exc:
            self.close(f"protocol error: {exc}", fault=True)
            return
        if self.state is State.ONLINE:
            self.online(frames)
        else:
            self.take(frames)

    def online(self, frames: list[Frame]) -> None:
        """The hot path once logged in. A virtual-pin write (``HARDWARE vw``, most of what a
        device sends) with a plain pin number and ASCII values is kept as its raw bytes, the
        newest per pin, handed to the write-behind once per read with one timestamp; anything
        else goes through ``handle`` (``on_hardware`` for the rest of the pin writes), after what
        was kept before it, so the order of writes to a pin holds."""
        kept: dict[int, bytes] = {}
        now = time.time()
        for frame in frames:
            body = frame.body
            if frame.command == Command.HARDWARE and body.startswith(b"vw\0"):
                pin, sep, raw = body[3:].partition(b"\0")
                number = _PIN_NUMBERS.get(pin)
                if number is not None and sep and raw.isascii():
                    kept[number] = raw
                    continue
            if kept:
                self.gw.writer.pins(self.device_id, kept, now)
                kept = {}
            self.handle(frame)
            if self.state is not State.ONLINE:
                return  # closed by that frame: the rest is not read
        if kept:
            self.gw.writer.pins(self.device_id, kept, now)

    def too_many_held(self) -> None:
        self.close("too many frames before the login was answered", fault=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost()

    # --- sending ---
    def respond(self, msg_id: int, status: int) -> None:
        self.send(blynk.encode_response(msg_id, status))

    def next_id(self) -> int:
        self.msg_id = blynk.next_msg_id(self.msg_id)
        return self.msg_id

    # --- the session core's hooks ---
    def answer_login(self, status: int) -> None:
        self.respond(self.login_msg_id, status)

    def held_info(self) -> tuple[Frame, str | None] | None:
        for held in self.held:
            if held.command == Command.INTERNAL:
                try:
                    args = held.text_args()
                    if blynk.is_info(args):
                        return held, blynk.parse_info(args).get("template_id") or None
                except (blynk.ProtocolError, ValueError):
                    continue
        return None

    def refuse_info(self, item: Frame) -> None:
        self.held.remove(item)
        self.respond(item.msg_id, Status.INVALID_TOKEN)

    def deliver_kind(self, kind: str, args: list[Any]) -> bool | None:
        command = _COMMANDS.get(kind)
        return None if command is None else self.deliver(command, args)

    # --- protocol ---
    def handle(self, frame: Frame) -> None:
        command = frame.command
        if self.state is State.AWAIT_LOGIN:
            if command in blynk.LOGIN_COMMANDS:
                self.state = State.LOGGING_IN
                self.login_msg_id = frame.msg_id
                self.gw.spawn(self.gw.login(self, frame.body.strip()))
            elif command != Command.RESPONSE:
                self.respond(frame.msg_id, Status.NOT_AUTHENTICATED)
                self.close("sent a command before logging in")
            return
        handler = _HANDLERS.get(command)
        if handler is None:
            self.respond(frame.msg_id, Status.ILLEGAL_COMMAND)
            return
        try:
            handler(self, frame)
        except (blynk.ProtocolError, ValueError, IndexError):
            self.respond(frame.msg_id, Status.ILLEGAL_COMMAND_BODY)

    def on_ping(self, frame: Frame) -> None:
        self.respond(frame.msg_id, Status.OK)

    def on_login_again(self, frame: Frame) -> None:
        self.respond(frame.msg_id, Status.ALREADY_REGISTERED)

    def on_hardware(self, frame: Frame) -> None:
        args = frame.text_args()
        if len(args) >= 3 and args[0] == "vw":
            pin = int(args[1])
            if not 0 <= pin <= devices.MAX_PIN:
                raise ValueError(pin)
            self.gw.writer.pin(self.device_id, pin, args[2:], time.time())
        # dw/aw replies to server reads and anything else: accepted, nothing to keep

    def on_sync(self, frame: Frame) -> None:
        args = frame.text_args()
        if args and args[0] == "vr":
            pins = [int(p) for p in args[1:]]
        elif not args:
            pins = []  # everything
        else:
            return  # digital/analog sync: we keep no such state
        self.gw.spawn(self.gw.sync(self, frame.msg_id, pins))

    def on_internal(self, frame: Frame) -> None:
        args = frame.text_args()
        if blynk.is_info(args):
            info = blynk.parse_info(args)
            heartbeat = blynk.int_or(info.get("heartbeat"), DEFAULT_HEARTBEAT, 1, 3600)
            self.heartbeat_timeout = heartbeat * HEARTBEAT_FACTOR
            self.buffer_in = blynk.int_or(info.get("buffer_in"), self.buffer_in, 64, 65535)
            self.gw.writer.device_info(self.device_id, info, self.buffer_in)
            self.respond(frame.msg_id, Status.OK)  # blynklib waits for this reply
        elif args and args[0] == "rtc":
            self.send(blynk.encode(Command.INTERNAL, frame.msg_id, "rtc", int(time.time())))
        elif args and args[0] == "utc":
            # Blynk's time API: one INTERNAL ``utc\0<what>\0<values>`` answer per request.
            reply = utc_reply(args[1] if len(args) > 1 else "", time.time(), self.gw.time_zone)
            if reply is None:
                self.respond(frame.msg_id, Status.ILLEGAL_COMMAND_BODY)
            else:
                self.send(blynk.encode(Command.INTERNAL, frame.msg_id, "utc", *reply))
        elif args and args[0] == "meta":
            # ``meta\0set\0<field>\0<value>`` (Edgent: Device UID, Hotspot Name), kept as the
            # device's meta (the API shows it).
            if len(args) >= 4 and args[1] == "set" and args[2]:
                name, value = args[2][:64], "\0".join(args[3:])[:MAX_META_VALUE]
                if name in self.meta or len(self.meta) < MAX_META_FIELDS:
                    self.meta[name] = value
                    self.gw.writer.device_meta(self.device_id, dict(self.meta))
            self.respond(frame.msg_id, Status.OK)
        else:
            self.respond(frame.msg_id, Status.OK)

    def on_property(self, frame: Frame) -> None:
        args = frame.text_args()
        if len(args) >= 3:
            self.gw.writer.property(self.device_id, int(args[0]), args[1], "\0".join(args[2:]))

    def on_event(self, frame: Frame) -> None:
        args = frame.text_args()
        if args and args[0]:
            description = args[1] if len(args) > 1 else ""
            self.gw.writer.event(self.device_id, args[0][:64], description, time.time())

    def on_ignored(self, frame: Frame) -> None:
        pass  # RESPONSE, GROUP markers, EVENT_CLEAR, BRIDGE, DEBUG_PRINT

    def deliver(self, command: int, args: list[Any]) -> bool:
        """Send a command from the cloud, unless it exceeds what the device can receive."""
        body = blynk.join_args(args)
        if len(body) >= self.buffer_in:
            log.warning(
                "device %d: dropped a %d-byte message (its buff-in is %d)",
                self.device_id,
                len(body),
                self.buffer_in,
            )
            return False
        self.send(blynk.encode_body(command, self.next_id(), body))
        return self.state is not State.CLOSED  # (a full send buffer closes it)


_HANDLERS: dict[int, Callable[[DeviceConnection, Frame], None]] = {
    Command.PING: DeviceConnection.on_ping,
    Command.LOGIN: DeviceConnection.on_login_again,
    Command.HW_LOGIN: DeviceConnection.on_login_again,
    Command.HARDWARE: DeviceConnection.on_hardware,
    Command.HARDWARE_SYNC: DeviceConnection.on_sync,
    Command.INTERNAL: DeviceConnection.on_internal,
    Command.PROPERTY: DeviceConnection.on_property,
    Command.EVENT_LOG: DeviceConnection.on_event,
    Command.RESPONSE: DeviceConnection.on_ignored,
    Command.GROUP: DeviceConnection.on_ignored,
    Command.EVENT_CLEAR: DeviceConnection.on_ignored,
    Command.BRIDGE: DeviceConnection.on_ignored,
    Command.DEBUG_PRINT: DeviceConnection.on_ignored,
}


_COMMANDS = {
    "hardware": Command.HARDWARE,
    "internal": Command.INTERNAL,
    "redirect": Command.REDIRECT,
}


class Gateway(DeviceSessions):
    """The device gateway: its listeners (Blynk protocol plain and TLS; MQTT plain, TLS and
    WebSocket) over one session core."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        hasher: TokenHasher,
        settings: CloudSettings,
        writer: DeviceDataWriter,
    ) -> None:
        super().__init__(db, bus, hasher, settings, writer)
        self.servers: list[asyncio.Server] = []
        self.mqtt_servers: list[asyncio.Server] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        if s.gateway:
            self.servers.append(
                await loop.create_server(lambda: DeviceConnection(self), *s.gateway, backlog=4096)
            )
        if s.gateway_tls:
            self.servers.append(
                await loop.create_server(
                    lambda: DeviceConnection(self), *s.gateway_tls, ssl=tls_context(s), backlog=4096
                )
            )
        # Tell devices the port actually bound when asked for any free one (port 0).
        bound = self.addresses()
        if s.gateway and s.gateway[1] == 0:
            s.gateway = bound[0]
        if s.gateway_tls and s.gateway_tls[1] == 0:
            s.gateway_tls = bound[-1]
        self.mqtt_servers = await mqtt_gateway.start_listeners(self)
        await self.start_core()

    def addresses(self) -> list[tuple[str, int]]:
        """The Blynk-protocol listeners' addresses (plain first, then TLS)."""
        return [srv.sockets[0].getsockname()[:2] for srv in self.servers]

    def mqtt_addresses(self) -> dict[str, tuple[str, int]]:
        """The MQTT listeners' addresses by kind (mqtt, mqtt_tls, mqtt_ws, mqtt_wss)."""
        return mqtt_gateway.addresses(self)

    async def stop(self) -> None:
        """Close the listeners and every connection; their devices' offline presence is queued
        in the writer at once (not when the loop gets round to ``connection_lost``)."""
        self.failed_logins.report(time.monotonic(), force=True)
        servers = self.servers + self.mqtt_servers
        for srv in servers:
            srv.close()
        await self.stop_core()
        for srv in servers:
            await srv.wait_closed()

    async def sync(self, conn: DeviceConnection, msg_id: int, pins: list[int]) -> None:
        try:
            stored = await self.current_pins(conn.device_id)
        except DatabaseUnavailable:
            conn.respond(msg_id, Status.SERVER_EXCEPTION)
            return
        for pin in pins or sorted(stored):
            if pin in stored:
                body = blynk.join_args(["vw", pin, *stored[pin]])
                if len(body) < conn.buffer_in:
                    conn.send(blynk.encode_body(Command.HARDWARE, msg_id, body))


def tls_context(settings: CloudSettings) -> ssl.SSLContext:
    """The server TLS context of ``--cert``/``--key`` (Blynk-protocol and MQTT listeners)."""
    if not (settings.cert and settings.key):
        raise ValueError("TLS needs --cert and --key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.cert, settings.key)
    return ctx
