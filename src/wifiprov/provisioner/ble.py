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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from wifiprov.provisioner.client import CloudClient
from wifiprov.provisioner.flow import (
    Choices,
    Event,
    Prompts,
    Provisioner,
    ProvisioningFailed,
    named_for,
)
from wifiprov.wire import inject

REPLY_TIMEOUT = 10.0  # seconds for a device's answer to a request
CONNECT_TIMEOUT = 150.0  # seconds for a whole attempt: 50 s network + 50 s cloud, with margin
MAX_MESSAGES = 200  # a device answering a request with more than this is misbehaving
FAILURES = ("net_fail", "cloud_fail", "connect_fail")
CODE_REFUSALS = ("code required", "wrong code", "code locked")
STATUS_WORDS = {
    "connecting_net": "the device is joining the network",
    "connecting_cloud": "the device joined the network; connecting to the cloud",
    "connected": "the device is connected to the cloud",
}


SCAN_TIMEOUT = 5.0  # seconds of BLE scanning for devices
CONNECT_ATTEMPTS = 5  # BlueZ often fails service discovery right after a previous connection


class Link(Protocol):
    async def write(self, value: bytes) -> None: ...
    async def notification(self, timeout: float) -> bytes: ...
    async def disconnect(self) -> None: ...


@dataclass(frozen=True)
class Found:
    address: str
    name: str
    rssi: int


class Central(Protocol):
    """This machine's Bluetooth: bleak (``BleakCentral``) or the sim's (``sim.ble``)."""

    async def find(self, timeout: float) -> list[Found]: ...
    async def open(self, address: str) -> Link: ...


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

    async def interfaces(self) -> list[dict[str, Any]]:
        got = await self.ask("ifs", ("ifs_end",))
        return [m for m in got if m["t"] == "if"]

    async def configure(
        self,
        *,
        ssid: str | None,
        password: str,
        token: str,
        host: str = "",
        save: bool = False,
        code: str | None = None,
    ) -> None:
        """``set`` then ``connect``, followed to ``connected``; ``ProvisioningFailed`` else.
        ``ssid`` None: the device is online already (an ``eth`` reported ready): the token only.
        """
        fields: dict[str, Any] = {"if": "wifi", "ssid": ssid, "pass": password, "blynk": token}
        if ssid is None:
            fields = {"if": "eth", "blynk": token}
        if host:
            fields["host"] = host
        if code:  # our extension: the label's code, for a device that requires one
            fields["code"] = code
        if save:
            fields["save"] = "1"
        answer = (await self.ask("set", ("set_ok", "set_fail"), **fields))[-1]
        if answer["t"] != "set_ok":
            raise ProvisioningFailed(
                f"the device refused the settings: {answer.get('msg') or answer['t']}",
                "another provisioner may be busy with it; try again in a minute",
            )
        await self.link.write(inject.request("connect"))
        self.emit(
            "config",
            f"configuration sent; the device joins '{ssid}'"
            if ssid is not None
            else "token sent; the device is online already",
        )
        async with asyncio.timeout(CONNECT_TIMEOUT):
            for _ in range(MAX_MESSAGES):
                message = await self._next(CONNECT_TIMEOUT)
                kind = message["t"]
                if kind == "status":
                    state = str(message.get("s"))
                    self.emit("progress", STATUS_WORDS.get(state, state), state=state)
                    if state == "connected":
                        return
                elif kind == "net_status":
                    self.emit(
                        "progress", f"joined with address {message.get('ip')}", net_status=message
                    )
                elif kind in FAILURES:
                    if kind == "connect_fail" and message.get("msg") in CODE_REFUSALS:
                        raise ProvisioningFailed(
                            str(message.get("detail") or message.get("msg")),
                            "give the code printed on the device's label (--ble-code)",
                        )
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
    async def connect(
        cls, device: Any, timeout: float = 20.0, adapter: str | None = None
    ) -> BleakLink:
        """``device``: bleak's ``BLEDevice`` from the scan (an address alone makes bleak scan
        again to find it, which misses devices that advertise rarely)."""
        from bleak import BleakClient

        kwargs: dict[str, Any] = {"bluez": {"adapter": adapter}} if adapter else {}
        client = BleakClient(device, timeout=timeout, **kwargs)
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


