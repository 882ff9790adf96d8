"""Simulated Bluetooth LE, in one process: the device's GATT server and the provisioner's central.

``BleAir`` is the space between them. A ``SimGatt`` (the device's ``Gatt`` backend) registers
the Inject service under an address and is found by ``SimCentral.scan`` while it advertises; a
``SimCentral`` connects, writes RX values and reads TX notifications in order. Writes and
notifications cross with no delay (``delay`` adds one each way), so the demo and the tests show
the whole BLE flow with no radio. Values larger than ``max_write`` are refused, as an ATT
write longer than the attribute allows is.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

OnWrite = Callable[[str, bytes], None]
OnLeft = Callable[[str], None]

NOTIFY_QUEUE = 1024  # notifications a central has not read yet; past this the link drops


class BleError(Exception):
    """A BLE operation failed (no such device, disconnected, value too long)."""


@dataclass(frozen=True)
class Advert:
    address: str
    name: str
    rssi: int
    services: tuple[str, ...]


@dataclass
class _Peripheral:
    address: str
    name: str = ""
    services: tuple[str, ...] = ()
    rssi: int = -50
    advertising: bool = False
    on_write: OnWrite | None = None
    on_left: OnLeft | None = None
    links: dict[str, SimLink] = field(default_factory=dict)


class BleAir:
    def __init__(self, delay: float = 0.0, max_write: int = 512) -> None:
        self.delay = delay
        self.max_write = max_write
        self._peripherals: dict[str, _Peripheral] = {}
        self._ids = itertools.count(1)

    def new_address(self) -> str:
        n = next(self._ids)
        return f"02:00:00:B1:{n >> 8 & 0xFF:02X}:{n & 0xFF:02X}"

    def adverts(self) -> list[Advert]:
        return [
            Advert(p.address, p.name, p.rssi, p.services)
            for p in self._peripherals.values()
            if p.advertising
        ]


class SimGatt:
    """The device side: implements ``device.ble.Gatt``."""

    def __init__(self, air: BleAir, service: str, rssi: int = -50) -> None:
        self.air = air
        self.peripheral = _Peripheral(air.new_address(), services=(service,), rssi=rssi)

    @property
    def address(self) -> str:
        return self.peripheral.address

    async def open(self, name: str, on_write: OnWrite, on_left: OnLeft) -> None:
        p = self.peripheral
        p.name, p.on_write, p.on_left = name, on_write, on_left
        self.air._peripherals[p.address] = p

    async def advertise(self, on: bool) -> None:
        self.peripheral.advertising = on

    async def notify(self, value: bytes) -> None:
        if self.air.delay:
            await asyncio.sleep(self.air.delay)
        for link in list(self.peripheral.links.values()):
            link._deliver(value)

    async def close(self) -> None:
        p = self.peripheral
        p.advertising = False
        for link in list(p.links.values()):
            link._drop("the device went away")
        self.air._peripherals.pop(p.address, None)


class SimLink:
    """One central's connection to one peripheral."""

    def __init__(self, air: BleAir, peripheral: _Peripheral, central: str) -> None:
        self.air, self.peripheral, self.central = air, peripheral, central
        self._notifications: asyncio.Queue[bytes | None] = asyncio.Queue(NOTIFY_QUEUE)
        self.connected = True
        self.reason = ""

    async def write(self, value: bytes) -> None:
        if not self.connected:
            raise BleError(f"not connected: {self.reason}")
        if len(value) > self.air.max_write:
            raise BleError(f"a write of {len(value)} bytes exceeds {self.air.max_write}")
        if self.air.delay:
            await asyncio.sleep(self.air.delay)
        handler = self.peripheral.on_write
        if handler is not None:
            handler(self.central, bytes(value))

    async def notification(self, timeout: float) -> bytes:
        """The next TX notification; ``BleError`` when the link is gone, ``TimeoutError``."""
        if not self.connected and self._notifications.empty():
            raise BleError(f"disconnected: {self.reason}")
        value = await asyncio.wait_for(self._notifications.get(), timeout)
        if value is None:
            raise BleError(f"disconnected: {self.reason}")
        return value

    async def disconnect(self) -> None:
        if self.connected:
            self._drop("the central disconnected")
            left = self.peripheral.on_left
            if left is not None:
                left(self.central)

    def _deliver(self, value: bytes) -> None:
        try:
            self._notifications.put_nowait(value)
        except asyncio.QueueFull:
            self._drop("the central did not read its notifications")

    def _drop(self, reason: str) -> None:
        if self.connected:
            self.connected, self.reason = False, reason
            self.peripheral.links.pop(self.central, None)
            try:
                self._notifications.put_nowait(None)
            except asyncio.QueueFull:
                pass


class SimCentral:
    """The provisioner side (a phone or laptop with Bluetooth)."""

    def __init__(self, air: BleAir, address: str = "") -> None:
        self.air = air
        self.address = address or air.new_address()

    async def scan(self, timeout: float = 0.0) -> list[Advert]:
        if timeout:
            await asyncio.sleep(min(timeout, 0.05))
        return self.air.adverts()

    async def connect(self, address: str) -> SimLink:
        peripheral = self.air._peripherals.get(address)
        if peripheral is None or not peripheral.advertising:
            raise BleError(f"no device {address} is advertising")
        link = SimLink(self.air, peripheral, self.address)
        old = peripheral.links.get(self.address)
        if old is not None:
            old._drop("replaced by a new connection")
        peripheral.links[self.address] = link
        return link
