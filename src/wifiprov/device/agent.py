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
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from wifiprov import __version__
from wifiprov.device import machine as sm
from wifiprov.device.link import CloudLink, LinkCallbacks, LinkError, LinkSettings
from wifiprov.device.machine import Machine, State
from wifiprov.device.panel import Panel
from wifiprov.device.portal import HTML, Portal, Reply
from wifiprov.device.radio.base import ConnectError, Radio
from wifiprov.device.setup_page import setup_page
from wifiprov.device.store import ConfigStore, Flags, Network, StaticIp, StoredConfig
from wifiprov.wire import edgent, naming
from wifiprov.wire.errors import ProvisioningError as E
from wifiprov.wire.errors import explain

log = logging.getLogger("wifiprov.device")

AP_REOPEN_DELAY = 2.0  # seconds after the AP went down on its own before reopening it


@dataclass
class AgentConfig:
    template_id: str
    template_name: str
    vendor: str = "Blynk"  # the hotspot prefix
    firmware_version: str = "0.1.0"
    firmware_type: str = ""  # default: the template id
    board: str = "Linux"
    host: str = "blynk.cloud"  # used when /config leaves host empty
    port: int = 80
    port_ssl: int | None = 443
    ca_file: str | None = None
    heartbeat: int = 40
    allow_host_reboot: bool = False
    ap_passphrase: str | None = None  # WPA2 on the AP (8-63 ASCII); None: an open AP, as Edgent's
    captive: bool = True  # the AP's DNS answers every name with the portal (Edgent does too)
    machine: sm.Settings = field(default_factory=sm.Settings)

    def __post_init__(self) -> None:
        if not self.template_id.startswith("TMPL"):
            raise ValueError(f"template id '{self.template_id}' must start with TMPL")
        if not self.template_name.strip():
            raise ValueError("the template name must not be empty")
        self.firmware_type = self.firmware_type or self.template_id
        passphrase = self.ap_passphrase
        if passphrase is not None and not (8 <= len(passphrase) <= 63 and passphrase.isascii()):
            raise ValueError("the AP passphrase must be 8 to 63 ASCII characters")


