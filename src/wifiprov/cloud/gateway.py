"""The device gateway: the Blynk device protocol over TCP and TLS, as a thin shell on wire.blynk.

One ``DeviceConnection`` (an asyncio Protocol, cheap enough for tens of thousands) per socket:
it must log in first (HW_LOGIN or legacy LOGIN), within ``login_timeout`` seconds; after that it
answers pings and the info message, stores what the device writes (through the write-behind
``DeviceDataWriter``) and delivers what the cloud sends it. Timeouts are enforced by one sweeper
for all connections rather than a timer per connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import time
import zoneinfo
from collections import deque
from collections.abc import Callable
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from wifiprov.cloud import devices
from wifiprov.cloud.bus import (
    DEVICE_COMMANDS,
    DEVICE_LOGINS,
    DEVICE_PRESENCE,
    Bus,
    Message,
    claimed_subject,
)
from wifiprov.cloud.db import Database, DatabaseUnavailable
from wifiprov.cloud.ingest import DeviceDataWriter
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.tokens import TokenHasher
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Frame, Status

log = logging.getLogger("wifiprov.gateway")

MAX_BODY_IN = 4096  # larger than any library's send buffer; bigger frames close the connection
MAX_WRITE_BUFFER = 256 * 1024  # a device that stops reading is dropped past this
DEFAULT_HEARTBEAT = 45  # seconds, until the device says otherwise in its info message
HEARTBEAT_FACTOR = 2.3  # a device is gone after h-beat x 2.3 without input (as Blynk's server)
SEEN_INTERVAL = 15.0  # how often last_seen of connected devices is written
MAX_META_FIELDS = 32  # INTERNAL meta fields kept per device (Edgent sets two)
MAX_META_VALUE = 256


class State(Enum):
    AWAIT_LOGIN = "await_login"
    LOGGING_IN = "logging_in"
    ONLINE = "online"
    CLOSED = "closed"


class LoginThrottle:
    """Failed logins per address: past ``limit`` within ``window`` seconds, the address is refused
    (connections closed at once, without a database lookup) until its failures age out."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str, now: float) -> bool:
        failures = self._failures.get(address)
        if failures is None or len(failures) < self.limit:
            return False
        if now - failures[0] > self.window:
            failures.popleft()
            return False
        return True

    def failed(self, address: str, now: float) -> bool:
        """Record a failure; True only for the one that blocks the address (log it once per
        block: failures of logins already in flight when it was blocked add nothing)."""
        was = self.blocked(address, now)
        failures = self._failures.setdefault(address, deque(maxlen=self.limit))
        failures.append(now)
        return not was and self.blocked(address, now)

    def prune(self, now: float) -> None:
        stale = [a for a, f in self._failures.items() if not f or now - f[-1] > self.window]
        for address in stale:
            del self._failures[address]


