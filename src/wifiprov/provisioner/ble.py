"""The provisioner's Bluetooth LE side: find devices advertising Blynk.Inject, and provision one.

``BleDeviceSession`` speaks Inject over any link with ``write(bytes)`` and
``notification(timeout) -> bytes`` (the sim's ``SimLink``, or ``BleakLink`` here over bleak), so
the same steps run against our agent and against Blynk's own ``blynk-provisioning`` device code:
``info``, ``scan``, ``set``, ``connect``, then the ``status`` pushes until ``connected`` or a
``net_fail``/``cloud_fail``/``connect_fail``, which becomes a ``ProvisioningFailed`` with our
code and words. Events go to ``emit(step, message, **data)``; secrets are never in them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from wifiprov.provisioner.flow import ProvisioningFailed
from wifiprov.wire import inject

REPLY_TIMEOUT = 10.0  # seconds for a device's answer to a request
CONNECT_TIMEOUT = 150.0  # seconds for a whole attempt: 50 s network + 50 s cloud, with margin
MAX_MESSAGES = 200  # a device answering a request with more than this is misbehaving
FAILURES = ("net_fail", "cloud_fail", "connect_fail")


class Link(Protocol):
    async def write(self, value: bytes) -> None: ...
    async def notification(self, timeout: float) -> bytes: ...
    async def disconnect(self) -> None: ...


@dataclass(frozen=True)
class Found:
    address: str
    name: str
    rssi: int


Emit = Callable[..., None]


class BleDeviceSession:
    def __init__(self, link: Link, emit: Emit | None = None) -> None:
        self.link = link
        self.emit: Emit = emit or (lambda step, message, **data: None)

    async def _next(self, timeout: float) -> dict[str, Any]:
        try:
            raw = await self.link.notification(timeout)
        except TimeoutError:
            raise ProvisioningFailed(
                "the device stopped answering over Bluetooth",
                "stay close to the device and try again",
            ) from None
        try:
            return inject.decode(raw)
        except ValueError as exc:
            raise ProvisioningFailed(str(exc), "check the device runs Blynk.Inject") from None

    async def ask(self, kind: str, until: tuple[str, ...], **fields: Any) -> list[dict[str, Any]]:
        """Send one request; its answers up to the first of ``until`` (or an ``error``)."""
        await self.link.write(inject.request(kind, **fields))
        got: list[dict[str, Any]] = []
        for _ in range(MAX_MESSAGES):
            message = await self._next(REPLY_TIMEOUT)
            got.append(message)
            if message["t"] in until or (message["t"] == "error" and "scan_end" not in until):
                return got
        raise ProvisioningFailed(f"the device sent too many answers to {kind}", "try again")

    async def info(self) -> dict[str, Any]:
        info = (await self.ask("info", ("info",)))[-1]
        if info["t"] != "info":
            raise ProvisioningFailed(f"the device refused info: {info.get('msg')}", "try again")
        self.emit("info", f"device '{info.get('name')}'", info=info)
        return info

    async def scan(self) -> list[dict[str, Any]]:
        got = await self.ask("scan", ("scan_end",))
        networks = [m for m in got if m["t"] == "scan"]
        self.emit("scan", f"the device sees {len(networks)} network(s)", networks=networks)
        return networks

    async def configure(
        self, *, ssid: str, password: str, token: str, host: str = "", save: bool = False
    ) -> None:
        """``set`` then ``connect``, followed to ``connected``; ``ProvisioningFailed`` else."""
        fields: dict[str, Any] = {"if": "wifi", "ssid": ssid, "pass": password, "blynk": token}
        if host:
            fields["host"] = host
        if save:
            fields["save"] = "1"
        answer = (await self.ask("set", ("set_ok", "set_fail"), **fields))[-1]
        if answer["t"] != "set_ok":
            raise ProvisioningFailed(
                f"the device refused the settings: {answer.get('msg') or answer['t']}",
                "another provisioner may be busy with it; try again in a minute",
            )
        await self.link.write(inject.request("connect"))
        self.emit("config", f"configuration sent; the device joins '{ssid}'")
        async with asyncio.timeout(CONNECT_TIMEOUT):
            for _ in range(MAX_MESSAGES):
                message = await self._next(CONNECT_TIMEOUT)
                kind = message["t"]
                if kind == "status":
                    state = str(message.get("s"))
                    self.emit("progress", state.replace("_", " "), state=state)
                    if state == "connected":
                        return
                elif kind == "net_status":
                    self.emit(
                        "progress", f"joined with address {message.get('ip')}", net_status=message
                    )
                elif kind in FAILURES:
                    if kind == "connect_fail" and message.get("msg") == "busy":
                        raise ProvisioningFailed(
                            str(message.get("detail") or "the device is busy"),
                            "another provisioner is configuring it; try again when it is done",
                        )
                    failed = ProvisioningFailed.from_code(inject.failure_code(message))
                    detail = message.get("detail")
                    if detail:
                        failed.what = f"{failed.what} ({detail})"
                    raise failed
        raise ProvisioningFailed("the device sent too many messages", "try again")


# --- bleak -------------------------------------------------------------------------------------


class BleakLink:
    """A bleak connection to the Inject service: writes RX, queues TX notifications."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(1024)

    @classmethod
    async def connect(cls, address: str, timeout: float = 20.0) -> BleakLink:
        from bleak import BleakClient

        client = BleakClient(address, timeout=timeout)
        await client.connect()
        link = cls(client)
        await client.start_notify(inject.TX_UUID, lambda _char, data: link._got(bytes(data)))
        return link

    def _got(self, data: bytes) -> None:
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            pass  # a device flooding us: the session times out and says so

    async def write(self, value: bytes) -> None:
        await self.client.write_gatt_char(inject.RX_UUID, value, response=True)

    async def notification(self, timeout: float) -> bytes:
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def disconnect(self) -> None:
        await self.client.disconnect()


async def bleak_scan(timeout: float = 5.0, adapter: str | None = None) -> list[Found]:
    """Devices advertising the Inject service, strongest first."""
    from bleak import BleakScanner

    kwargs: dict[str, Any] = {"service_uuids": [inject.SERVICE_UUID]}
    if adapter:
        kwargs["adapter"] = adapter
    seen = await BleakScanner.discover(timeout=timeout, return_adv=True, **kwargs)
    found = [
        Found(device.address, adv.local_name or device.name or "", adv.rssi)
        for device, adv in seen.values()
        if inject.SERVICE_UUID in [u.lower() for u in adv.service_uuids]
    ]
    return sorted(found, key=lambda f: -f.rssi)
