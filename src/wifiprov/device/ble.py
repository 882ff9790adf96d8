"""Provisioning over Bluetooth LE: Blynk.Inject's GATT service on the device agent.

``BleProvisioning`` speaks Inject (``wire/inject.py``) to whichever central writes to RX, and
drives the agent's one ``Session`` and state machine, so BLE and the SoftAP portal share the
checks, the busy rule, ``last_error`` and its codes. It reaches the air through a ``Gatt``
backend: ``BluezGatt`` below (BlueZ's GattManager1 and LEAdvertisingManager1 over dbus-fast,
no raw HCI), or the sim's (``sim/ble.py``).

Decisions: the device advertises exactly while its SoftAP is open (the same provisioning
window, so a working device does not invite strangers); every reply is one notification of
one whole JSON object, kept short (BlueZ cuts a notification to ATT_MTU - 3 and Blynk's clients
do not reassemble; see ``wire/inject.py``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from wifiprov.device import machine as sm
from wifiprov.device.machine import State
from wifiprov.wire import edgent, inject, naming

if TYPE_CHECKING:
    from wifiprov.device.agent import Agent

log = logging.getLogger("wifiprov.device.ble")

CODE_ATTEMPTS = 5  # wrong out-of-band codes in a row before connect is refused for a while
CODE_LOCKOUT = 60.0  # seconds
OUTBOX_LIMIT = 256  # queued notifications; past this a central that does not read is dropped
ATTEMPT_STATES = (State.CONNECTING_NET, State.CONNECTING_CLOUD, State.RETRY_WAIT)
AP_STATES = (State.WAIT_CONFIG, State.CONFIGURING)
NET_STATUS = object()  # an outbox marker: the station's net_status, read when it is sent

OnWrite = Callable[[str, bytes], None]  # (central, value)
OnLeft = Callable[[str], None]  # (central)


class Gatt(Protocol):
    """A GATT server with the Inject service, and its advertisement."""

    async def open(self, name: str, on_write: OnWrite, on_left: OnLeft) -> None: ...
    async def advertise(self, on: bool) -> None: ...
    async def notify(self, value: bytes) -> None: ...
    async def close(self) -> None: ...


def ble_name(agent: Agent) -> str:
    c = agent.config
    code = naming.chip_code(naming.mac_chip_id(agent.radio.station_mac))
    return naming.ble_name(c.vendor, c.template_name, code)


class BleProvisioning:
    def __init__(self, gatt: Gatt) -> None:
        self.gatt = gatt
        self.agent: Agent | None = None
        self.name = ""
        self._pending: dict[str, inject.Pending] = {}
        self._following: str | None = None  # the central whose connect is being followed
        self._held: list[Any] | None = None  # replies held while the connect is dispatched
        self._outbox: asyncio.Queue[Any] = asyncio.Queue(OUTBOX_LIMIT)
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wrong_codes = 0
        self._locked_until = 0.0

    # --- the agent's BleTransport ---
    async def start(self, agent: Agent) -> None:
        self.agent = agent
        self.name = ble_name(agent)
        await self.gatt.open(self.name, self._on_write, self._on_left)
        agent.on_state.append(self._on_state)
        self._sender = asyncio.create_task(self._send_loop())
        log.info("Bluetooth LE provisioning ready as '%s'", self.name)

    async def advertise(self, on: bool) -> None:
        await self.gatt.advertise(on)
        log.info("Bluetooth LE advertising %s", "on" if on else "off")

    async def close(self) -> None:
        if self.agent is not None and self._on_state in self.agent.on_state:
            self.agent.on_state.remove(self._on_state)
        for task in [self._sender, *self._tasks]:
            if task is not None:
                task.cancel()
        await self.gatt.close()

    # --- the conversation ---
    def _send(self, message: Any) -> None:
        if self._held is not None:
            self._held.append(message)
            return
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("the Bluetooth central does not read its notifications: dropping one")

    async def _send_loop(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                if message is NET_STATUS:
                    message = await self._net_status()
                await self.gatt.notify(inject.encode(message))
            except Exception as exc:  # one lost notification must not end the conversation
                log.warning("could not notify the central: %s", exc)

    async def _net_status(self) -> dict[str, Any]:
        assert self.agent is not None
        station = (await self.agent.radio.status()).station
        if station is None:
            return inject.net_status(ssid="", bssid="", ip="", rssi=0, state="disconnected")
        return inject.net_status(
            ssid=station.ssid.decode("utf-8", "replace"),
            bssid=station.bssid,
            ip=station.ip,
            rssi=station.rssi,
            state="connected",
        )

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_write(self, central: str, value: bytes) -> None:
        """One RX write. Never raises: bad input gets Blynk's error answer, and nothing else."""
        agent = self.agent
        if agent is None:
            return
        who = f"ble:{central}"
        try:
            req = inject.parse(value)
        except inject.InjectError as exc:
            self._send(exc.reply)
            return
        agent.session.seen(who)
        agent.dispatch(sm.PortalActivity())  # a provisioner is talking: CONFIGURING stays
        handler = HANDLERS[req.kind]
        try:
            handler(self, agent, who, central, req.fields)
        except Exception:
            log.exception("handling the BLE %s request failed", req.kind)
            self._send(inject.error("internal error"))

    def _on_left(self, central: str) -> None:
        """A central disconnected: its pending fields go (as in Blynk's library), and the session
        is free. An attempt it started goes on; the portal can watch it."""
        self._pending.pop(central, None)
        if self._following == central:
            self._following = None
        agent = self.agent
        if agent is not None:
            agent.session.release(f"ble:{central}")
            log.info("the Bluetooth central left")

    # --- requests ---
    def _info(self, agent: Agent, who: str, central: str, fields: Any) -> None:
        c = agent.config
        agent.dispatch(sm.BoardInfoRead())
        self._send(
            inject.info(
                vendor=c.vendor,
                tmpl_id=c.template_id,
                fw_type=c.firmware_type,
                fw_ver=c.firmware_version,
                name=self.name,
                uid=agent.uid,
                code=c.ble_code is not None,
            )
        )

    def _ifs(self, agent: Agent, who: str, central: str, fields: Any) -> None:
        self._spawn(self._do_ifs(agent))

    async def _do_ifs(self, agent: Agent) -> None:
        station = (await agent.radio.status()).station
        self._send(inject.simple("ifs_start"))
        wifi_up = station is not None and bool(station.ssid)
        self._send(inject.interface("wifi", agent.radio.station_mac, wifi_up, scan=True))
        if agent.radio.wired_mac is not None:
            wired_up = station is not None and not station.ssid
            self._send(inject.interface("eth", agent.radio.wired_mac, wired_up))
        self._send(inject.simple("ifs_end"))

    def _scan(self, agent: Agent, who: str, central: str, fields: Any) -> None:
        self._spawn(self._do_scan(agent))

    async def _do_scan(self, agent: Agent) -> None:
        self._send(inject.simple("scan_start"))
        try:
            if agent.radio.ap_and_station or not agent._scan:
                agent._scan = await agent.radio.scan()
            for message in inject.scan_entries(agent._scan):
                self._send(message)
        except Exception as exc:
            log.warning("BLE scan failed: %s", exc)
            self._send(inject.error("no wifi"))
        self._send(inject.simple("scan_end"))

    def _set(self, agent: Agent, who: str, central: str, fields: Any) -> None:
        busy = agent.session.claim(who)
        if busy is not None:
            self._send({"t": "set_fail", "msg": busy})
            return
        problem = self._pending.setdefault(central, inject.Pending()).set(fields)
        if problem is not None:
            log.info("refused a BLE set: %s", problem)
            self._send({"t": "set_fail", "msg": problem})
            return
        self._send(inject.simple("set_ok"))

    def _connect(self, agent: Agent, who: str, central: str, fields: Any) -> None:
        pending = self._pending.setdefault(central, inject.Pending())
        refused_code = self._check_code(agent, pending)
        if refused_code is not None:
            self._send(inject.connect_fail(refused_code[0], refused_code[1]))
            return
        try:
            parsed = pending.config(agent.session.defaults())
        except edgent.ConfigError as exc:
            log.info("refused a BLE connect: %s", exc)
            self._send(inject.connect_fail(detail=str(exc)))
            return
        previous = self._following
        self._following, self._held = central, []
        try:
            refused = agent.session.configure(parsed, who)
        finally:
            held, self._held = self._held, None
        if refused is not None:
            self._following = previous
            msg = "busy" if refused.kind == "busy" else inject.CONFIGURATION_INVALID
            self._send(inject.connect_fail(msg, refused.message))
            return
        self._send(inject.simple("connecting"))
        for message in held:
            self._send(message)

    def _check_code(self, agent: Agent, pending: inject.Pending) -> tuple[str, str] | None:
        """The out-of-band code, when the device has one: None when right, else the refusal.
        Compared in constant time; after CODE_ATTEMPTS wrong ones every connect is refused for
        CODE_LOCKOUT seconds (a 6-digit code then takes years to guess)."""
        code = agent.config.ble_code
        if code is None:
            return None
        now = agent.clock()
        if now < self._locked_until:
            return (
                "code locked",
                f"too many wrong codes: try again in {self._locked_until - now:.0f} s",
            )
        given = pending.values.get("code", "")
        if not given:
            return "code required", "this device requires the code printed on its label"
        if hmac.compare_digest(given.encode(), code.encode()):
            self._wrong_codes = 0
            return None
        self._wrong_codes += 1
        log.warning("a BLE provisioner sent a wrong device code (%d in a row)", self._wrong_codes)
        if self._wrong_codes >= CODE_ATTEMPTS:
            self._wrong_codes = 0
            self._locked_until = now + CODE_LOCKOUT
        return "wrong code", "the code does not match the one on the device's label"

    def _reset(self, agent: Agent, who: str, central: str, fields: Any) -> None:
        busy = agent.session.claim(who)
        if busy is not None:
            self._send(inject.error(busy))
            return
        self._pending.setdefault(central, inject.Pending()).reset()
        self._send(inject.simple("reset_ok"))

    def _reboot(self, agent: Agent, who: str, central: str, fields: Any) -> None:
        busy = agent.session.claim(who)
        if busy is not None:
            self._send(inject.error(busy))
            return
        log.info("BLE reboot: restarting the agent")
        asyncio.get_running_loop().call_later(0.2, agent.restart)

    # --- following an attempt ---
    def _on_state(self, state: State) -> None:
        if self._following is None or self.agent is None:
            return
        if state is State.CONNECTING_NET:
            self._send(inject.status("connecting_net"))
        elif state is State.CONNECTING_CLOUD:
            self._send(inject.status("connecting_cloud"))
            self._send(NET_STATUS)
        elif state is State.RUNNING:
            self._send(inject.status("connected"))
            self._following = None
        elif state in AP_STATES:
            self._send(inject.failure(self.agent.last_error))
            self._following = None