async def bleak_scan(
    timeout: float = 5.0, adapter: str | None = None, seen: dict[str, Any] | None = None
) -> list[Found]:
    """Devices advertising the Inject service, strongest first; ``seen`` gets bleak's
    ``BLEDevice`` of each, by address."""
    from bleak import BleakScanner

    kwargs: dict[str, Any] = {"service_uuids": [inject.SERVICE_UUID]}
    if adapter:
        kwargs["bluez"] = {"adapter": adapter}
    heard = await BleakScanner.discover(timeout=timeout, return_adv=True, **kwargs)
    found = []
    for device, adv in heard.values():
        if inject.SERVICE_UUID in [u.lower() for u in adv.service_uuids]:
            found.append(Found(device.address, adv.local_name or device.name or "", adv.rssi))
            if seen is not None:
                seen[device.address] = device
    return sorted(found, key=lambda f: -f.rssi)


class BleakCentral:
    def __init__(self, adapter: str | None = None) -> None:
        self.adapter = adapter
        self._devices: dict[str, Any] = {}  # bleak's BLEDevice of each address scanned

    async def find(self, timeout: float) -> list[Found]:
        return await bleak_scan(timeout, self.adapter, self._devices)

    async def open(self, address: str) -> Link:
        device = self._devices.get(address, address)
        return await BleakLink.connect(device, adapter=self.adapter)


def signal(rssi: int) -> str:
    """An advertisement's RSSI in words; 127 is HCI's "not available" (virtual controllers)."""
    return "signal unknown" if rssi >= 127 else f"{rssi} dBm"


def online_already(interfaces: list[dict[str, Any]]) -> bool:
    """Blynk's rule: a device reporting a ready ``eth`` and no WiFi to set up needs no network
    settings (Blynk's library with ``configure_network=False`` reports just that)."""
    wifi = any(i.get("name") == "wifi" and i.get("scan") for i in interfaces)
    ready_eth = any(i.get("name") == "eth" and i.get("status") == "ready" for i in interfaces)
    return ready_eth and not wifi


class SimBleCentral:
    """The sim's central (``sim.ble.SimCentral``) as a ``Central``."""

    def __init__(self, central: Any) -> None:
        self.central = central

    async def find(self, timeout: float) -> list[Found]:
        adverts = await self.central.scan(min(timeout, 0.05))
        found = [
            Found(a.address, a.name, a.rssi) for a in adverts if inject.SERVICE_UUID in a.services
        ]
        return sorted(found, key=lambda f: -f.rssi)

    async def open(self, address: str) -> Link:
        link: Link = await self.central.connect(address)
        return link


# --- the whole flow ----------------------------------------------------------------------------


