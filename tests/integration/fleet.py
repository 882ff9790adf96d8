"""A fleet of Blynk-protocol devices in one process, each reconnecting round the cloud's nodes.

Each device logs in with its own token on one gateway of a list (a front address list, as a
device given several cloud addresses uses them): when its connection ends it tries the next
address after a short jittered wait, as Blynk's libraries reconnect. It answers nothing and
keeps every HARDWARE and INTERNAL frame the cloud sends it, with the node it came through.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Frame, Status

PING_EVERY = 20.0  # well inside the cloud's default heartbeat (45 s x 2.3)


@dataclass
class FleetDevice:
    device_id: int
    token: str
    addresses: list[tuple[str, int]]
    at: int  # index in addresses of the gateway it uses (or will try next)
    online: asyncio.Event = field(default_factory=asyncio.Event)
    logins: int = 0
    live: int = 0  # connections logged in now: never more than one
    received: list[tuple[int, Frame]] = field(default_factory=list)  # (address index, frame)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, blynk.ProtocolError):
                await self._session(stop)
            self.online.clear()
            self.at = (self.at + 1) % len(self.addresses)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(0.05, 0.5))

    async def _session(self, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(*self.addresses[self.at])
        try:
            writer.write(blynk.encode(Command.HW_LOGIN, 1, self.token))
            reply = blynk.Decoder(65535).feed(await reader.readexactly(5))
            if not reply or reply[0].status != Status.OK:
                return
            self.logins += 1
            self.live += 1
            self.online.set()
            try:
                await self._serve(reader, writer, stop)
            finally:
                self.live -= 1
        finally:
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event
    ) -> None:
        decoder = blynk.Decoder(65535)
        msg_id = 1
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + PING_EVERY
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(65536), max(0.1, next_ping - loop.time()))
            except TimeoutError:
                msg_id = msg_id % 65535 + 1
                writer.write(blynk.encode(Command.PING, msg_id))
                next_ping = loop.time() + PING_EVERY
                continue
            if not data:
                return
            for frame in decoder.feed(data):
                if frame.command in (Command.HARDWARE, Command.INTERNAL):
                    self.received.append((self.at, frame))


class Fleet:
    def __init__(self, tokens: dict[int, str], addresses: list[tuple[str, int]]) -> None:
        self.devices = [
            FleetDevice(device_id, token, addresses, i % len(addresses))
            for i, (device_id, token) in enumerate(sorted(tokens.items()))
        ]
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(d.run(self.stop)) for d in self.devices]

    async def all_online(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            for device in self.devices:
                await device.online.wait()

    def on(self, index: int) -> list[FleetDevice]:
        """The devices connected through address ``index`` now."""
        return [d for d in self.devices if d.online.is_set() and d.at == index]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
