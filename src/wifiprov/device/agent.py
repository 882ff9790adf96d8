"""The device agent: the state machine's I/O shell.

The machine (``machine.py``) decides; this module carries out its actions on the radio, the
portal, the cloud link, the store and the panel, and turns what they report into events. Effects
run one at a time in order (so "stop the AP" happens before "connect"), except the two long
ones, joining the network and holding the cloud connection, which run as tasks that the machine
cancels with ``Disconnect``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from wifiprov import __version__
from wifiprov.device import console
from wifiprov.device import machine as sm
from wifiprov.device.identity import load_or_create_uid
from wifiprov.device.link import CloudLink, LinkCallbacks, LinkError, LinkSettings, edgent_meta
from wifiprov.device.machine import Machine, State
from wifiprov.device.panel import Panel
from wifiprov.device.portal import HTML, Portal, Reply
from wifiprov.device.radio import base as radio_base
from wifiprov.device.radio.base import ConnectError, Radio
from wifiprov.device.session import PORTAL, Session, mask
from wifiprov.device.setup_page import setup_page
from wifiprov.device.store import ConfigStore, Flags, Network, StaticIp, StoredConfig
from wifiprov.wire import edgent, naming
from wifiprov.wire.errors import ProvisioningError as E
from wifiprov.wire.errors import explain

if TYPE_CHECKING:  # imported when used: aiomqtt is needed only by link = "mqtt"
    from wifiprov.device.mqtt_link import MqttLink

log = logging.getLogger("wifiprov.device")

AP_REOPEN_DELAY = 2.0  # seconds after the AP went down on its own before reopening it
SUPERVISOR_DELAY = 1.0  # seconds before a task that died is started again
CLIENT_POLL = 2.0  # seconds between looks at the AP's station list while CONFIGURING


@dataclass
class AgentConfig:
    template_id: str
    template_name: str
    vendor: str = "Blynk"  # the hotspot prefix
    firmware_version: str = "0.1.0"
    firmware_type: str = ""  # default: the template id
    board: str = "Linux"
    host: str = ""  # used when /config leaves host empty; "": /config must name it
    port: int = 80
    port_ssl: int | None = 443
    ca_file: str | None = None
    heartbeat: int = 40
    allow_host_reboot: bool = False
    ap_passphrase: str | None = None  # WPA2 on the AP (8-63 ASCII); None: an open AP, as Edgent's
    captive: bool = True  # the AP's DNS answers every name with the portal (Edgent does too)
    machine: sm.Settings = field(default_factory=sm.Settings)
    ble_code: str | None = (
        None  # BLE: the label's out-of-band code, required in ``set`` (docs/ble.md)
    )
    # The cloud link: "blynk" (the Blynk protocol on port / port_ssl) or "mqtt" (Blynk's MQTT
    # API on mqtt_port, or TLS on mqtt_port_ssl when the configuration asks for TLS).
    link: str = "blynk"
    mqtt_port: int = 1883
    mqtt_port_ssl: int | None = 8883

    def __post_init__(self) -> None:
        if not self.template_id.startswith("TMPL"):
            raise ValueError(f"template id '{self.template_id}' must start with TMPL")
        if not self.template_name.strip():
            raise ValueError("the template name must not be empty")
        self.firmware_type = self.firmware_type or self.template_id
        if self.ble_code is not None and not (4 <= len(self.ble_code) <= 32):
            raise ValueError("the BLE code must be 4 to 32 characters")
        if self.link not in ("blynk", "mqtt"):
            raise ValueError(f"the link must be blynk or mqtt, not {self.link!r}")
        passphrase = self.ap_passphrase
        if passphrase is not None and not (8 <= len(passphrase) <= 63 and passphrase.isascii()):
            raise ValueError("the AP passphrase must be 8 to 63 ASCII characters")


class BleTransport(Protocol):
    """The agent's Bluetooth LE side (``device/ble.py``: BlueZ, or the sim's): started once per
    run, advertising exactly while the SoftAP is open."""

    async def start(self, agent: Agent) -> None: ...
    async def advertise(self, on: bool) -> None: ...
    async def close(self) -> None: ...


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        radio: Radio,
        store: ConfigStore,
        *,
        panel: Panel | None = None,
        clock: Callable[[], float] = time.monotonic,
        ble: BleTransport | None = None,
    ) -> None:
        self.config = config
        self.ble = ble
        self.session = Session(self, clock)
        self.on_state: list[Callable[[State], None]] = []  # called at every state change
        self.radio = radio
        self.store = store
        self.panel = panel
        self.clock = clock
        self.portal = Portal(self._http)
        self.machine = Machine(replace(config.machine, ap_and_station=radio.ap_and_station))
        self.last_error = 0
        self.ap_name = naming.ap_name(
            config.vendor,
            config.template_name,
            naming.chip_code(naming.mac_chip_id(radio.station_mac)),
        )
        # Edgent's Device UID: random, kept beside the store (an erase keeps it).
        self.uid = load_or_create_uid(store.path.with_name(store.path.name + ".uid"))
        self._meta_sent = False  # Edgent sends its meta once per boot, at the first login
        self._started = clock()
        self._console_tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps weak refs
        self.portal_address: tuple[str, int] | None = None
        self.portal_url = "http://192.168.4.1/"
        self.link: CloudLink | MqttLink | None = None
        self._write_handlers: dict[int, Callable[[int, list[str]], Any]] = {}
        self.on_connected: list[Callable[[], Any]] = []
        self.on_disconnected: list[Callable[[], Any]] = []
        self._scan: list[edgent.ScanEntry] = []
        self._effects: asyncio.Queue[sm.Action] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._net_task: asyncio.Task[None] | None = None
        self._cloud_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._restart = False
        self._supervised: dict[str, asyncio.Task[None]] = {}
        self.failure: Exception | None = None  # why the agent stopped on its own, if it did
        self._working = StoredConfig()
        self._reopen_task: asyncio.Task[None] | None = None  # held: the loop keeps weak refs
        self.store_problem: str | None = None  # why the store cannot be written, if it cannot
        self.ready = asyncio.Event()  # set once the first state after boot is entered
        self._state_changed = asyncio.Event()  # set (and replaced) at every state change

    # --- the user's API ---
    def on_write(self, pin: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@agent.on_write(1) def f(pin, values): ...`` for cloud writes to V1."""

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self._write_handlers[pin] = func
            return func

        return register

    def virtual_write(self, pin: int, *values: str | int | float) -> None:
        if self.link is not None and self.machine.state is State.RUNNING:
            self.link.virtual_write(pin, *values)

    @property
    def state(self) -> State:
        return self.machine.state

    # --- running ---
    async def run(self) -> None:
        """Run until ``stop()``; ``/reboot`` restarts the agent (re-reading its store)."""
        self.radio.on_link_lost(lambda reason: self.dispatch(sm.LinkLost()))
        self.radio.on_ap_lost(self._on_ap_lost)
        panel_task = asyncio.create_task(self.panel.run()) if self.panel else None
        await self._start_ble()
        try:
            while True:
                self._restart = False
                effects = self._supervise("effects", self._run_effects)
                watcher = self._supervise("client watcher", self._watch_clients)
                self._boot()
                await self._stopped.wait()
                watcher.cancel()
                await self._shutdown(effects)
                if not self._restart:
                    break
                log.info("restarting the agent")
                self._stopped.clear()
                self.machine = Machine(self.machine.settings)
        finally:
            if panel_task is not None:
                panel_task.cancel()
            if self.ble is not None:
                await self.ble.close()
        if self.failure is not None:
            raise self.failure

    async def _start_ble(self) -> None:
        """Start the BLE side; a device whose Bluetooth cannot start keeps its SoftAP and says
        why (no adapter, bluetoothd not running)."""
        if self.ble is None:
            return
        try:
            await self.ble.start(self)
        except Exception as exc:
            log.warning("Bluetooth LE provisioning is off: %s", exc)
            self.ble = None

    def reset_from_button(self) -> None:
        self.dispatch(sm.ResetConfig("button held 10 s"))

    def stop(self) -> None:
        self._stopped.set()

    def restart(self) -> None:
        self._meta_sent = False  # a restart stands for a reboot
        self._restart = True
        self._stopped.set()

    def _supervise(self, name: str, run: Callable[[], Any]) -> asyncio.Task[None]:
        """Run a task that must not end on its own: if it dies, log why and start it again."""
        task: asyncio.Task[None] = asyncio.create_task(run())

        def done(finished: asyncio.Task[None]) -> None:
            if finished.cancelled():
                return
            exc = finished.exception()
            if self._stopped.is_set():
                return
            log.error(
                "the %s task died (%s): restarting it in %.0f s",
                name,
                exc or "it returned",
                SUPERVISOR_DELAY,
            )
            asyncio.get_running_loop().call_later(SUPERVISOR_DELAY, restart)

        def restart() -> None:
            if not self._stopped.is_set():
                self._supervise(name, run)

        task.add_done_callback(done)
        self._supervised[name] = task
        return task

    def _boot(self) -> None:
        loaded = self.store.load()
        self.store_problem = self.store.check_writable()
        if self.store_problem:
            log.error(
                "the configuration store is unusable (%s): /config is refused until that is "
                "fixed (check the --store path, its directory and the file system)",
                self.store_problem,
            )
        if loaded.problem:
            log.warning("stored configuration unusable, starting unconfigured: %s", loaded.problem)
        stored = loaded.config
        self.last_error = stored.last_error
        configured = stored.is_configured
        candidate = stored.candidate
        self.machine.stored = stored if configured else None
        self._working = stored if configured else StoredConfig()  # last config that logged in
        log.info(
            "boot: %s%s; device name '%s'",
            "configured" if configured else "not configured",
            "; trying first the saved configuration that has not logged in yet"
            if candidate is not None
            else "",
            self.ap_name,
        )
        self.dispatch(sm.Boot(configured=configured, candidate=candidate))

    async def _shutdown(self, effects: asyncio.Task[None]) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        effects.cancel()
        await self._disconnect()
        await self.portal.close()
        await self.radio.stop_ap()

    # --- events in, actions out ---
    def dispatch(self, event: sm.Event) -> None:
        before = self.machine.state
        for action in self.machine.handle(event):
            if isinstance(action, sm.Log):
                log.info("%s", action.line)
            elif isinstance(action, sm.StartTimer):
                self._start_timer(action.name, action.seconds)
            elif isinstance(action, sm.CancelTimer):
                handle = self._timers.pop(action.name, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, sm.RecordError):
                self.last_error = action.code
                self._effects.put_nowait(action)
            else:
                self._effects.put_nowait(action)
        if self.panel is not None:
            self.panel.show(self.machine.state.value)
        if self.machine.state is not before:
            self._state_changed.set()
            self._state_changed = asyncio.Event()
            if self.machine.state is State.RUNNING:
                self.session.holder = None  # provisioned: nobody holds the session any more
            for observer in list(self.on_state):
                observer(self.machine.state)
        self.ready.set()

    def _start_timer(self, name: str, seconds: float) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(seconds, self._fire, name)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self.dispatch(sm.TimerFired(name))

    async def _run_effects(self) -> None:
        while True:
            action = await self._effects.get()
            try:
                await self._perform(action)
            except Exception:
                log.exception("carrying out %s failed", type(action).__name__)

    async def _watch_clients(self) -> None:
        """While a provisioner is talking to us (CONFIGURING), notice when the last station
        leaves the AP (Edgent: ``WiFi.softAPgetStationNum() == 0``)."""
        seen = 0
        while True:
            await asyncio.sleep(CLIENT_POLL)
            if self.machine.state is not State.CONFIGURING:
                seen = 0
                continue
            clients = (await self.radio.status()).ap_clients
            if seen and not clients and self.machine.state is State.CONFIGURING:
                log.info("the last station left the access point")
                self.dispatch(sm.ClientsLeft())
            seen = clients

    async def _perform(self, action: sm.Action) -> None:
        if isinstance(action, sm.StartAp):
            await self._start_ap()
            await self._advertise(True)
        elif isinstance(action, sm.StopAp):
            await self.portal.close()
            await self.radio.stop_ap()
            log.info("access point closed")
            await self._advertise(False)
        elif isinstance(action, sm.ConnectNet):
            attempt = action.attempt
            self._net_task = self._attempt_task(
                "join",
                self._join(action.config, attempt),
                lambda: sm.NetFailed(E.NETWORK_OTHER, attempt),
            )
        elif isinstance(action, sm.ConnectCloud):
            attempt = action.attempt
            self._cloud_task = self._attempt_task(
                "cloud",
                self._cloud(action.config, attempt),
                lambda: (
                    sm.CloudLost(attempt)
                    if self.machine.state is State.RUNNING
                    else sm.CloudFailed(E.CLOUD_OTHER, attempt)
                ),
            )
        elif isinstance(action, sm.Disconnect):
            await self._disconnect()
        elif isinstance(action, sm.DropCloud):
            await self._drop_cloud()
        elif isinstance(action, sm.Commit):
            # Not the store: with save=1 it already holds the new config, not the working one.
            networks = saved_networks(action.config.networks, self._working)
            committed = replace(
                action.config,
                networks=networks,
                last_error=0,
                flags=Flags(valid=True),
                candidate=None,
            )
            self.store.save(committed)
            self._working = committed
            # The machine keeps the config opaque; later retries fail over across all networks.
            if self.machine.stored is action.config:
                self.machine.stored = committed
            log.info("configuration saved (it logged in to the cloud)")
        elif isinstance(action, sm.DiscardCandidate):
            current = self.store.load().config
            if current.candidate is not None:
                self.store.save(replace(current, candidate=None))
            log.info("the saved configuration that never logged in is forgotten")
        elif isinstance(action, sm.RecordError):
            current = self.store.load().config
            if current.last_error != action.code:
                self.store.save(replace(current, last_error=action.code))
        elif isinstance(action, sm.EraseConfig):
            self.store.erase()
            self._working = StoredConfig()
            log.info("configuration erased")

    def _attempt_task(
        self, name: str, work: Any, on_death: Callable[[], sm.Event]
    ) -> asyncio.Task[None]:
        """A join or a cloud session. If it dies of an unexpected error, log why and tell the
        machine (as a failure of that attempt), so the device retries instead of hanging."""
        task: asyncio.Task[None] = asyncio.create_task(work)

        def done(finished: asyncio.Task[None]) -> None:
            if finished.cancelled() or finished.exception() is None:
                return
            event = on_death()
            log.error(
                "the %s task died (%r): treating it as %s",
                name,
                finished.exception(),
                sm.describe(event),
            )
            self.dispatch(event)

        task.add_done_callback(done)
        return task

    def _on_ap_lost(self, reason: str) -> None:
        log.warning("the access point went down (%s): reopening it", reason)
        self._reopen_task = asyncio.get_running_loop().create_task(self._reopen_ap())

    async def _reopen_ap(self) -> None:
        """Give the radio a moment (NetworkManager restarting), then reopen the AP if the
        machine still wants it; if that fails, ``_start_ap`` stops the agent with the reason
        and the service manager restarts it."""
        await asyncio.sleep(AP_REOPEN_DELAY)
        if self.machine.ctx.ap_up and not self._stopped.is_set():
            self._effects.put_nowait(sm.StartAp())

    async def _start_ap(self) -> None:
        if self.portal.serving and (await self.radio.status()).ap_up:
            return  # already open: a reopening raced the machine's own StartAp
        await self.portal.close()  # reopening: the old listener goes first
        try:
            self._scan = await self.radio.scan()  # before the AP: some radios cannot scan then
            info = await self.radio.start_ap(
                self.ap_name, self.config.ap_passphrase, captive=self.config.captive
            )
            host, port = await self.portal.start(*info.portal_bind)
        except Exception as exc:
            # A device that cannot open its AP and portal cannot be provisioned: say why and
            # stop (exit 1); the service manager starts it again (NetworkManager restarting,
            # port 80 freed ...). The message names the cause; it never holds a secret.
            log.error("cannot open the access point and its portal: %s", exc)
            try:
                await self.radio.stop_ap()
            except Exception:
                log.debug("closing the access point failed too", exc_info=True)
            self.failure = exc  # run() re-raises it, so `wifiprov device` exits 1 with it
            self.stop()
            return
        self.portal_address = (host, port)
        self.portal_url = (
            f"http://{info.address}/" if info.portal_bind[1] == 80 else f"http://{host}:{port}/"
        )
        await self.radio.publish_portal(host, port)
        log.info("access point '%s' open; portal on %s:%d", info.ssid, host, port)

    async def _advertise(self, on: bool) -> None:
        if self.ble is not None and not self._stopped.is_set():
            try:
                await self.ble.advertise(on)
            except Exception as exc:  # the SoftAP still works: say why BLE does not
                log.warning("cannot %s Bluetooth advertising: %s", "start" if on else "stop", exc)

    async def _disconnect(self) -> None:
        if self._net_task is not None and not self._net_task.done():
            self._net_task.cancel()
        self._net_task = None
        await self._drop_cloud()
        await self.radio.disconnect()

    async def _drop_cloud(self) -> None:
        if self._cloud_task is not None and not self._cloud_task.done():
            self._cloud_task.cancel()
        self._cloud_task = None
        if self.link is not None:
            await self.link.close()
            self.link = None

    async def _join(self, config: StoredConfig, attempt: int) -> None:
        """Join the first saved network that answers, in priority order (the newest first). A
        failure reports the preferred network's reason: that is the one the user just gave."""
        first_failure: ConnectError | None = None
        # The machine allows net_timeout per network; with one network its timer should win,
        # so the radio gets a second more.
        timeout = self.machine.settings.net_timeout + (1 if len(config.networks) == 1 else 0)
        for index, network in enumerate(config.networks):
            # The static address belongs to the network it came with (the first); networks kept
            # from an earlier configuration use DHCP.
            static = radio_static(config.static_ip) if index == 0 else None
            name = "Ethernet" if network.wired else network.ssid.decode("utf-8", "replace")
            log.info("joining %r%s", name, f" with address {static.ip}" if static else "")
            try:
                if network.wired:
                    joined = await self.radio.connect_wired(static=static, timeout=timeout)
                else:
                    joined = await self.radio.connect(
                        network.ssid,
                        network.password,
                        identity=network.identity,
                        eap=network.eap,
                        hidden=network.hidden,
                        timeout=timeout,
                        static=static,
                    )
            except ConnectError as exc:
                log.info("could not join %r: %s (%s)", name, explain(int(exc.code)).what, exc)
                first_failure = first_failure or exc
                continue
            log.info("joined %r with address %s", name, joined.ip)
            self.dispatch(sm.NetUp(attempt))
            return
        code = first_failure.code if first_failure else E.NETWORK_NOT_FOUND
        self.dispatch(sm.NetFailed(int(code), attempt))

    async def _cloud(self, config: StoredConfig, attempt: int) -> None:
        c = self.config
        port, port_ssl = config.port, config.port_ssl
        if c.link == "mqtt":  # the configuration's ports are the Blynk protocol's
            port, port_ssl = c.mqtt_port, c.mqtt_port_ssl if config.port_ssl else None
        settings = LinkSettings(
            token=config.token,
            host=config.host or c.host,
            port=port,
            port_ssl=port_ssl,
            ca_file=c.ca_file,
            heartbeat=c.heartbeat,
            meta={} if self._meta_sent else edgent_meta(self.uid, self.ap_name),
            info={
                "mcu": c.firmware_version,
                "fw-type": c.firmware_type,
                "build": f"wifiprov {__version__}",
                "blynk": __version__,
                "dev": c.board,
                "tmpl": c.template_id,
            },
        )
        where = f"{settings.host}:{settings.port_ssl or settings.port}"
        log.info("connecting to the cloud at %s (token %s)", where, mask(config.token))
        link_class: type[CloudLink | MqttLink] = CloudLink
        if c.link == "mqtt":
            from wifiprov.device.mqtt_link import MqttLink

            link_class = MqttLink
        link = link_class(
            settings,
            LinkCallbacks(
                on_write=self._on_write, on_console=lambda line: self._on_console(link, line)
            ),
        )
        self.link = link
        try:
            await link.open(timeout=self.machine.settings.cloud_timeout + 1)
        except LinkError as exc:
            log.info("cloud connection failed: %s", exc)
            self.dispatch(
                sm.TokenRejected(attempt)
                if exc.code == E.TOKEN_REJECTED
                else sm.CloudFailed(exc.code, attempt)
            )
            return
        self._meta_sent = True
        log.info("logged in to the cloud (%.0f ms)", link.ping_ms or 0)
        self.dispatch(sm.CloudUp(attempt))
        for callback in self.on_connected:
            callback()
        reason = await link.run()
        log.info("cloud connection lost: %s", reason)
        for callback in self.on_disconnected:
            callback()
        if self.link is link:
            self.dispatch(sm.CloudLost(attempt))

    def _on_write(self, pin: int, values: list[str]) -> None:
        handler = self._write_handlers.get(pin)
        if handler is not None:
            handler(pin, values)

    def _on_console(self, link: CloudLink | MqttLink, line: str) -> None:
        """A command from the cloud's console (INTERNAL ``dbg``): answered over the link it
        came on, then carried out (Edgent prints before it acts)."""
        log.info("console command from the cloud: %s", console.split(line)[:1] or ["(empty)"])
        task = asyncio.get_running_loop().create_task(self._console(link, line))
        self._console_tasks.add(task)
        task.add_done_callback(self._console_tasks.discard)

    async def _console(self, link: CloudLink | MqttLink, line: str) -> None:
        facts = await self._facts()
        reply = console.handle(line, facts)
        if reply.text:
            link.send_console_reply(reply.text)
        action = reply.action
        if isinstance(action, console.Reboot):
            self.restart()
        elif isinstance(action, console.ConfigStart):
            self.dispatch(sm.ConfigStart())
        elif isinstance(action, console.ConfigStop):
            self.dispatch(sm.ConfigStop())
        elif isinstance(action, console.ConfigErase):
            self.dispatch(sm.ResetConfig("cloud console: config erase"))
        elif isinstance(action, console.Scan):
            link.send_console_reply(console.format_scan(await self.radio.scan(), facts.ssid))
        elif isinstance(action, console.Connect):
            self._console_connect(action)

    def _console_connect(self, action: console.Connect) -> None:
        """``connect <auth> <ssid> [pass]``: a fresh configuration on the cloud this command
        came from (kept only once it logs in; on failure the device opens its AP)."""
        working = self._working
        pending = StoredConfig(
            networks=(Network(ssid=action.ssid.encode(), password=action.password),),
            token=action.token,
            host=working.host or self.config.host,
            port=working.port,
            port_ssl=working.port_ssl,
        )
        log.info("console connect: network %r, token %s", action.ssid, mask(action.token))
        self.dispatch(sm.ConfigReceived(pending, remote=True))

    async def _facts(self) -> console.DeviceFacts:
        c = self.config
        station = (await self.radio.status()).station
        return console.DeviceFacts(
            name=self.ap_name,
            template_name=c.template_name,
            template_id=c.template_id,
            fw_type=c.firmware_type,
            fw_version=c.firmware_version,
            build=f"wifiprov {__version__}",
            platform=c.board,
            sdk=f"wifiprov {__version__}, Python {platform.python_version()}",
            uid=self.uid,
            station_mac=self.radio.station_mac,
            ap_mac=self.radio.ap_mac,
            state=self.machine.state.value,
            ssid=station.ssid.decode("utf-8", "replace") if station else "",
            bssid=station.bssid if station else "",
            rssi=station.rssi if station else 0,
            ip=station.ip if station else "0.0.0.0",
            last_error=self.last_error,
            uptime=self.clock() - self._started,
        )

    # --- the portal (Edgent's SoftAP HTTP API) ---
    async def _http(self, method: str, path: str, query: bytes, host: str) -> Reply:
        """Every method is routed as Edgent's WebServer does (``HTTP_ANY``), except ``HEAD``:
        the headers a GET would get, with no side effect (the portal sends no body)."""
        head = method == "HEAD"
        if path in CAPTIVE_PROBES or host not in self._own_names():
            # An OS checking for internet access, or a page of another site: send it to the
            # setup page, which makes phones open their captive-portal sign-in sheet.
            return Reply(302, b"", content_type=HTML, headers=[("Location", self.portal_url)])
        route = ROUTES.get(path)
        if route is None:
            return Reply(404, b'{"status":"error","msg":"Not found"}')
        if head:
            if path in ACTIONS:  # a GET would act: say nothing more than its content type
                return Reply(200, b"")
            return await route(self, query, head=True)
        self.session.seen(PORTAL)
        self.dispatch(sm.PortalActivity())
        return await route(self, query, head=False)

    def _own_names(self) -> set[str]:
        names = {"", "192.168.4.1", "blynk.setup", "localhost"}
        if self.portal_address is not None:
            names.add(self.portal_address[0])
        return names

    async def _board_info(self, query: bytes, head: bool = False) -> Reply:
        if not head:
            self.dispatch(sm.BoardInfoRead())
        c = self.config
        info = edgent.BoardInfo(
            board=c.template_name,
            tmpl_id=c.template_id,
            fw_type=c.firmware_type,
            fw_ver=c.firmware_version,
            ssid=self.ap_name,
            bssid=self.radio.ap_mac,
            mac=self.radio.station_mac,
            last_error=self.last_error,
            vendor=c.vendor,
            uid=self.uid,
            eth_mac=self.radio.wired_mac,
            ap_sta=self.radio.ap_and_station,
            # One radio cannot scan while it serves the AP: the list is the one taken before.
            scan_cached=not self.radio.ap_and_station,
        )
        return Reply(200, edgent.board_info_json(info))

    async def _wifi_scan(self, query: bytes, head: bool = False) -> Reply:
        if not head and (self.radio.ap_and_station or not self._scan):
            self._scan = await self.radio.scan()
        return Reply(200, edgent.scan_json(self._scan))

    async def _configure(self, query: bytes, head: bool = False) -> Reply:
        """Take a configuration and try it. Refused (nothing changes) when it is invalid, when
        the device is not in provisioning mode (409), or when it could not be saved. While a
        fresh configuration is being tried, a new one replaces it and the attempt restarts.
        Everything from the checks to the dispatch runs without awaiting: it is atomic."""
        try:
            parsed = edgent.parse_config_query(query, self.session.defaults())
        except edgent.ConfigError as exc:
            log.info("rejected /config: %s", exc)
            return Reply(500, edgent.config_invalid(str(exc)))
        refused = self.session.configure(parsed, PORTAL)
        if refused is None:
            return Reply(200, edgent.config_ok(parsed.save))
        if refused.kind == "invalid":
            return Reply(500, edgent.config_invalid(refused.message))
        return Reply(500 if refused.kind == "store" else 409, error_body(refused.message))

    async def _reset(self, query: bytes, head: bool = False) -> Reply:
        busy = self.session.claim(PORTAL)
        if busy is not None:
            return Reply(409, error_body(busy))
        self.dispatch(sm.ResetConfig("portal /reset"))
        return Reply(200, edgent.CONFIGURATION_RESET)

    async def _reboot(self, query: bytes, head: bool = False) -> Reply:
        """Edgent reboots the board; we restart the agent, or the host only when allowed."""
        if self.config.allow_host_reboot:
            return Reply(200, b"", after=self._reboot_host)
        return Reply(200, b"", after=self.restart)

    def _reboot_host(self) -> None:
        log.info("rebooting the host (allow_host_reboot is set)")
        try:
            subprocess.Popen(["systemctl", "reboot"], stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.warning("cannot reboot the host (%s): restarting the agent instead", exc)
            self.restart()

    async def _status(self, query: bytes, head: bool = False) -> Reply:
        """Extension: the live state. ``?state=S&wait=N`` long-polls: it answers as soon as the
        state is no longer S (or after N seconds, at most 30)."""
        params = parse_qs(query.decode("ascii", "replace"))
        seen = "" if head else params.get("state", [""])[0]
        try:
            wait = min(30.0, max(0.0, float(params.get("wait", ["0"])[0])))
        except ValueError:
            wait = 0.0
        if seen == self.machine.state.value and wait > 0:
            try:
                await asyncio.wait_for(self._state_changed.wait(), wait)
            except TimeoutError:
                pass
        what = explain(self.last_error)
        body = {
            "state": self.machine.state.value,
            "last_error": self.last_error,
            "last_error_text": what.what if self.last_error else "",
            "todo": what.todo if self.last_error else "",
            "attempt": self.machine.ctx.attempt,
            "ap_sta": self.radio.ap_and_station,
            "store_problem": self.store_problem or "",
        }
        return Reply(200, json.dumps(body).encode())

    async def _setup(self, query: bytes, head: bool = False) -> Reply:
        page = setup_page(self.ap_name, self._scan, query, self.config.host, self.config.port)
        return Reply(200, page, content_type=HTML)


# The paths operating systems fetch to detect a captive portal (Android, Apple, Windows, Firefox,
# NetworkManager/GNOME). Answering them with a redirect makes each show its sign-in sheet.
CAPTIVE_PROBES = frozenset(
    {
        "/generate_204",
        "/gen_204",
        "/hotspot-detect.html",
        "/library/test/success.html",
        "/connecttest.txt",
        "/ncsi.txt",
        "/redirect",
        "/canonical.html",
        "/success.txt",
        "/check_network_status.txt",
    }
)

ROUTES: dict[str, Callable[..., Any]] = {
    "/board_info.json": Agent._board_info,
    "/wifi_scan.json": Agent._wifi_scan,
    "/config": Agent._configure,
    "/reset": Agent._reset,
    "/reboot": Agent._reboot,
    "/status.json": Agent._status,
    "/": Agent._setup,
}


# Routes whose GET acts (a HEAD on them does nothing).
ACTIONS = frozenset({"/config", "/reset", "/reboot"})

MAX_NETWORKS = 5  # saved networks the device fails over between


def saved_networks(new: tuple[Network, ...], previous: StoredConfig) -> tuple[Network, ...]:
    """The networks to keep after ``new`` logged in: ``new`` first, then the networks of the
    previous working configuration (a device moved to a new router still knows the old one),
    without repeats, at most ``MAX_NETWORKS``."""
    kept = list(new)
    if previous.is_configured:
        ssids = {n.ssid for n in new}
        kept += [n for n in previous.networks if n.ssid not in ssids]
    return tuple(kept[:MAX_NETWORKS])


def error_body(message: str) -> bytes:
    """Edgent's error shape, ``{"status":"error","msg":...}``, with our message."""
    return json.dumps({"status": "error", "msg": message}).encode()


def radio_static(static: StaticIp | None) -> radio_base.StaticIp | None:
    if static is None:
        return None
    return radio_base.StaticIp(
        static.ip, static.mask, static.gw, static.dns or None, static.dns2 or None
    )


def load_store(path: Path) -> ConfigStore:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return ConfigStore(path)