Handler = Callable[[BleProvisioning, "Agent", str, str, Any], None]
HANDLERS: dict[str, Handler] = {
    "info": BleProvisioning._info,
    "ifs": BleProvisioning._ifs,
    "scan": BleProvisioning._scan,
    "set": BleProvisioning._set,
    "connect": BleProvisioning._connect,
    "reset": BleProvisioning._reset,
    "reboot": BleProvisioning._reboot,
}


# --- BlueZ ------------------------------------------------------------------------------------

APP_PATH = "/org/wifiprov/inject"
BLUEZ = "org.bluez"


class BluezGatt:
    """The Inject service served by BlueZ over D-Bus (dbus-fast): a GATT application registered
    with ``GattManager1`` and an advertisement with ``LEAdvertisingManager1`` on ``adapter``.
    Needs bluetoothd and the right to use it (root, or the bluetooth group's policy)."""

    def __init__(self, adapter: str = "hci0") -> None:
        self.adapter_path = f"/org/bluez/{adapter}"
        self.bus: Any = None
        self._objects: list[Any] = []
        self._tx: Any = None
        self._advert: Any = None
        self._advertising = False
        self._centrals: set[str] = set()
        self._on_left: OnLeft | None = None

    async def open(self, name: str, on_write: OnWrite, on_left: OnLeft) -> None:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus

        from wifiprov.device import bluez_objects as objs

        self._on_left = on_left
        try:
            self.bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except OSError as exc:
            raise OSError(f"cannot reach the system D-Bus ({exc.strerror or exc})") from None
        try:
            adapter = await self._interface(self.adapter_path, "org.bluez.Adapter1")
        except Exception as exc:
            self.bus.disconnect()
            self.bus = None
            raise OSError(
                f"no Bluetooth adapter {self.adapter_path.rsplit('/', 1)[-1]} in BlueZ "
                f"(is bluetoothd running?): {exc}"
            ) from None
        if not await adapter.get_powered():
            await adapter.set_powered(True)

        def write(value: bytes, central: str) -> None:
            if central and central not in self._centrals:
                self._centrals.add(central)
            on_write(central, value)

        service = objs.Service(f"{APP_PATH}/service0", inject.SERVICE_UUID)
        rx = objs.Characteristic(
            f"{APP_PATH}/service0/rx",
            inject.RX_UUID,
            service.path,
            ["write", "write-without-response"],
            write,
        )
        self._tx = objs.Characteristic(
            f"{APP_PATH}/service0/tx", inject.TX_UUID, service.path, ["notify"], None
        )
        self._advert = objs.Advertisement(f"{APP_PATH}/advert0", name, inject.SERVICE_UUID)
        self._objects = [service, rx, self._tx]
        for obj in self._objects:
            self.bus.export(obj.path, obj)
        self.bus.export(self._advert.path, self._advert)
        manager = await self._interface(self.adapter_path, "org.bluez.GattManager1")
        await manager.call_register_application(APP_PATH, {})

        # A central that disconnects: Device1.Connected turns false.
        match = (
            "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
            "member='PropertiesChanged',arg0='org.bluez.Device1'"
        )
        await self.bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[match],
            )
        )

        def on_message(msg: Any) -> None:
            if msg.message_type is not MessageType.SIGNAL or msg.member != "PropertiesChanged":
                return
            if msg.path in self._centrals and msg.body and msg.body[0] == "org.bluez.Device1":
                connected = msg.body[1].get("Connected")
                if connected is not None and connected.value is False:
                    self._centrals.discard(msg.path)
                    if self._on_left is not None:
                        self._on_left(msg.path)

        self.bus.add_message_handler(on_message)

    async def _interface(self, path: str, name: str) -> Any:
        introspection = await self.bus.introspect(BLUEZ, path)
        return self.bus.get_proxy_object(BLUEZ, path, introspection).get_interface(name)

    async def advertise(self, on: bool) -> None:
        if on == self._advertising or self.bus is None:
            return
        manager = await self._interface(self.adapter_path, "org.bluez.LEAdvertisingManager1")
        if on:
            await manager.call_register_advertisement(self._advert.path, {})
        else:
            await manager.call_unregister_advertisement(self._advert.path)
        self._advertising = on

    async def notify(self, value: bytes) -> None:
        if self._tx is not None:
            self._tx.notify(value)

    async def close(self) -> None:
        if self.bus is None:
            return
        try:
            await self.advertise(False)
            manager = await self._interface(self.adapter_path, "org.bluez.GattManager1")
            await manager.call_unregister_application(APP_PATH)
        except Exception as exc:
            log.debug("unregistering from BlueZ: %s", exc)
        self.bus.disconnect()
        self.bus = None