class FailedLogins:
    """Logins with an invalid token, counted and logged as one summary line at most every
    ``interval`` seconds (a flood of bad tokens must not flood the log)."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self.count = 0
        self.addresses: set[str] = set()
        self._since: float | None = None

    def add(self, address: str) -> None:
        self.count += 1
        self.addresses.add(address)

    def report(self, now: float, force: bool = False) -> None:
        """Log the summary if ``interval`` has passed (or ``force``, at stop) and any failed."""
        if self._since is None:
            self._since = now
        if not self.count or (now - self._since < self.interval and not force):
            return
        log.info(
            "%d failed device login(s) (invalid token) in the last %.0f s from %d address(es): %s",
            self.count,
            now - self._since,
            len(self.addresses),
            ", ".join(sorted(self.addresses)[:5]) + (" ..." if len(self.addresses) > 5 else ""),
        )
        self.count, self.addresses, self._since = 0, set(), now


class DeviceConnection(asyncio.Protocol):
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.state = State.AWAIT_LOGIN
        self.decoder = blynk.Decoder(MAX_BODY_IN)
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self.opened = self.last_input = time.monotonic()
        self.device_id = 0
        self.org_id = 0
        self.replaced = False  # closed because the device logged in on another node
        self.token_last4 = ""
        self.connected_at = 0.0
        self.heartbeat_timeout = DEFAULT_HEARTBEAT * HEARTBEAT_FACTOR
        self.buffer_in = devices.DEFAULT_BUFFER_IN
        self.msg_id = 0
        self.paused = False
        self.held: list[Frame] = []  # frames that arrived while the login was being checked
        self.meta: dict[str, str] = {}  # the device's INTERNAL meta, as stored
        self.arrived: asyncio.Future[None] | None = None  # wakes a claim waiting for the info
        self.answered = False  # the login was answered (a claim answers before deciding)

    # --- asyncio callbacks ---
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = peer[0] if peer else "?"
        self.gw.connections.add(self)
        if self.gw.throttle.blocked(self.address, time.monotonic()):
            self.close(None)

    def data_received(self, data: bytes) -> None:
        self.last_input = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except blynk.ProtocolError as exc:
            self.close(f"protocol error: {exc}", fault=True)
            return
        for frame in frames:
            if self.state is State.CLOSED:
                return
            if self.state is State.LOGGING_IN:
                self.held.append(frame)
                self._wake()
            else:
                self.handle(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = State.CLOSED
        self._wake()
        self.gw.forget(self)

    def _wake(self) -> None:
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    # --- sending ---
    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self.state is State.CLOSED:
            return
        if self.paused and transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.close("not reading (send buffer full)", abort=True, fault=True)
            return
        transport.write(data)

    def respond(self, msg_id: int, status: int) -> None:
        self.send(blynk.encode_response(msg_id, status))

    def next_id(self) -> int:
        self.msg_id = blynk.next_msg_id(self.msg_id)
        return self.msg_id

    def close(self, reason: str | None, abort: bool = False, fault: bool = False) -> None:
        """Close (after what is queued is sent), or ``abort`` (drop it: the peer is not reading).
        A ``fault`` of a logged-in device is kept as its ``last_error`` (shown by the API)."""
        if self.state is not State.CLOSED and reason:
            who = f"device {self.device_id}" if self.device_id else self.address
            log.info("%s: closing: %s", who, reason)
            if fault and self.device_id:
                self.gw.writer.note(self.device_id, last_error=reason[:200])
        self.state = State.CLOSED
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    # --- protocol ---
    def handle(self, frame: Frame) -> None:
        command = frame.command
        if self.state is State.AWAIT_LOGIN:
            if command in blynk.LOGIN_COMMANDS:
                self.state = State.LOGGING_IN
                self.gw.spawn(self.gw.login(self, frame))
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


def utc_reply(what: str, now: float, zone_name: str) -> list[Any] | None:
    """The answer to INTERNAL ``utc\0<what>`` as Blynk's server gives it (the C++ library's
    TimeAndLocation example and blynk-library-python's ``05_utc_and_timezone`` read these):
    ``time`` ms since the epoch; ``iso`` local ISO-8601 time with its offset; ``tz`` standard
    and DST offsets in minutes; ``tz_name``; ``tz_rule`` the POSIX TZ rule; ``dst_next`` up to
    two coming offset changes (epoch seconds, new offset in minutes). None for anything else."""
    zone = zoneinfo.ZoneInfo(zone_name)
    local = dt.datetime.fromtimestamp(now, zone)
    if what == "time":
        return ["time", int(now * 1000)]
    if what == "iso":
        return ["iso", local.replace(microsecond=0).isoformat()]
    if what == "tz":
        offset, dst = _minutes(local.utcoffset()), _minutes(local.dst())
        return ["tz", offset - dst, dst]
    if what == "tz_name":
        return ["tz_name", zone_name]
    if what == "tz_rule":
        return ["tz_rule", _posix_rule(zone_name)]
    if what == "dst_next":
        return ["dst_next", *[x for change in _offset_changes(zone, now, 2) for x in change]]
    return None


def _minutes(delta: dt.timedelta | None) -> int:
    return int((delta or dt.timedelta()).total_seconds() // 60)


@cache
def _posix_rule(zone_name: str) -> str:
    """The POSIX TZ rule: the footer line of the zone's TZif (version 2+) file."""
    for root in zoneinfo.TZPATH:
        try:
            data = (Path(root) / zone_name).read_bytes()
        except (OSError, ValueError):
            continue
        footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return footer.decode("ascii", "replace")
    return "UTC0" if zone_name in ("UTC", "Etc/UTC") else ""


