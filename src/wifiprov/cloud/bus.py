"""Presence and cloud->device commands between cloud nodes: in-process, or NATS across machines.

Messages are small JSON objects on a few subjects:
- ``DEVICE_COMMANDS``: ``{"device_id", "kind", "args"}``; the node holding the device acts on it
  (kinds: hardware, internal, redirect, disconnect, erased). Sent as a *request* for what goes
  to the device: only the node holding a live connection replies ``{"node", "delivered"}``, so
  no reply within the timeout means no live connection took it;
- ``DEVICE_LOGINS``: ``{"device_id", "node", "at"}``; other nodes drop an older connection of
  that device (one that logged in before ``at``);
- ``DEVICE_PRESENCE``: ``{"device_id", "org_id", "online", "node", "at"}`` when a node's gateway
  marks a device online (login) or offline (its connection gone); the console's live device
  pages listen to it. Published as it happens, before the write-behind stores it;
- ``claimed_subject(request_id)``: ``{"device_id"}`` when a provisioning token claims its device.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("wifiprov.bus")

DEVICE_COMMANDS = "wifiprov.device.commands"
DEVICE_LOGINS = "wifiprov.device.logins"
DEVICE_PRESENCE = "wifiprov.device.presence"

Message = dict[str, Any]
# A handler may return a Message: the reply to a ``request`` (ignored for ``publish``).
Handler = Callable[[Message], Awaitable[Message | None] | Message | None]


def claimed_subject(request_id: int) -> str:
    return f"wifiprov.provisioning.{request_id}.claimed"


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Bus(Protocol):
    shared: bool  # whether other processes see what is published

    async def publish(self, subject: str, message: Message) -> None: ...
    async def request(self, subject: str, message: Message, timeout: float) -> Message | None:
        """The first handler's reply within ``timeout`` seconds, or None (nobody replied)."""
        ...

    async def subscribe(self, subject: str, handler: Handler) -> Subscription: ...
    async def close(self) -> None: ...


async def _call(handler: Handler, message: Message) -> Message | None:
    try:
        result = handler(message)
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, dict) else None
    except Exception:
        log.exception("bus handler failed")
        return None


class _LocalSubscription:
    def __init__(self, bus: LocalBus, subject: str, handler: Handler) -> None:
        self._bus, self._subject, self._handler = bus, subject, handler

    async def unsubscribe(self) -> None:
        handlers = self._bus.handlers.get(self._subject, [])
        if self._handler in handlers:
            handlers.remove(self._handler)


class LocalBus:
    """One process: handlers run on the event loop soon after publish, as they would over NATS."""

    shared = False

    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = {}

    async def publish(self, subject: str, message: Message) -> None:
        for handler in list(self.handlers.get(subject, ())):
            asyncio.get_running_loop().create_task(_call(handler, message))

    async def request(self, subject: str, message: Message, timeout: float) -> Message | None:
        for handler in list(self.handlers.get(subject, ())):
            reply = await _call(handler, message)
            if reply is not None:
                return reply
        return None

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        self.handlers.setdefault(subject, []).append(handler)
        return _LocalSubscription(self, subject, handler)

    async def close(self) -> None:
        self.handlers.clear()


class NatsBus:
    """NATS, with every subject under ``namespace`` so clouds sharing one NATS never mix."""

    shared = True

    def __init__(self, nc: Any, namespace: str) -> None:
        from nats.errors import Error

        self._nc = nc
        self._ns = namespace
        self._away: type[Exception] = Error  # what nats raises with the bus out of reach

    @classmethod
    async def connect(cls, url: str, namespace: str) -> NatsBus:
        import nats

        async def lost() -> None:
            log.warning(
                "lost the bus (NATS at %s): this node keeps serving the devices it holds; "
                "other nodes' commands, logins and presence reach it once the bus is back",
                url,
            )

        async def back() -> None:
            log.warning("the bus (NATS at %s) is back", url)

        async def error(exc: Exception) -> None:
            log.debug("bus: %s", exc)

        nc = await nats.connect(
            url,
            name="wifiprov",
            max_reconnect_attempts=-1,
            connect_timeout=5,
            disconnected_cb=lost,
            reconnected_cb=back,
            error_cb=error,
        )
        return cls(nc, namespace)

    async def publish(self, subject: str, message: Message) -> None:
        """Publish, or (the bus is away and its buffer full) drop with a warning: the bus
        carries what other nodes should hear now; what must last is in the database."""
        try:
            await self._nc.publish(f"{self._ns}.{subject}", json.dumps(message).encode())
        except self._away as exc:
            log.warning("bus away: %s not published (%s)", subject, exc)

    async def request(self, subject: str, message: Message, timeout: float) -> Message | None:
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        try:
            msg = await self._nc.request(
                f"{self._ns}.{subject}", json.dumps(message).encode(), timeout=timeout
            )
        except (NatsTimeout, NoRespondersError, TimeoutError):
            return None
        except self._away as exc:  # the bus is away: nobody can be asked
            log.warning("bus away: %s not asked (%s)", subject, exc)
            return None
        try:
            reply = json.loads(msg.data)
        except ValueError:
            return None
        return reply if isinstance(reply, dict) else None

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        async def on_msg(msg: Any) -> None:
            try:
                message = json.loads(msg.data)
            except ValueError:
                log.warning("dropped a malformed bus message on %s", subject)
                return
            reply = await _call(handler, message)
            if reply is not None and msg.reply:
                await self._nc.publish(msg.reply, json.dumps(reply).encode())

        sub = await self._nc.subscribe(f"{self._ns}.{subject}", cb=on_msg)
        # Make sure the server has the subscription before anyone relies on it.
        await self._nc.flush()
        return sub  # type: ignore[no-any-return]

    async def close(self) -> None:
        try:
            await self._nc.drain()
        except (self._away, OSError):  # the bus is away: nothing to drain into it
            with contextlib.suppress(self._away, OSError):
                await self._nc.close()


async def make_bus(url: str | None, namespace: str = "wifiprov") -> Bus:
    """The bus for ``url``; ``namespace`` separates clouds (nodes of one cloud share it)."""
    if not url:
        return LocalBus()
    if url.startswith("nats://"):
        return await NatsBus.connect(url, namespace)
    raise ValueError(f"unsupported bus '{url}': use nats://HOST:PORT, or nothing for in-process")
