"""Add device over Bluetooth LE from the console (Web Bluetooth), in real headless Chromium at
390x844 against a real `wifiprov cloud` process, with Chromium's own Bluetooth emulation (CDP
``BluetoothEmulation``: a simulated adapter and a peripheral with the Inject service, its RX and
TX characteristics; ``DeviceAccess`` answers the device chooser). The test plays the device from
the CDP events with wifiprov's message layer (``wire/inject.py``), answering as our agent does;
on ``connect`` with the right password it logs in to the real cloud's gateway with the token the
page sent over the emulated GATT, so the console's own long poll sees the claim and asks for the
device's name. One test runs our real agent instead (``AgentGatt``: the emulated peripheral as
``device/ble.py``'s GATT backend, the agent in this process on the sim radio and the real cloud).

What the emulation cannot express, and how it is covered instead:
- **Notifications.** Chromium's emulation (checked on Chromium 156: the protocol has no command
  that pushes a value, and its fake characteristic never notifies) answers subscribe, writes and
  reads, nothing else. So each message the device would notify on TX is delivered as the answer
  to a read of TX (the test calls ``readValue()`` on the page's own characteristic object, found
  through ``navigator.bluetooth.getDevices()``), which Chromium dispatches to the page as the
  same ``characteristicvaluechanged`` event a notification raises: the page's code path from the
  event on is the one a notification takes. For that read the emulated TX has ``read`` beside
  ``notify`` (our agent's TX has ``notify`` only). Real notifications from our agent through
  BlueZ are covered by ``tests/realradio/test_ble.py`` (bleak as the central).
- **The chooser.** Headless Chromium shows no chooser; ``DeviceAccess.deviceRequestPrompted``
  lists the devices and ``selectPrompt`` / ``cancelPrompt`` stand for the person's tap.
- **Bluetooth off.** ``powered-off`` still lets the emulated chooser list and connect the
  device; ``absent`` (no adapter) is what the test uses for "no Bluetooth".
- **MTU.** Web Bluetooth has no MTU, and the emulation none either: a message cut short by a
  small MTU is not reproduced here (the page drops a notification that is not one JSON object).
Chromium on Linux needs ``--enable-features=WebBluetooth`` for ``navigator.bluetooth`` (Chrome
on Android and other desktops has it on), and ``WebBluetoothNewPermissionsBackend`` for
``getDevices()``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.browser import axe
from tests.browser.conftest import Lab
from tests.browser.portal import PHONE, chromium
from tests.browser.test_console_pages import NO_SIDEWAYS, UNNAMED
from tests.e2e.test_provision_cli import HOME, HOME_PASSWORD, PASSWORD
from tests.integration.device_bench import quick_settings
from tests.integration.support import CPP_INFO, RawDevice, with_template
from wifiprov.device.agent import Agent, AgentConfig
from wifiprov.device.ble import BleProvisioning
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore
from wifiprov.wire import edgent, inject
from wifiprov.wire.blynk import Command
from wifiprov.wire.errors import ProvisioningError as E
from wifiprov.wire.errors import explain

WEB_BLUETOOTH = ["--enable-features=WebBluetooth,WebBluetoothNewPermissionsBackend"]
CCC = "00002902-0000-1000-8000-00805f9b34fb"  # the descriptor a notifying characteristic has
ADDRESS = "0A:0B:0C:0D:0E:01"
NEIGHBOUR = ("Neighbour", -71, "WPA2")

# Delivers one "notification": a read of TX on the page's own characteristic object (see above).
DELIVER = """async ([service, tx]) => {
  for (const device of await navigator.bluetooth.getDevices()) {
    if (!device.gatt.connected) continue;
    const c = await (await device.gatt.getPrimaryService(service)).getCharacteristic(tx);
    await c.readValue();
    return true;
  }
  return false;
}"""

SAID = """() => {
  const status = document.getElementById('ble-status');
  new MutationObserver(() => window.said(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


async def checked(page: Any) -> None:
    """The page fits its screen, names every control, and passes axe-core."""
    assert await page.evaluate(NO_SIDEWAYS), page.url
    assert await page.evaluate(UNNAMED) == [], page.url
    await axe.check(page)


class EmulatedDevice:
    """A device in setup mode on Chromium's emulated Bluetooth, answering like our agent.

    ``choose``: what the person does with the chooser: ``"select"`` this device, or
    ``"cancel"``. ``busy``: answer ``set`` with ``set_fail`` ``busy`` (another provisioner holds
    the session). ``drop``: end the GATT connection once joining the network. ``code``: the
    out-of-band code ``connect`` requires (docs/ble.md, ``--ble-code``). ``mtu_cut``: every
    message cut to that many bytes, as BlueZ cuts a notification to ATT_MTU - 3. ``gateway``: the
    cloud's gateway, where a right password makes it log in."""

    def __init__(
        self,
        browser_cdp: Any,
        page: Any,
        *,
        name: str,
        template_id: str,
        gateway: tuple[str, int],
    ) -> None:
        self.cdp, self.page = browser_cdp, page
        self.page_cdp: Any = None
        self.name, self.template_id, self.gateway = name, template_id, gateway
        self.choose = "select"
        self.busy = False
        self.drop = False
        self.code: str | None = None  # the out-of-band code on its label, when it needs one
        self.mtu_cut: int | None = None  # every message cut to this many bytes (a tiny MTU)
        self.password = HOME_PASSWORD
        self.written: list[dict[str, Any]] = []  # every request the page wrote, parsed
        self.write_types: list[str] = []
        self.prompts: list[list[dict[str, str]]] = []
        self.subscribed = False
        self.online: RawDevice | None = None
        self.pending = inject.Pending()
        self._answered: set[str] = set()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()  # notifications, in order
        self._reading: bytes | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.errors: list[str] = []
        self.console: list[str] = []  # the page's console, for a failure's message
        self.tx = ""

    async def start(self, state: str = "powered-on") -> None:
        cdp = self.cdp
        await cdp.send("BluetoothEmulation.enable", {"state": state, "leSupported": True})
        await cdp.send(
            "BluetoothEmulation.simulatePreconnectedPeripheral",
            {
                "address": ADDRESS,
                "name": self.name,
                "manufacturerData": [],
                "knownServiceUuids": [inject.SERVICE_UUID],
            },
        )
        service = await cdp.send(
            "BluetoothEmulation.addService",
            {"address": ADDRESS, "serviceUuid": inject.SERVICE_UUID},
        )
        await cdp.send(
            "BluetoothEmulation.addCharacteristic",
            {
                "serviceId": service["serviceId"],
                "characteristicUuid": inject.RX_UUID,
                "properties": {"write": True, "writeWithoutResponse": True},
            },
        )
        tx = await cdp.send(
            "BluetoothEmulation.addCharacteristic",
            {
                "serviceId": service["serviceId"],
                "characteristicUuid": inject.TX_UUID,
                "properties": {"notify": True, "read": True},  # read: see the module's text
            },
        )
        self.tx = tx["characteristicId"]
        await cdp.send(
            "BluetoothEmulation.addDescriptor",
            {"characteristicId": self.tx, "descriptorUuid": CCC},
        )
        cdp.on("BluetoothEmulation.gattOperationReceived", self._spawn(self._gatt))
        cdp.on("BluetoothEmulation.characteristicOperationReceived", self._spawn(self._char))
        self._tasks.add(asyncio.create_task(self._pump()))

    async def watch_chooser(self) -> None:
        """Answer the page's device chooser. Called once the page is loaded: a session opened
        before the page's navigations (another renderer process) gets no prompt events."""
        self.page_cdp = await self.page.context.new_cdp_session(self.page)
        self.page_cdp.on("DeviceAccess.deviceRequestPrompted", self._spawn(self._prompt))
        await self.page_cdp.send("DeviceAccess.enable")

    def _spawn(self, handler: Any) -> Any:
        def run(event: dict[str, Any]) -> None:
            task = asyncio.create_task(self._safely(handler, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return run

    async def _safely(self, handler: Any, event: dict[str, Any]) -> None:
        try:
            await handler(event)
        except Exception as exc:  # noqa: BLE001 - kept for the test's assertion
            self.errors.append(f"{handler.__name__}: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.online is not None:
            self.online.close()

    # --- the person at the chooser, the radio link ---------------------------------------

    async def _prompt(self, event: dict[str, Any]) -> None:
        # The prompt is raised again while the scan updates it: answer each one once.
        if not event["devices"] or event["id"] in self._answered:
            return
        self._answered.add(event["id"])
        self.prompts.append(event["devices"])
        if self.choose == "cancel":
            await self.page_cdp.send("DeviceAccess.cancelPrompt", {"id": event["id"]})
        else:
            await self.page_cdp.send(
                "DeviceAccess.selectPrompt", {"id": event["id"], "deviceId": ADDRESS}
            )

    async def _gatt(self, event: dict[str, Any]) -> None:
        await self.cdp.send(
            "BluetoothEmulation.simulateGATTOperationResponse",
            {"address": event["address"], "type": event["type"], "code": 0},
        )

    async def _char(self, event: dict[str, Any]) -> None:
        kind, char = event["type"], event["characteristicId"]
        answer: dict[str, Any] = {"characteristicId": char, "type": kind, "code": 0}
        if kind == "read":
            assert self._reading is not None, "the page read TX by itself"
            data = self._reading[: self.mtu_cut]  # None: the whole message
            answer["data"] = base64.b64encode(data).decode()
        await self.cdp.send("BluetoothEmulation.simulateCharacteristicOperationResponse", answer)
        if kind == "subscribe-to-notifications":
            self.subscribed = True
        elif kind == "write":
            self.write_types.append(event.get("writeType", ""))
            await self._request(base64.b64decode(event["data"]))

    async def _pump(self) -> None:
        """Delivers the device's messages one at a time (one read of TX each)."""
        while True:
            message = await self._outbox.get()
            self._reading = message
            try:
                args = [inject.SERVICE_UUID, inject.TX_UUID]
                delivered = await self.page.evaluate(DELIVER, args)
                # unless the page went on (the long poll saw the claim; leaving the page ends
                # its GATT connection), the page must have been connected to hear it
                if not delivered and self.page.url.endswith("/add-device"):
                    self.errors.append(f"no connected device to deliver {message} to")
            except Exception as exc:  # noqa: BLE001
                # the page went on to the next one (the long poll saw the claim) before the
                # last message: nothing is listening any more; anything else is a failure
                if "context was destroyed" not in str(exc):
                    self.errors.append(f"delivering {message}: {type(exc).__name__}: {exc}")
            finally:
                self._reading = None
                self._outbox.task_done()

    def notify(self, *messages: dict[str, Any]) -> None:
        for message in messages:
            self._outbox.put_nowait(inject.encode(message))

    # --- the device: our agent's answers, through wire/inject ----------------------------

    async def _request(self, raw: bytes) -> None:
        try:
            request = inject.parse(raw)
        except inject.InjectError as exc:
            self.notify(exc.reply)
            return
        self.written.append({"t": request.kind, **request.fields})
        if request.kind == "info":
            self.notify(
                inject.info(
                    vendor="Blynk",
                    tmpl_id=self.template_id,
                    fw_type=self.template_id,
                    fw_ver="0.1.0",
                    name=self.name,
                    uid="4f1c0a8e-3f0e-4d6b-9a61-2d1cbbd3c001",
                    code=self.code is not None,
                )
            )
        elif request.kind == "ifs":
            self.notify(
                inject.simple("ifs_start"),
                inject.interface("wifi", "02:00:00:00:01:00", False, scan=True),
                inject.simple("ifs_end"),
            )
        elif request.kind == "scan":
            seen = [
                edgent.ScanEntry(NEIGHBOUR[0].encode(), "02:00:00:00:00:02", NEIGHBOUR[1],
                                 NEIGHBOUR[2], 6),
                edgent.ScanEntry(HOME.encode(), "02:00:00:00:00:01", -40, "WPA2", 1),
                edgent.ScanEntry(b"", "02:00:00:00:00:03", -30, "WPA2", 11, hidden=True),
            ]  # fmt: skip
            self.notify(
                inject.simple("scan_start"), *inject.scan_entries(seen), inject.simple("scan_end")
            )
        elif request.kind == "set":
            if self.busy:
                self.notify({"t": "set_fail", "msg": "busy"})
                return
            refused = self.pending.set(request.fields)
            self.notify({"t": "set_fail", "msg": refused} if refused else inject.simple("set_ok"))
        elif request.kind == "connect":
            await self._connect()

    async def _connect(self) -> None:
        try:
            config = self.pending.config(edgent.ConfigDefaults(host="", port=self.gateway[1]))
        except edgent.ConfigError as exc:
            self.notify(inject.connect_fail(detail=str(exc)))
            return
        if self.code is not None and self.pending.values.get("code") != self.code:
            self.notify(inject.connect_fail("wrong code" if "code" in self.pending.values
                                            else "code required"))  # fmt: skip
            return
        self.notify(inject.simple("connecting"), inject.status("connecting_net"))
        if self.drop:  # the link goes down mid-attempt (out of range, the device restarting)
            await self._outbox.join()
            await self.cdp.send(
                "BluetoothEmulation.simulateGATTDisconnection", {"address": ADDRESS}
            )
            return
        if config.password != self.password:
            self.notify(inject.failure(E.AUTH_FAILED))
            return
        self.notify(
            inject.net_status(
                ssid=HOME, bssid="02:00:00:00:00:01", ip="192.168.1.23", rssi=-40, state="connected"
            ),
            inject.status("connecting_cloud"),
        )
        # the device logs in to the real cloud with the token it was sent: the claim (once
        # the page has heard it is connecting to the cloud, as over a real radio)
        await self._outbox.join()
        device = await RawDevice.connect((config.host or self.gateway[0], self.gateway[1]))
        assert await device.login(config.token) == 200
        await device.send(Command.INTERNAL, 2, *with_template(CPP_INFO, self.template_id))
        reply = await device.recv()
        assert reply is not None and reply.status == 200
        self.online = device
        self.notify(inject.status("connected"))


class AgentGatt(EmulatedDevice):
    """Chromium's emulated peripheral as the real agent's GATT backend (``device.ble.Gatt``):
    the page's writes go to the agent's ``BleProvisioning`` (the one session, the state machine,
    the sim radio, its link to the real cloud) and its notifications to the page."""

    CENTRAL = "chromium"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = asyncio.Event()
        self.advertising = False
        self._on_write: Any = None

    async def open(self, name: str, on_write: Any, on_left: Any) -> None:
        self.name, self._on_write = name, on_write
        self.opened.set()

    async def advertise(self, on: bool) -> None:
        self.advertising = on

    async def notify_value(self, value: bytes) -> None:
        self._outbox.put_nowait(value)

    async def _request(self, raw: bytes) -> None:
        with contextlib.suppress(inject.InjectError):
            request = inject.parse(raw)
            self.written.append({"t": request.kind, **request.fields})
        self._on_write(self.CENTRAL, raw)


class _GattFace:
    """``AgentGatt`` under the names ``device.ble.Gatt`` has (its ``notify`` takes bytes; the
    played device's ``notify`` takes messages)."""

    def __init__(self, gatt: AgentGatt) -> None:
        self.gatt = gatt

    async def open(self, name: str, on_write: Any, on_left: Any) -> None:
        await self.gatt.open(name, on_write, on_left)

    async def advertise(self, on: bool) -> None:
        await self.gatt.advertise(on)

    async def notify(self, value: bytes) -> None:
        await self.gatt.notify_value(value)

    async def close(self) -> None:
        pass


class RunningAgent:
    def __init__(self, agent: Agent, radio: SimRadio, task: asyncio.Task[None]) -> None:
        self.agent, self.radio, self.task = agent, radio, task

    async def stop(self) -> None:
        self.agent.stop()
        await asyncio.wait_for(self.task, 10)
        await self.radio.close()


async def start_agent(lab: Lab, gatt: AgentGatt) -> RunningAgent:
    """Our device agent of template Lamp with ``gatt`` as its Bluetooth, once it advertises."""
    config = AgentConfig(
        template_id=lab.world.template_id,
        template_name="Lamp",
        host="127.0.0.1",
        port=lab.world.gateway_port,
        port_ssl=None,
        machine=replace(quick_settings(), config_timeout=600, idle_timeout=180),
    )
    radio = SimRadio(lab.air, "ble-lamp", mac="24:6f:28:aa:bb:cc")
    agent = Agent(config, radio, ConfigStore(lab.world.tmp / "ble-lamp.json"),
                  ble=BleProvisioning(_GattFace(gatt)))  # fmt: skip
    running = RunningAgent(agent, radio, asyncio.create_task(agent.run()))
    async with asyncio.timeout(30):
        await gatt.opened.wait()
        while not gatt.advertising:  # its AP open, its advertisement on: setup mode
            await asyncio.sleep(0.05)
    return running


@contextlib.asynccontextmanager
async def console_with_bluetooth(
    lab: Lab, *, name: str = "Blynk Lamp-W8FH", template_id: str | None = None,
    bluetooth: bool = True, state: str = "powered-on", host: str = "", agent: bool = False,
) -> AsyncIterator[tuple[Any, EmulatedDevice]]:  # fmt: skip
    """The console in a phone-sized tab signed in as the owner, in a Chromium with Web Bluetooth
    and an emulated device ``name`` in setup mode (firmware of ``template_id``, Lamp's unless
    given). ``host``: reach the console by that name (resolved to 127.0.0.1) over plain http,
    which is not a secure context, unlike http://127.0.0.1. ``agent``: the device is the real
    agent (in this process, the sim radio on the world's air) instead of the played one."""
    args = WEB_BLUETOOTH if bluetooth or host else []
    origin = lab.world.cloud_url
    if host:
        args = [*args, f"--host-resolver-rules=MAP {host} 127.0.0.1"]
        origin = origin.replace("127.0.0.1", host)
    async with chromium(args) as browser:
        context = await browser.new_context(**PHONE)
        page = await context.new_page()
        page.set_default_timeout(30_000)  # every device message is a CDP round trip
        made = AgentGatt if agent else EmulatedDevice
        device = made(
            await browser.new_browser_cdp_session(),
            page,
            name=name,
            template_id=template_id or lab.world.template_id,
            gateway=("127.0.0.1", lab.world.gateway_port),
        )
        page.on("console", lambda m: device.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: device.console.append(f"error: {e}"))
        running = None
        if isinstance(device, AgentGatt):
            running = await start_agent(lab, device)
        if bluetooth:
            await device.start(state)
        try:
            await page.goto(origin + "/")
            await page.get_by_label("E-mail").fill("owner@example.com")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("link", name="Add device").first.click()
            await page.get_by_role("button", name="Lamp").click()
            await page.get_by_role("heading", name="Add a Lamp").wait_for()
            if bluetooth:
                await device.watch_chooser()
            yield page, device
            assert device.errors == []
        finally:
            await device.close()
            if running is not None:
                await running.stop()


async def seen(page: Any, device: EmulatedDevice, locator: Any, timeout: float = 30_000) -> None:
    """Wait for ``locator``; failing, say what the page and the device went through."""
    try:
        await locator.wait_for(timeout=timeout)
    except Exception as exc:
        shown = await page.locator("#ble").inner_text()
        raise AssertionError(
            f"{exc}\npage: {shown}\nwritten: {device.written}\nerrors: {device.errors}\n"
            f"prompts: {device.prompts}\nconsole: {device.console}"
        ) from None


def link_token(page_link: str) -> str:
    return parse_qs(urlsplit(page_link).query)["token"][0]


async def find(page: Any) -> None:
    await page.get_by_role("button", name="Find devices nearby (Bluetooth)").click()


async def test_bluetooth_wizard_end_to_end_with_a_wrong_password_first(lab: Lab) -> None:
    """Find the device, the template checked, its networks strongest first, a wrong password
    (net_fail invalid_credentials: the page's words for 722 and the form back), the right one,
    the device claimed through the real cloud and named, without the phone leaving its WiFi."""
    shots: Path = lab.shots
    shots.mkdir(parents=True, exist_ok=True)
    async with console_with_bluetooth(lab) as (page, device):
        link = await page.get_by_role("link", name="Open the setup link").get_attribute("href")
        token = link_token(link)
        await page.get_by_text("In the list, choose Blynk Lamp-XXXX").wait_for()
        await checked(page)
        await page.screenshot(path=str(shots / "ble-1-find.png"), full_page=True)

        await find(page)
        networks = page.get_by_role("group", name="Your WiFi network, as the device sees it")
        await seen(page, device, networks)
        assert device.subscribed  # TX notifications were asked for before the first request
        assert [m["t"] for m in device.written] == ["info", "ifs", "scan"]
        assert [d["id"] for d in device.prompts[0]] == [ADDRESS]  # what the chooser listed
        radios = networks.get_by_role("radio")
        labels = [await r.evaluate("r => r.labels[0].textContent") for r in await radios.all()]
        # strongest first, the hidden one not listed, then the way to type a hidden network
        assert [label.split(" ")[0] for label in labels[:2]] == [HOME.split(" ")[0], "Neighbour"]
        assert "strong signal, secured" in labels[0] and "weak signal" in labels[1]
        assert labels[2].startswith("Another network")
        assert await networks.get_by_role("radio", name=HOME).is_checked()
        await checked(page)
        await page.screenshot(path=str(shots / "ble-2-networks.png"), full_page=True)

        # no password for a secured network: said next to the form, nothing sent
        await page.get_by_role("button", name="Connect the device").click()
        await page.get_by_text(f"Type the password of {HOME}.").wait_for()
        assert [m["t"] for m in device.written] == ["info", "ifs", "scan"]

        await page.get_by_label("WiFi password").fill("not the password")
        await page.get_by_role("button", name="Connect the device").click()
        wrong = explain(722)
        await page.get_by_text(wrong.what).wait_for()
        await page.get_by_text(wrong.todo).wait_for()
        assert await page.get_by_role("alert").filter(has_text=wrong.what).is_visible()
        sent = [m for m in device.written if m["t"] == "set"]
        # the token of this page's setup link; no port: Blynk's set has none
        wanted = {"if": "wifi", "ssid": HOME, "pass": "not the password", "blynk": token}
        assert sent == [{"t": "set", **wanted, "host": "127.0.0.1"}]
        assert await page.get_by_role("button", name="Connect the device").is_enabled()
        wifi_step = await page.locator("#ble-step-wifi").text_content()
        assert wifi_step == "The device joins your WiFi (failed)"  # the mark, in words
        assert page.url.endswith("/add-device")  # still waiting for the device
        await checked(page)
        await page.screenshot(path=str(shots / "ble-3-wrong-password.png"), full_page=True)

        said: list[str] = []  # the live status line, every text it showed
        await page.expose_function("said", lambda text: said.append(text))
        await page.evaluate(SAID)
        await page.get_by_label("WiFi password").fill(HOME_PASSWORD)
        await page.get_by_role("button", name="Connect the device").click()
        # the device logs in with the page's token; the console's long poll sees the claim
        heading = page.get_by_role("heading", name="Your Lamp is online")
        await heading.wait_for(timeout=30_000)
        assert f"The device is joining {HOME}…" in said, said
        assert f"The device joined {HOME} (address 192.168.1.23)." in said, said
        assert "The device joined the network and is connecting to the cloud…" in said, said
        kinds = [m["t"] for m in device.written]
        assert kinds == ["info", "ifs", "scan", "set", "connect", "set", "connect"]
        assert device.written[-2]["pass"] == HOME_PASSWORD
        assert set(device.write_types) == {"write-with-response"}
        await checked(page)
        await page.screenshot(path=str(shots / "ble-4-name.png"), full_page=True)
        await page.get_by_label("Device name").fill("Desk lamp")
        await page.get_by_role("button", name="Save the name").click()
        await page.get_by_text("“Desk lamp” is in your account and online").wait_for()
        await checked(page)
        devices = await lab.online_devices()  # while the played device is still logged in
        assert [(d["name"], d["online"]) for d in devices] == [("Desk lamp", True)]


async def test_our_agent_provisioned_from_the_page_with_a_wrong_password_first(lab: Lab) -> None:
    """The same page against our real agent (``device/ble.py`` through the emulated GATT: the one
    session, the state machine, the sim radio, the real cloud): a wrong password is the agent's
    722 in the page's words, the retry over the same connection brings it online and named."""
    async with console_with_bluetooth(lab, agent=True) as (page, device):
        assert device.name.startswith("Blynk Lamp-")
        await find(page)
        networks = page.get_by_role("group", name="Your WiFi network, as the device sees it")
        await seen(page, device, networks)
        assert await networks.get_by_role("radio", name=HOME).is_checked()
        await page.get_by_label("WiFi password").fill("not the password")
        await page.get_by_role("button", name="Connect the device").click()
        await seen(page, device, page.get_by_text(explain(722).what), timeout=60_000)
        await page.get_by_label("WiFi password").fill(HOME_PASSWORD)
        await page.get_by_role("button", name="Connect the device").click()
        heading = page.get_by_role("heading", name="Your Lamp is online")
        await seen(page, device, heading, timeout=60_000)
        await page.get_by_label("Device name").fill("Porch lamp")
        await page.get_by_role("button", name="Save the name").click()
        await page.get_by_text("“Porch lamp” is in your account and online").wait_for()
        kinds = [m["t"] for m in device.written]
        assert kinds == ["info", "ifs", "scan", "set", "connect", "set", "connect"], kinds
        devices = await lab.online_devices()
        assert [(d["name"], d["online"]) for d in devices] == [("Porch lamp", True)]


async def test_a_hidden_network_and_the_code_on_the_label(lab: Lab) -> None:
    """A network the device's scan does not list, typed under "Another network"; a device that
    requires the code on its label (caps ``oob_code``): without it, then wrong, then right."""
    async with console_with_bluetooth(lab) as (page, device):
        device.code = "482913"
        await find(page)
        await seen(page, device, page.get_by_label("Code on the device's label"))
        await page.get_by_role("radio", name="Another network").check()
        await page.get_by_label("Network name").fill(HOME)
        await page.get_by_label("WiFi password").fill(HOME_PASSWORD)
        await checked(page)
        await page.get_by_role("button", name="Connect the device").click()
        await page.get_by_text("The device needs the code printed on its label.").wait_for()
        await page.get_by_label("Code on the device's label").fill("111111")
        await page.get_by_role("button", name="Connect the device").click()
        await page.get_by_text(
            "The device needs the code printed on its label, and that one"
        ).wait_for()
        await page.get_by_label("Code on the device's label").fill(device.code)
        await page.get_by_role("button", name="Connect the device").click()
        await page.get_by_role("heading", name="Your Lamp is online").wait_for(timeout=30_000)
        sets = [m for m in device.written if m["t"] == "set"]
        assert [m.get("code") for m in sets] == [None, "111111", "482913"]
        assert {m["ssid"] for m in sets} == {HOME}


async def test_a_device_of_another_template_is_refused_and_sent_nothing(lab: Lab) -> None:
    other = await lab.world.api("POST", "/api/orgs/1/templates", json={"name": "Fan"})
    async with console_with_bluetooth(lab, name="Blynk Fan-W8FH", template_id=other["id"]) as (
        page,
        device,
    ):
        await find(page)
        alert = page.get_by_role("alert").filter(has_text="a device of another template")
        await alert.wait_for()
        text = await alert.text_content()
        assert f"its firmware says {other['id']}, not Lamp ({lab.world.template_id})" in text
        assert "Nothing was sent to it" in text and "Choose the template" in text
        assert [m["t"] for m in device.written] == ["info"]  # no scan, no set, no token
        assert not await page.get_by_role("button", name="Connect the device").is_visible()
        await checked(page)
        await page.screenshot(path=str(lab.shots / "ble-other-template.png"), full_page=True)
    assert await lab.world.api("GET", "/api/devices") == []


async def test_a_cancelled_chooser_a_busy_device_and_a_lost_link_say_what_to_do(lab: Lab) -> None:
    async with console_with_bluetooth(lab) as (page, device):
        device.choose = "cancel"
        await find(page)
        await page.get_by_text("No device was chosen.").wait_for()
        await page.get_by_text("choose Blynk Lamp-XXXX. If it is not in the list").wait_for()
        assert device.written == []
        await checked(page)

        device.choose, device.busy = "select", True  # another provisioner holds the session
        await find(page)
        await page.get_by_label("WiFi password").fill(HOME_PASSWORD)
        await page.get_by_role("button", name="Connect the device").click()
        await page.get_by_text("The device is busy: another phone, or its own setup").wait_for()
        await page.get_by_text("Wait a minute").wait_for()
        assert [m["t"] for m in device.written][-1] == "set"  # no connect after set_fail
        await checked(page)

        device.busy, device.drop = False, True  # the link lost while the device connects
        await find(page)
        await page.get_by_label("WiFi password").fill(HOME_PASSWORD)
        await page.get_by_role("button", name="Connect the device").click()
        ended = "The Bluetooth connection ended while the device was connecting."
        await seen(page, device, page.get_by_text(ended))
        await page.get_by_text("If nothing happens within two minutes").wait_for()
        assert await page.get_by_role("button", name="Find devices nearby (Bluetooth)").is_enabled()


async def test_messages_cut_short_by_a_small_mtu_are_said(lab: Lab) -> None:
    """BlueZ cuts a notification to ATT_MTU - 3 bytes (20 at the default MTU of 23) and nobody
    reassembles (docs/ble.md): the page drops what is not one JSON object, and when the reply
    never comes whole it says why and where to go instead."""
    async with console_with_bluetooth(lab) as (page, device):
        device.mtu_cut = 20
        await find(page)
        await seen(page, device, page.get_by_text("The device's answers arrive cut short"))
        await page.get_by_text("Use the steps through the device's WiFi network below.").wait_for()
        assert [m["t"] for m in device.written] == ["info"]
        assert await page.locator("#ble-step-link").get_attribute("class") == "active"
        await checked(page)


async def test_no_bluetooth_adapter_is_said(lab: Lab) -> None:
    """The emulated adapter ``absent``: ``getAvailability()`` is false and the chooser fails.
    (``powered-off`` is not expressed by the emulation: its chooser still lists and connects
    the device, where a real phone asks to turn Bluetooth on.)"""
    async with console_with_bluetooth(lab, state="absent") as (page, device):
        await page.get_by_text("Bluetooth is off or missing on this phone: turn it on").wait_for()
        await find(page)
        await page.get_by_text("Bluetooth is off or not available on this phone.").wait_for()
        assert device.written == [] and device.prompts == []
        await checked(page)


async def test_without_web_bluetooth_the_wifi_steps_remain(lab: Lab) -> None:
    """iPhone, Firefox, or Chromium without Web Bluetooth: no Bluetooth button, a line saying
    why, and the steps through the device's WiFi network as before."""
    async with console_with_bluetooth(lab, bluetooth=False) as (page, _device):
        assert await page.evaluate("'bluetooth' in navigator") is False
        assert not await page.get_by_role("button", name="Find devices nearby (Bluetooth)").count()
        note = page.get_by_text("Bluetooth setup is not available in this browser")
        await note.wait_for()
        assert "use the steps through the device's WiFi network below" in (
            await note.text_content() or ""
        )
        steps = page.get_by_role("heading", name="Through the device's own WiFi network")
        assert await steps.is_visible()
        assert await page.get_by_role("link", name="Open the setup link").is_visible()
        await checked(page)
        await page.screenshot(path=str(lab.shots / "ble-none.png"), full_page=True)


async def test_a_console_on_plain_http_says_bluetooth_needs_https(lab: Lab) -> None:
    """A browser with Web Bluetooth hides it from a page that is not a secure context (plain
    http on a name other than localhost/127.0.0.1): the line says the console needs https."""
    async with console_with_bluetooth(lab, bluetooth=False, host="console.test") as (page, _):
        assert page.url.startswith("http://console.test:")
        assert await page.evaluate("isSecureContext") is False
        note = page.get_by_text("Bluetooth setup needs the console on https")
        await note.wait_for()
        assert await page.get_by_role("link", name="Open the setup link").is_visible()
        await checked(page)