def _offset_changes(zone: zoneinfo.ZoneInfo, now: float, count: int) -> list[tuple[int, int]]:
    """The next ``count`` UTC-offset changes within two years: (epoch seconds, offset minutes)."""

    def offset(t: float) -> int:
        return _minutes(dt.datetime.fromtimestamp(t, zone).utcoffset())

    found: list[tuple[int, int]] = []
    t, current = float(int(now)), offset(now)
    day = 86400.0
    while len(found) < count and t < now + 2 * 365 * day:
        if offset(t + day) == current:
            t += day
            continue
        lo, hi = t, t + day  # the change is in (lo, hi]: bisect to the second
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if offset(mid) == current else (lo, mid)
        current = offset(hi)
        found.append((int(hi), current))
        t = hi
    return found


_COMMANDS = {
    "hardware": Command.HARDWARE,
    "internal": Command.INTERNAL,
    "redirect": Command.REDIRECT,
}


class Gateway:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        hasher: TokenHasher,
        settings: CloudSettings,
        writer: DeviceDataWriter,
    ) -> None:
        self.db, self.bus, self.hasher, self.settings, self.writer = (
            db,
            bus,
            hasher,
            settings,
            writer,
        )
        self.node = settings.node_id
        # The time zone INTERNAL ``utc`` answers in: the cloud keeps no per-device zone yet.
        self.time_zone = "UTC"
        # How long a provisioning token's first login waits for the device's info (its template)
        # before the claim is decided without it.
        self.claim_info_timeout = 3.0
        self.connections: set[DeviceConnection] = set()
        self.sessions: dict[int, DeviceConnection] = {}
        self.throttle = LoginThrottle(settings.throttle_failures, settings.throttle_window)
        self.failed_logins = FailedLogins()
        self.logins = devices.DeviceLogins(db, hasher, bus)
        self.servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._presence: set[asyncio.Task[Any]] = set()  # presence being published
        self._subs: list[Any] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        if s.gateway:
            self.servers.append(
                await loop.create_server(lambda: DeviceConnection(self), *s.gateway, backlog=4096)
            )
        if s.gateway_tls:
            if not (s.cert and s.key):
                raise ValueError("TLS needs --cert and --key")
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(s.cert, s.key)
            self.servers.append(
                await loop.create_server(
                    lambda: DeviceConnection(self), *s.gateway_tls, ssl=ctx, backlog=4096
                )
            )
        # Tell devices the port actually bound when asked for any free one (port 0).
        bound = self.addresses()
        if s.gateway and s.gateway[1] == 0:
            s.gateway = bound[0]
        if s.gateway_tls and s.gateway_tls[1] == 0:
            s.gateway_tls = bound[-1]
        self._subs.append(await self.bus.subscribe(DEVICE_COMMANDS, self.on_command))
        self._subs.append(await self.bus.subscribe(DEVICE_LOGINS, self.on_login_elsewhere))
        self.spawn(self._sweep())

    def addresses(self) -> list[tuple[str, int]]:
        return [srv.sockets[0].getsockname()[:2] for srv in self.servers]

    async def stop(self) -> None:
        """Close the listeners and every connection; their devices' offline presence is queued
        in the writer at once (not when the loop gets round to ``connection_lost``)."""
        self.failed_logins.report(time.monotonic(), force=True)
        for srv in self.servers:
            srv.close()
        for conn in list(self.connections):
            conn.close(None)
            self.forget(conn)
        if self._presence:  # the offline presence of this node's devices, for the others
            await asyncio.wait(list(self._presence), timeout=2)
        for sub in self._subs:
            await sub.unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        for srv in self.servers:
            await srv.wait_closed()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- login ---
    async def login(self, conn: DeviceConnection, frame: Frame) -> None:
        token = frame.body.strip()
        try:
            auth = await self.logins.authenticate(token)
            if isinstance(auth, devices.PendingClaim):
                auth = await self._claim(conn, frame, auth, token)
                if auth is None:
                    return  # refused, or the connection went before the device reported
                answered = True
            else:
                answered = False
        except DatabaseUnavailable as exc:
            log.warning("%s: login refused, database unavailable: %s", conn.address, exc)
            if not conn.answered:  # (a claim answered 200 already: just close)
                conn.respond(frame.msg_id, Status.SERVER_EXCEPTION)
            conn.close(None)
            return
        except Exception:
            log.exception("%s: login failed", conn.address)
            if not conn.answered:
                conn.respond(frame.msg_id, Status.SERVER_EXCEPTION)
            conn.close(None)
            return
        if auth is not None and auth.claimed_request is not None and conn.state is State.CLOSED:
            # The claim is committed even though its connection went meanwhile: say so, or
            # a provisioner's long poll would wait for nothing.
            await self._announce_claim(auth)
            return
        if conn.state is State.CLOSED:
            return
        if auth is None:
            if self.throttle.failed(conn.address, time.monotonic()):
                log.warning(
                    "%s: %d failed logins within %.0f s: throttling this address",
                    conn.address,
                    self.throttle.limit,
                    self.throttle.window,
                )
            self.failed_logins.add(conn.address)  # counted; the sweeper logs a summary
            conn.respond(frame.msg_id, Status.INVALID_TOKEN)
            conn.close(None)
            return
        conn.device_id = auth.device_id
        conn.org_id = auth.org_id
        conn.token_last4 = token[-4:].decode("ascii")
        conn.connected_at = time.time()
        self.writer.note(auth.device_id, last_ip=conn.address)
        conn.msg_id = 0
        conn.buffer_in = auth.buffer_in or devices.DEFAULT_BUFFER_IN
        conn.meta = json.loads(auth.meta or "{}")
        older = self.sessions.get(auth.device_id)
        if older is not None and older is not conn:
            older.close("replaced by a newer login of the same device")
        self.sessions[auth.device_id] = conn
        conn.state = State.ONLINE
        self.writer.online(auth.device_id, self.node, conn.connected_at)
        self.presence(conn, True)
        log.debug(
            "device %d: online from %s (token ...%s)%s",
            auth.device_id,
            conn.address,
            conn.token_last4,
            " claimed a provisioning token" if auth.claimed_request else "",
        )
        if not answered:
            conn.respond(frame.msg_id, Status.OK)
        if auth.claimed_request is not None:
            # Announce the claim only once the device shows online, so that a provisioner
            # woken by it can use the device at once.
            await self._announce_claim(auth)
        if self.bus.shared:  # other nodes drop an older connection of this device
            await self.bus.publish(DEVICE_LOGINS, {"device_id": auth.device_id, "node": self.node})
        held, conn.held = conn.held, []
        for early in held:
            if conn.state is State.CLOSED:
                break
            conn.handle(early)

    async def _claim(
        self, conn: DeviceConnection, frame: Frame, pending: devices.PendingClaim, token: bytes
    ) -> devices.DeviceAuth | None:
        """Decide a provisioning token's claim with the device's info message.

        The firmware reports its template (INTERNAL ``tmpl``) only after the login is answered,
        so the login is answered 200 and the claim waits (up to ``claim_info_timeout``) for the
        info. Another template than the token's: the claim is refused for good (the info is
        answered 9 and the connection closed; every later login with the token gets 9) and
        the request says why. No ``tmpl`` (libraries without a template), or no info in time
        on a live connection: claimed. The connection gone before its info: nothing decided.
        """
        conn.respond(frame.msg_id, Status.OK)
        conn.answered = True
        info_frame = await self._await_info(conn)
        reported: str | None = None
        if info_frame is not None:
            reported = blynk.parse_info(info_frame.text_args()).get("template_id") or None
        elif conn.state is State.CLOSED:
            return None
        if reported is not None and reported != pending.template_id:
            reason = (
                f"the device's firmware reports template {reported[:40]}, "
                f"not the token's {pending.template_id}"
            )
            if await devices.refuse_claim(self.db, pending, reason):
                log.info("%s: claim refused: %s", conn.address, reason)
                await self.bus.publish(claimed_subject(pending.request_id), {"refused": reason})
            if info_frame is not None:
                conn.held.remove(info_frame)
                conn.respond(info_frame.msg_id, Status.INVALID_TOKEN)
            conn.close(None)
            return None
        auth = await devices.commit_claim(self.db, pending, reported[:32] if reported else None)
        if auth is None:  # another login won the token: it is that device's token now
            found = await self.logins.authenticate(token)
            if not isinstance(found, devices.DeviceAuth):
                conn.close("lost the provisioning token to another login")
                return None
            auth = found
        return auth

    async def _await_info(self, conn: DeviceConnection) -> Frame | None:
        """The info message among the frames held since the login, waiting for it (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.claim_info_timeout
        while True:
            for held in conn.held:
                if held.command == Command.INTERNAL:
                    try:
                        if blynk.is_info(held.text_args()):
                            return held
                    except (blynk.ProtocolError, ValueError):
                        continue
            left = deadline - loop.time()
            if left <= 0 or conn.state is State.CLOSED:
                return None
            conn.arrived = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(conn.arrived), left)
            except TimeoutError:
                pass
            finally:
                conn.arrived = None

    async def _announce_claim(self, auth: devices.DeviceAuth) -> None:
        try:
            await self.writer.flush()
        except DatabaseUnavailable:
            pass  # presence follows with the next flush; the claim itself is committed
        await self.bus.publish(
            claimed_subject(auth.claimed_request or 0), {"device_id": auth.device_id}
        )

    def forget(self, conn: DeviceConnection) -> None:
        self.connections.discard(conn)
        if conn.device_id and self.sessions.get(conn.device_id) is conn:
            del self.sessions[conn.device_id]
            self.writer.offline(conn.device_id, self.node, conn.connected_at, time.time())
            if not conn.replaced:
                self.presence(conn, False)
            log.debug("device %d: offline", conn.device_id)

    def presence(self, conn: DeviceConnection, online: bool) -> None:
        """Say on the bus that a device went online or offline (the console's live pages)."""
        message = {
            "device_id": conn.device_id,
            "org_id": conn.org_id,
            "online": online,
            "node": self.node,
            "at": time.time(),
        }
        task = asyncio.get_running_loop().create_task(self.bus.publish(DEVICE_PRESENCE, message))
        self._presence.add(task)
        task.add_done_callback(self._presence.discard)

    async def sync(self, conn: DeviceConnection, msg_id: int, pins: list[int]) -> None:
        # Values the device wrote before asking are pending or being written now; a flush may
        # commit (and forget) them while the database is read, so they are taken first.
        before = self.writer.pending_pins(conn.device_id)
        try:
            stored = {
                int(k[1:]): v for k, v in (await devices.pins_of(self.db, conn.device_id)).items()
            }
        except DatabaseUnavailable:
            conn.respond(msg_id, Status.SERVER_EXCEPTION)
            return
        stored.update(before)
        stored.update(self.writer.pending_pins(conn.device_id))
        for pin in pins or sorted(stored):
            if pin in stored:
                body = blynk.join_args(["vw", pin, *stored[pin]])
                if len(body) < conn.buffer_in:
                    conn.send(blynk.encode_body(Command.HARDWARE, msg_id, body))

    # --- the bus ---
    async def on_command(self, msg: Message) -> Message | None:
        """Act on a command for a device; reply (to a request) only when holding its live
        connection: ``{"node", "delivered"}``, delivered meaning the connection took it."""
        device_id = int(msg["device_id"])
        kind = msg["kind"]
        if kind in ("erased", "deleted"):
            self.writer.drop_device(device_id)
        conn = self.sessions.get(device_id)
        if conn is None or conn.state is not State.ONLINE:
            return None
        args = list(msg.get("args", []))
        delivered = False
        if kind in _COMMANDS:
            delivered = conn.deliver(_COMMANDS[kind], args)
        elif kind == "deleted":
            conn.close("device deleted")
        elif kind == "disconnect":
            conn.close("disconnected by the cloud")
            delivered = True
        return {"node": self.node, "delivered": delivered}

    async def on_login_elsewhere(self, msg: Message) -> None:
        if msg.get("node") == self.node:
            return
        conn = self.sessions.get(int(msg["device_id"]))
        if conn is not None:
            conn.replaced = True  # online elsewhere: no offline presence for this one
            conn.close("the device logged in on another gateway node")

    # --- timeouts ---
    async def _sweep(self) -> None:
        tick = min(1.0, self.settings.login_timeout / 2)
        last_seen_write = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            write_seen = now - last_seen_write >= SEEN_INTERVAL
            wall = time.time()
            for conn in list(self.connections):
                if conn.state is State.ONLINE:
                    idle = now - conn.last_input
                    if idle > conn.heartbeat_timeout:
                        conn.close(f"heartbeat timeout ({idle:.0f} s without input)", fault=True)
                    elif write_seen:
                        self.writer.last_seen(conn.device_id, wall - idle)
                elif (
                    conn.state is State.AWAIT_LOGIN
                    and now - conn.opened > self.settings.login_timeout
                ):
                    # Only the device's own slowness counts: a login we are still checking is
                    # answered (or refused with 19) when the database replies.
                    conn.close("did not log in in time")
            if write_seen:
                last_seen_write = now
                self.throttle.prune(now)
            self.failed_logins.report(now)