class BleProvisioner(Provisioner):
    """``wifiprov provision --ble``: the SoftAP flow's steps where they are the same (template,
    token, waiting for the cloud to see the device, naming it), Blynk.Inject for the device.
    The phone (this machine) never leaves its own network."""

    def __init__(
        self,
        cloud: CloudClient,
        central: Central,
        emit: Callable[[Event], None],
        prompts: Prompts | None = None,
        *,
        online_timeout: float = 90.0,
        code: str | None = None,
    ) -> None:
        super().__init__(cloud, None, emit, prompts, online_timeout=online_timeout)  # type: ignore[arg-type]
        self.central = central
        self.code = code

    async def run(self, choices: Choices) -> dict[str, Any]:
        self._started = time.monotonic()
        self.stage, self.device_id, self.request = "start", None, None
        template, prefix = await self.pick_template(choices)
        found = await self.find_ble(choices, prefix, template["name"])
        link = await self._open(found)
        try:
            session = BleDeviceSession(link, self.emit)
            info = await session.info()
            if info.get("tmpl_id") not in (template["id"], None) and info.get("fw_type") != (
                "DYNAMIC"
            ):
                raise ProvisioningFailed(
                    f"the device runs template {info.get('tmpl_id')}, not {template['id']}",
                    "choose the device's own template (--template)",
                )
            code = self.code
            if code is None and "oob_code" in (info.get("caps") or []):
                code = self.ask_text("The code on the device's label", "--ble-code", secret=True)
            interfaces = await session.interfaces()
            ssid: str | None = None
            password = ""
            if online_already(interfaces):
                self.emit("ifs", "the device is online already: it needs the token only")
            else:
                networks = await session.scan()
                ssid, password = self._pick(networks, choices)
            request = await self.cloud_token(template)
            self.ssid, self.request = ssid, request
            # Blynk's set has no port (Edgent ignores one): the device uses its own default.
            host = str(request.get("host") or "")
            self.waiting("the device to join the network and the cloud", 110)
            await session.configure(
                ssid=ssid,
                password=password,
                token=request["token"],
                host=host,
                save=choices.save,
                code=code,
            )
            self.stage = "configured"
        finally:
            try:
                await link.disconnect()
            except Exception:  # noqa: BLE001 - the device may have gone already
                pass
        device_id = await self.wait_online(request, found.name)
        return await self.name(device_id, choices)

    async def find_ble(self, choices: Choices, prefix: str, template_name: str) -> Found:
        self.waiting("a Bluetooth scan for devices in setup mode", SCAN_TIMEOUT)
        try:
            found = await self.central.find(SCAN_TIMEOUT)
        except ImportError:
            raise ProvisioningFailed(
                "Bluetooth needs the bleak package, which is not installed",
                "pip install bleak (Linux: BlueZ's bluetoothd must run)",
            ) from None
        except Exception as exc:  # noqa: BLE001 - no adapter, bluetoothd down, powered off
            raise ProvisioningFailed(
                f"cannot scan over Bluetooth: {exc or type(exc).__name__}",
                "check that Bluetooth is on (bluetoothctl power on) and bluetoothd runs",
            ) from None
        shown = [{"name": f.name, "rssi": f.rssi, "address": f.address} for f in found]
        if choices.device:
            match = [f for f in found if choices.device in (f.name, f.address)]
        else:
            match = [f for f in found if named_for(f.name, prefix, template_name)]
        if not match:
            names = ", ".join(f"{f.name} ({signal(f.rssi)})" for f in found) or "none"
            raise ProvisioningFailed(
                f"no device of template {template_name} in setup mode over Bluetooth "
                f"(devices seen: {names})",
                "put the device in setup mode (hold its button 10 s), come closer, try again",
            )
        if len(match) == 1 or self.prompts is None and choices.device:
            chosen = match[0]
        else:
            labels = [f"{f.name} ({signal(f.rssi)})" for f in match]
            chosen = match[labels.index(self.ask_choice("Which device?", labels, "--device"))]
        self.chosen["device"] = chosen.name
        self.emit(
            "find",
            f"using device '{chosen.name}' ({signal(chosen.rssi)}) over Bluetooth",
            device=chosen.name,
            rssi=chosen.rssi,
            seen=shown,
        )
        return chosen

    async def _open(self, found: Found) -> Link:
        """Connect, again on failure (BlueZ's first connection sometimes fails to discover
        services; phones retry too)."""
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                link = await self.central.open(found.address)
                self.emit("connect", f"connected to '{found.name}' over Bluetooth")
                return link
            except Exception as exc:  # noqa: BLE001 - bleak's and BlueZ's many errors
                if attempt == CONNECT_ATTEMPTS:
                    raise ProvisioningFailed(
                        f"cannot connect to '{found.name}' over Bluetooth: {exc}",
                        "come closer to the device and try again",
                    ) from None
                await asyncio.sleep(float(attempt))  # 1, 2, 3, 4 s: bounded, about 10 s in all
        raise AssertionError("unreachable")

    def _pick(self, networks: list[dict[str, Any]], choices: Choices) -> tuple[str, str]:
        ssids = [str(n.get("ssid")) for n in networks]
        ssid = choices.ssid
        if ssid is None:
            if not ssids:
                raise ProvisioningFailed("the device sees no WiFi network", "pass --ssid")
            ssid = self.ask_choice("Which network?", ssids, "--ssid")
        elif ssid not in ssids and not choices.hidden:
            raise ProvisioningFailed(
                f"the device does not see the network '{ssid}'",
                "check its name, or pass --hidden for a hidden network",
            )
        password = choices.password
        if password is None:
            sec = next((str(n.get("sec")) for n in networks if n.get("ssid") == ssid), "")
            password = (
                ""
                if sec == "OPEN"
                else self.ask_text(f"Password for '{ssid}'", "--password-file", secret=True)
            )
        return ssid, password

    async def diagnose(self, ap: str) -> ProvisioningFailed:
        return ProvisioningFailed(
            "the device said it connected but the cloud has not seen it log in",
            "check the cloud's device host and port are reachable from the device's network",
        )
