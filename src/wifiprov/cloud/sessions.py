"""The device session core shared by the gateway's protocols (Blynk binary and MQTT).

A protocol's connection (``Session``) turns bytes into calls on the core and the core's answers
into bytes; the core (``DeviceSessions``) holds everything else, once for both: the token check
and a provisioning token's claim (decided with the device's reported template), one live
connection per device (a newer login replaces the older, on this node directly and on others
through the bus), presence, the write-behind of device data, commands from the cloud through the
bus, login throttling per address, and one sweeper for every connection's timeouts.

Login answers are given in the Blynk protocol's statuses (200, 9, 19); the MQTT connection
translates them into CONNACK codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from enum import Enum
from typing import Any

from wifiprov.cloud import datastreams, devices, logins
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
from wifiprov.wire.blynk import Status

log = logging.getLogger("wifiprov.gateway")

MAX_WRITE_BUFFER = 256 * 1024  # a device that stops reading is dropped past this
DEFAULT_HEARTBEAT = 45  # seconds, until the device says otherwise
HEARTBEAT_FACTOR = 2.3  # a Blynk device is gone after h-beat x 2.3 without input
MAX_HELD = 1000  # frames or packets that may arrive while a login is checked; more close
SEEN_INTERVAL = 15.0  # how often last_seen of connected devices is written


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


class Session:
    """What both protocols' connections share: their state as the core sees it, sending with a
    bound on what waits unread, closing. Protocols implement the hooks below."""

    protocol = "?"  # in words, for messages about what it cannot carry

    def __init__(self, core: DeviceSessions) -> None:
        self.core = core
        self.state = State.AWAIT_LOGIN
        self.transport: Any = None
        self.address = "?"
        self.opened = self.last_input = time.monotonic()
        self.device_id = 0
        self.org_id = 0
        self.template_id = ""
        self.replaced = False  # closed because the device logged in on another node
        self.token_last4 = ""
        self.connected_at = 0.0
        self.heartbeat_timeout = DEFAULT_HEARTBEAT * HEARTBEAT_FACTOR
        self.buffer_in = devices.DEFAULT_BUFFER_IN
        self.paused = False
        self.meta: dict[str, str] = {}  # the device's meta, as stored
        self.arrived: asyncio.Future[None] | None = None  # wakes a claim waiting for the info
        self.answered = False  # the login was answered (a claim answers before deciding)
        self.held: list[Any] = []  # frames or packets that arrived while the login was checked

    # --- protocol hooks ---
    def answer_login(self, status: int) -> None:
        """Answer the login: Status.OK, INVALID_TOKEN or SERVER_EXCEPTION."""
        raise NotImplementedError

    def held_info(self) -> tuple[Any, str | None] | None:
        """The device's info message among what arrived since the login, with the template it
        reports (None when it names none); None while no info has arrived."""
        raise NotImplementedError

    def refuse_info(self, item: Any) -> None:
        """The claim was refused on this info: say so to the device (the core then closes)."""
        raise NotImplementedError

    async def prepare(self) -> None:
        """What the protocol needs of the device (its ``template_id`` is set) before it goes
        online; may raise DatabaseUnavailable."""

    def handle(self, item: Any) -> None:
        """Act on one frame or packet of a logged-in (or logging-in) connection."""
        raise NotImplementedError

    def too_many_held(self) -> None:
        """More than ``MAX_HELD`` arrived while the login was checked: close, saying why."""
        raise NotImplementedError

    def deliver_kind(self, kind: str, args: list[Any]) -> bool | None:
        """A command from the cloud (``hardware``, ``internal``, ``redirect``): True when the
        connection took it, False when refused, None when this protocol has no such command."""
        raise NotImplementedError

    # --- shared ---
    def take(self, items: list[Any]) -> None:
        """What was just decoded: held while the login is checked (bounded), else handled."""
        for item in items:
            if self.state is State.CLOSED:
                return
            if self.state is State.LOGGING_IN:
                if len(self.held) >= MAX_HELD:
                    self.too_many_held()
                    return
                self.held.append(item)
                self._wake()
            else:
                self.handle(item)

    def logged_in(self) -> None:
        """The login succeeded: handle what arrived meanwhile."""
        held, self.held = self.held, []
        for early in held:
            if self.state is State.CLOSED:
                break
            self.handle(early)

    def opened_on(self, transport: Any) -> bool:
        """Start with a new transport; False if its address is throttled (closed at once)."""
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = peer[0] if peer else "?"
        self.core.connections.add(self)
        if self.core.throttle.blocked(self.address, time.monotonic()):
            self.close(None)
            return False
        return True

    def lost(self) -> None:
        self.state = State.CLOSED
        self._wake()
        self.core.forget(self)

    def _wake(self) -> None:
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self.state is State.CLOSED:
            return
        if self.paused and transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.close("not reading (send buffer full)", abort=True, fault=True)
            return
        transport.write(data)

    def close(self, reason: str | None, abort: bool = False, fault: bool = False) -> None:
        """Close (after what is queued is sent), or ``abort`` (drop it: the peer is not reading).
        A ``fault`` of a logged-in device is kept as its ``last_error`` (shown by the API)."""
        if self.state is not State.CLOSED and reason:
            who = f"device {self.device_id}" if self.device_id else self.address
            log.info("%s: closing: %s", who, reason)
            if fault and self.device_id:
                self.core.writer.note(self.device_id, last_error=reason[:200])
        self.state = State.CLOSED
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


class DeviceSessions:
    """The core: logins and claims, live connections, presence, commands, timeouts."""

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
        # The time zone time requests are answered in: the cloud keeps no per-device zone yet.
        self.time_zone = "UTC"
        # How long a provisioning token's first login waits for the device's info (its template)
        # before the claim is decided without it.
        self.claim_info_timeout = 3.0
        self.connections: set[Any] = set()
        self.sessions: dict[int, Any] = {}
        self.throttle = LoginThrottle(settings.throttle_failures, settings.throttle_window)
        self.failed_logins = FailedLogins()
        self.logins = logins.DeviceLogins(db, hasher, bus)
        self.datastreams = datastreams.BindingsCache(db)  # names -> pins, for MQTT devices
        self._tasks: set[asyncio.Task[Any]] = set()
        self._presence: set[asyncio.Task[Any]] = set()  # presence being published
        self._subs: list[Any] = []

    async def start_core(self) -> None:
        self._subs.append(await self.bus.subscribe(DEVICE_COMMANDS, self.on_command))
        self._subs.append(await self.bus.subscribe(DEVICE_LOGINS, self.on_login_elsewhere))
        self.spawn(self._sweep())

    async def stop_core(self) -> None:
        """Close every connection; their devices' offline presence is queued in the writer at
        once (not when the loop gets round to ``connection_lost``)."""
        for conn in list(self.connections):
            conn.close(None)
            self.forget(conn)
        if self._presence:  # the offline presence of this node's devices, for the others
            await asyncio.wait(list(self._presence), timeout=2)
        for sub in self._subs:
            await sub.unsubscribe()
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- login ---
    async def login(self, conn: Session, token: bytes) -> None:
        try:
            auth = await self.logins.authenticate(token)
            if isinstance(auth, logins.PendingClaim):
                auth = await self._claim(conn, auth, token)
                if auth is None:
                    return  # refused, or the connection went before the device reported
        except DatabaseUnavailable as exc:
            log.warning("%s: login refused, database unavailable: %s", conn.address, exc)
            if not conn.answered:  # (a claim answered 200 already: just close)
                conn.answer_login(Status.SERVER_EXCEPTION)
            conn.close(None)
            return
        except Exception:
            log.exception("%s: login failed", conn.address)
            if not conn.answered:
                conn.answer_login(Status.SERVER_EXCEPTION)
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
            conn.answer_login(Status.INVALID_TOKEN)
            conn.close(None)
            return
        conn.device_id = auth.device_id
        conn.org_id = auth.org_id
        conn.template_id = auth.template_id
        try:
            await conn.prepare()
        except DatabaseUnavailable as exc:
            log.warning("%s: login refused, database unavailable: %s", conn.address, exc)
            if not conn.answered:
                conn.answer_login(Status.SERVER_EXCEPTION)
            conn.close(None)
            return
        if conn.state is State.CLOSED:
            return
        conn.token_last4 = token[-4:].decode("ascii")
        conn.connected_at = time.time()
        self.writer.note(auth.device_id, last_ip=conn.address)
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
        if not conn.answered:
            conn.answered = True
            conn.answer_login(Status.OK)
        if self.bus.shared:  # other nodes drop an older connection of this device
            login = {"device_id": auth.device_id, "node": self.node, "at": conn.connected_at}
            await self.bus.publish(DEVICE_LOGINS, login)
        if conn.state is not State.CLOSED:
            conn.logged_in()  # what arrived meanwhile (a claim's info: answered now)
        if auth.claimed_request is not None:
            # Announce the claim only once the device shows online (and its info is stored),
            # so that a provisioner woken by it can use the device at once.
            await self._announce_claim(auth)

    async def _claim(
        self, conn: Session, pending: logins.PendingClaim, token: bytes
    ) -> logins.DeviceAuth | None:
        """Decide a provisioning token's claim with the device's info message.

        The firmware reports its template only after the login is answered, so the login is
        answered OK and the claim waits (up to ``claim_info_timeout``) for the info. Another
        template than the token's: the claim is refused for good (the device is told, the
        connection closed; every later login with the token is refused) and the request says
        why. No template (libraries without one), or no info in time on a live connection:
        claimed. The connection gone before its info: nothing decided.
        """
        conn.answered = True
        conn.answer_login(Status.OK)
        found = await self._await_info(conn)
        reported: str | None = None
        if found is not None:
            reported = found[1] or None
        elif conn.state is State.CLOSED:
            return None
        if reported is not None and reported != pending.template_id:
            reason = (
                f"the device's firmware reports template {reported[:40]}, "
                f"not the token's {pending.template_id}"
            )
            if await logins.refuse_claim(self.db, pending, reason):
                log.info("%s: claim refused: %s", conn.address, reason)
                await self.bus.publish(claimed_subject(pending.request_id), {"refused": reason})
            if found is not None:
                conn.refuse_info(found[0])
            conn.close(None)
            return None
        auth = await self.logins.commit(pending, reported[:32] if reported else None)
        if auth is None:  # another login won the token: it is that device's token now
            again = await self.logins.authenticate(token)
            if not isinstance(again, logins.DeviceAuth):
                conn.close("lost the provisioning token to another login")
                return None
            auth = again
        return auth

    async def _await_info(self, conn: Session) -> tuple[Any, str | None] | None:
        """The info message among what arrived since the login, waiting for it (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.claim_info_timeout
        while True:
            found = conn.held_info()
            if found is not None:
                return found
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

    async def _announce_claim(self, auth: logins.DeviceAuth) -> None:
        try:
            await self.writer.flush()
        except DatabaseUnavailable:
            pass  # presence follows with the next flush; the claim itself is committed
        await self.bus.publish(
            claimed_subject(auth.claimed_request or 0), {"device_id": auth.device_id}
        )

    def forget(self, conn: Session) -> None:
        self.connections.discard(conn)
        if conn.device_id and self.sessions.get(conn.device_id) is conn:
            del self.sessions[conn.device_id]
            self.writer.offline(conn.device_id, self.node, conn.connected_at, time.time())
            if not conn.replaced:
                self.presence(conn, False)
            log.debug("device %d: offline", conn.device_id)

    def held(self) -> list[tuple[int, float]]:
        """(device id, connected at) of every device whose connection this node holds."""
        return [(device_id, conn.connected_at) for device_id, conn in self.sessions.items()]

    def presence(self, conn: Session, online: bool) -> None:
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

    async def current_pins(self, device_id: int) -> dict[int, list[str]]:
        """The device's pin values: stored, with what it wrote that is not yet stored.
        Raises DatabaseUnavailable."""
        # Values the device wrote before asking are pending or being written now; a flush may
        # commit (and forget) them while the database is read, so they are taken first.
        before = self.writer.pending_pins(device_id)
        stored = {int(k[1:]): v for k, v in (await devices.pins_of(self.db, device_id)).items()}
        stored.update(before)
        stored.update(self.writer.pending_pins(device_id))
        return stored

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
        delivered: bool | None = False
        if kind == "deleted":
            conn.close("device deleted")
        elif kind == "disconnect":
            conn.close("disconnected by the cloud")
            delivered = True
        else:
            delivered = conn.deliver_kind(kind, args)
        if delivered is None:  # this protocol has no such command
            reason = f"the device is connected over {conn.protocol}, which has no such command"
            return {"node": self.node, "delivered": False, "reason": reason}
        return {"node": self.node, "delivered": delivered}

    async def on_login_elsewhere(self, msg: Message) -> None:
        if msg.get("node") == self.node:
            return
        conn = self.sessions.get(int(msg["device_id"]))
        # A login announced late (its node was busy) must not end a newer one held here: the
        # device moved on to this node after it. Messages of older nodes carry no time.
        at = msg.get("at")
        if conn is not None and isinstance(at, (int, float)) and at < conn.connected_at:
            log.debug("device %d: an older login on %s ignored", conn.device_id, msg.get("node"))
            return
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