def mask(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) > 8 else "****"


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        radio: Radio,
        store: ConfigStore,
        *,
        panel: Panel | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
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
        self.portal_address: tuple[str, int] | None = None
        self.portal_url = "http://192.168.4.1/"
        self.link: CloudLink | None = None
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
        self.failure: Exception | None = None  # why the agent stopped on its own, if it did
        self._working = StoredConfig()
        self._reopen_task: asyncio.Task[None] | None = None  # held: the loop keeps weak refs
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
        try:
            while True:
                self._restart = False
                effects = asyncio.create_task(self._run_effects())
                self._boot()
                await self._stopped.wait()
                await self._shutdown(effects)
                if not self._restart:
                    break
                log.info("restarting the agent")
                self._stopped.clear()
                self.machine = Machine(self.machine.settings)
        finally:
            if panel_task is not None:
                panel_task.cancel()
        if self.failure is not None:
            raise self.failure

    def reset_from_button(self) -> None:
        self.dispatch(sm.ResetConfig("button held 10 s"))

    def stop(self) -> None:
        self._stopped.set()

    def restart(self) -> None:
        self._restart = True
        self._stopped.set()

    def _boot(self) -> None:
        loaded = self.store.load()
        if loaded.problem:
            log.warning("stored configuration unusable, starting unconfigured: %s", loaded.problem)
        stored = loaded.config
        self.last_error = stored.last_error
        configured = stored.is_configured
        self.machine.stored = stored if configured else None
        self._working = stored if configured else StoredConfig()  # last config that logged in
        log.info(
            "boot: %s; device name '%s'",
            "configured" if configured else "not configured",
            self.ap_name,
        )
        self.dispatch(sm.Boot(configured=configured))

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

    async def _perform(self, action: sm.Action) -> None:
        if isinstance(action, sm.StartAp):
            await self._start_ap()
        elif isinstance(action, sm.StopAp):
            await self.portal.close()
            await self.radio.stop_ap()
            log.info("access point closed")
        elif isinstance(action, sm.ConnectNet):
            self._net_task = asyncio.create_task(self._join(action.config))
        elif isinstance(action, sm.ConnectCloud):
            self._cloud_task = asyncio.create_task(self._cloud(action.config))
        elif isinstance(action, sm.Disconnect):
            await self._disconnect()
        elif isinstance(action, sm.Commit):
            # Not the store: with save=1 it already holds the new config, not the working one.
            networks = saved_networks(action.config.networks, self._working)
            committed = replace(
                action.config, networks=networks, last_error=0, flags=Flags(valid=True)
            )
            self.store.save(committed)
            self._working = committed
            # The machine keeps the config opaque; later retries fail over across all networks.
            if self.machine.stored is action.config:
                self.machine.stored = committed
            log.info("configuration saved (it logged in to the cloud)")
        elif isinstance(action, sm.RecordError):
            current = self.store.load().config
            if current.last_error != action.code:
                self.store.save(replace(current, last_error=action.code))
        elif isinstance(action, sm.EraseConfig):
            self.store.erase()
            self._working = StoredConfig()
            log.info("configuration erased")

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

    async def _disconnect(self) -> None:
        for task in (self._net_task, self._cloud_task):
            if task is not None and not task.done():
                task.cancel()
        self._net_task = self._cloud_task = None
        if self.link is not None:
            await self.link.close()
            self.link = None
        await self.radio.disconnect()

    async def _join(self, config: StoredConfig) -> None:
        """Join the first saved network that answers, in priority order (the newest first). A
        failure reports the preferred network's reason: that is the one the user just gave."""
        first_failure: ConnectError | None = None
        # The machine allows net_timeout per network; with one network its timer should win,
        # so the radio gets a second more.
        timeout = self.machine.settings.net_timeout + (1 if len(config.networks) == 1 else 0)
        for network in config.networks:
            name = network.ssid.decode("utf-8", "replace")
            log.info("joining network %r", name)
            try:
                joined = await self.radio.connect(
                    network.ssid,
                    network.password,
                    identity=network.identity,
                    eap=network.eap,
                    hidden=network.hidden,
                    timeout=timeout,
                )
            except ConnectError as exc:
                log.info("could not join %r: %s", name, explain(int(exc.code)).what)
                first_failure = first_failure or exc
                continue
            log.info("joined %r with address %s", name, joined.ip)
            self.dispatch(sm.NetUp())
            return
        code = first_failure.code if first_failure else E.NETWORK_NOT_FOUND
        self.dispatch(sm.NetFailed(int(code)))

    async def _cloud(self, config: StoredConfig) -> None:
        c = self.config
        settings = LinkSettings(
            token=config.token,
            host=config.host or c.host,
            port=config.port,
            port_ssl=config.port_ssl,
            ca_file=c.ca_file,
            heartbeat=c.heartbeat,
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
        link = CloudLink(
            settings, LinkCallbacks(on_write=self._on_write, on_console=self._on_console)
        )
        self.link = link
        try:
            await link.open(timeout=self.machine.settings.cloud_timeout + 1)
        except LinkError as exc:
            log.info("cloud connection failed: %s", exc)
            self.dispatch(
                sm.TokenRejected() if exc.code == E.TOKEN_REJECTED else sm.CloudFailed(exc.code)
            )
            return
        log.info("logged in to the cloud (%.0f ms)", link.ping_ms or 0)
        self.dispatch(sm.CloudUp())
        for callback in self.on_connected:
            callback()
        reason = await link.run()
        log.info("cloud connection lost: %s", reason)
        for callback in self.on_disconnected:
            callback()
        if self.link is link:
            self.dispatch(sm.CloudLost())

    def _on_write(self, pin: int, values: list[str]) -> None:
        handler = self._write_handlers.get(pin)
        if handler is not None:
            handler(pin, values)

    def _on_console(self, command: str) -> None:
        log.info("console command from the cloud: %s", command)
        if command == "config start":
            self.dispatch(sm.ConfigStart())
        elif command == "config erase":
            self.dispatch(sm.ResetConfig("cloud console: config erase"))
        elif command == "reboot":
            self.restart()

    # --- the portal (Edgent's SoftAP HTTP API) ---
    async def _http(self, method: str, path: str, query: bytes, host: str) -> Reply:
        if path in CAPTIVE_PROBES or host not in self._own_names():
            # An OS checking for internet access, or a page of another site: send it to the
            # setup page, which makes phones open their captive-portal sign-in sheet.
            return Reply(302, b"", content_type=HTML, headers=[("Location", self.portal_url)])
        route = ROUTES.get(path)
        if route is None:
            return Reply(404, b'{"status":"error","msg":"Not found"}')
        return await route(self, query)

    def _own_names(self) -> set[str]:
        names = {"", "192.168.4.1", "blynk.setup", "localhost"}
        if self.portal_address is not None:
            names.add(self.portal_address[0])
        return names

    async def _board_info(self, query: bytes) -> Reply:
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
            ap_sta=self.radio.ap_and_station,
            # One radio cannot scan while it serves the AP: the list is the one taken before.
            scan_cached=not self.radio.ap_and_station,
        )
        return Reply(200, edgent.board_info_json(info))

    async def _wifi_scan(self, query: bytes) -> Reply:
        if self.radio.ap_and_station or not self._scan:
            self._scan = await self.radio.scan()
        return Reply(200, edgent.scan_json(self._scan))

    async def _configure(self, query: bytes) -> Reply:
        c = self.config
        try:
            parsed = edgent.parse_config_query(
                query, edgent.ConfigDefaults(host=c.host, port=c.port, port_ssl=c.port_ssl)
            )
            security = next((e.security for e in self._scan if e.ssid == parsed.ssid), None)
            edgent.check_password(parsed.password, security or ("WPA2-EAP" if parsed.eap else None))
        except edgent.ConfigError as exc:
            log.info("rejected /config: %s", exc)
            return Reply(500, edgent.config_invalid(str(exc)))
        if parsed.interface != "wifi":
            return Reply(500, edgent.config_invalid(f"if: '{parsed.interface}' is not available"))
        if self.machine.state not in (State.WAIT_CONFIG, State.CONFIGURING, State.CONNECTING_NET):
            return Reply(409, edgent.config_invalid("the device is not in provisioning mode"))
        pending = stored_config(parsed)
        if security is None:  # not in the last scan: a hidden network, joined by probing its name
            pending = replace(pending, networks=(replace(pending.networks[0], hidden=True),))
        log.info(
            "configuration received: network %r, token %s, cloud %s",
            parsed.ssid.decode("utf-8", "replace"),
            mask(parsed.token),
            parsed.host,
        )
        if parsed.save:  # Edgent's save=1: keep it now, not only after the first login
            self.store.save(replace(pending, flags=Flags(valid=True)))
            self.machine.stored = pending
            self.machine.ctx.configured = True
        self.dispatch(sm.ConfigReceived(pending))
        return Reply(200, edgent.config_ok(parsed.save))

    async def _reset(self, query: bytes) -> Reply:
        self.dispatch(sm.ResetConfig("portal /reset"))
        return Reply(200, edgent.CONFIGURATION_RESET)

    async def _reboot(self, query: bytes) -> Reply:
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

    async def _status(self, query: bytes) -> Reply:
        """Extension: the live state. ``?state=S&wait=N`` long-polls: it answers as soon as the
        state is no longer S (or after N seconds, at most 30)."""
        params = parse_qs(query.decode("ascii", "replace"))
        seen = params.get("state", [""])[0]
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
        }
        return Reply(200, json.dumps(body).encode())

    async def _setup(self, query: bytes) -> Reply:
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

ROUTES: dict[str, Callable[[Agent, bytes], Any]] = {
    "/board_info.json": Agent._board_info,
    "/wifi_scan.json": Agent._wifi_scan,
    "/config": Agent._configure,
    "/reset": Agent._reset,
    "/reboot": Agent._reboot,
    "/status.json": Agent._status,
    "/": Agent._setup,
}


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


def stored_config(parsed: edgent.DeviceConfig) -> StoredConfig:
    static = None
    if parsed.static_ip:
        static = StaticIp(
            ip=parsed.ip or "",
            mask=parsed.mask or "",
            gw=parsed.gw or "",
            dns=parsed.dns or "",
            dns2=parsed.dns2 or "",
        )
    return StoredConfig(
        networks=(
            Network(
                ssid=parsed.ssid,
                password=parsed.password,
                identity=parsed.identity or "",
                eap=parsed.eap or "",
            ),
        ),
        token=parsed.token,
        host=parsed.host,
        port=parsed.port,
        port_ssl=parsed.port_ssl,
        static_ip=static,
    )


def load_store(path: Path) -> ConfigStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    return ConfigStore(path)
