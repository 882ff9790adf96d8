"""``wifiprov demo``: the whole system in one process on any laptop.

A cloud on a temporary SQLite database (a user, an organization, a template), a simulated home
network and a simulated device in AP mode, then the provisioner against them: the device comes
online, is named, and a virtual-pin value goes to it and comes back. ``--fail`` first shows a
failure path (the device's own error code, explained) and then the recovery. ``--ble`` runs the
provisioner over the simulated Bluetooth LE air (Blynk.Inject) instead. ``--link mqtt`` links the
device to the cloud over Blynk's MQTT API instead of the Blynk protocol (the cloud then listens
for MQTT too, and the template names its pins' datastreams ``V1`` and ``V2``, which is how an
MQTT-linked agent's pins are reached); the provisioner's flow is the same. ``--console`` leaves the
cloud (and the device) running after the flow and prints the web console's URL with the demo
user's e-mail and password, until Ctrl-C: the provisioned device is there in a browser.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wifiprov.cloud import accounts, datastreams, templates
from wifiprov.cloud.app import Cloud
from wifiprov.cloud.settings import CloudSettings
from wifiprov.device import machine as sm
from wifiprov.device.agent import Agent, AgentConfig
from wifiprov.device.ble import BleProvisioning
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore
from wifiprov.provisioner.ble import BleProvisioner, SimBleCentral
from wifiprov.provisioner.client import CloudClient
from wifiprov.provisioner.flow import Choices, Event, Provisioner, ProvisioningFailed
from wifiprov.provisioner.wifi.sim import SimPhoneWifi
from wifiprov.sim.air import Air
from wifiprov.sim.ble import BleAir, SimCentral, SimGatt
from wifiprov.wire import inject

HOME = "Home WiFi"
HOME_PASSWORD = "correct horse battery"
FAILURES = ("wrong-password", "not-found", "no-dhcp")
LINKS = ("blynk", "mqtt")


async def run_demo(
    say: Callable[[str], None],
    http: tuple[str, int] = ("127.0.0.1", 0),
    gateway: tuple[str, int] = ("127.0.0.1", 0),
    fail: str | None = None,
    workdir: Path | None = None,
    keep: bool = False,
    console: bool = False,
    ble: bool = False,
    link: str = "blynk",
) -> dict[str, Any]:
    """The whole flow. Without ``workdir`` it works in a new private temporary folder (0700),
    removed at the end unless ``keep``: it holds a device token and a WiFi password.

    With ``console`` it then says the console's URL and the demo user's credentials and keeps
    the cloud and the device running until cancelled (Ctrl-C); the clean-up happens then."""
    if link not in LINKS:
        raise ValueError(f"--link must be one of {', '.join(LINKS)}")
    if workdir is not None:
        return await _run_demo(say, http, gateway, fail, workdir, console, ble, link)
    temporary = Path(tempfile.mkdtemp(prefix="wifiprov-demo-"))  # mode 0700
    try:
        return await _run_demo(say, http, gateway, fail, temporary, console, ble, link)
    finally:
        if keep:
            say(
                f"kept {temporary} (--keep): it holds the device's token and the WiFi password; "
                "delete it when you are done"
            )
        else:
            shutil.rmtree(temporary, ignore_errors=True)
            say(f"removed {temporary} (give --keep to look at the cloud's database and the air)")


async def _run_demo(
    say: Callable[[str], None],
    http: tuple[str, int],
    gateway: tuple[str, int],
    fail: str | None,
    workdir: Path,
    console: bool = False,
    ble: bool = False,
    link: str = "blynk",
) -> dict[str, Any]:
    password = secrets.token_urlsafe(9)
    settings = CloudSettings(
        db_url=str(workdir / "cloud.sqlite3"), http=http, gateway=gateway, public_host="127.0.0.1"
    )
    if link == "mqtt":
        settings.mqtt = (gateway[0], 0)  # any free port on the gateway's address
    cloud = await Cloud.open(settings)
    ready = asyncio.Event()
    serving = asyncio.create_task(cloud.serve(ready))
    await ready.wait()
    url = "http://{}:{}".format(*cloud.http_address)
    gw_port = cloud.gateway.addresses()[0][1]
    mqtt_port = cloud.gateway.mqtt_addresses()["mqtt"][1] if link == "mqtt" else 0
    mqtt_text = f", MQTT 127.0.0.1:{mqtt_port}" if mqtt_port else ""
    say(f"cloud: API {url}, device gateway 127.0.0.1:{gw_port}{mqtt_text}, data in {workdir}")

    user_id = await accounts.create_user(cloud.db, "demo@example.com", password)
    org_id = await accounts.create_org(cloud.db, "Demo", user_id)
    token = await accounts.sign_in(cloud.db, cloud.hasher, "demo@example.com", password)
    who = await accounts.authenticate(cloud.db, cloud.hasher, token)
    template = await templates.create_template(cloud.db, who, org_id, "Smart Lamp")
    say(
        f"cloud: user demo@example.com, organization 'Demo', template {template['id']} 'Smart Lamp'"
    )
    if link == "mqtt":  # an MQTT-linked agent's pins are reached by datastreams named V<pin>
        for pin in (1, 2):
            await datastreams.put_datastream(cloud.db, who, template["id"], f"V{pin}", pin)
        say("cloud: datastreams V1 and V2 on the template (MQTT devices address values by name)")

    air = Air(workdir / "air")
    home = air.add_network(HOME, HOME_PASSWORD, rssi=-45)
    air.add_network("Neighbours", "their own secret", rssi=-78)
    say(f"air: networks '{HOME}' (WPA2) and 'Neighbours' in range")
    radio = SimRadio(air, "lamp", mac="24:6f:28:aa:bb:cc")
    ble_air = BleAir() if ble else None
    ble_side = BleProvisioning(SimGatt(ble_air, inject.SERVICE_UUID)) if ble_air else None
    agent = Agent(
        AgentConfig(
            template_id=template["id"],
            template_name="Smart Lamp",
            vendor="Blynk",
            host="127.0.0.1",
            port=gw_port,
            port_ssl=None,
            machine=sm.Settings(net_timeout=10, cloud_timeout=10, ap_linger=2),
            link=link,
            mqtt_port=mqtt_port or 1883,
            mqtt_port_ssl=None,
        ),
        radio,
        ConfigStore(workdir / "device.json"),
        ble=ble_side,
    )

    @agent.on_write(1)
    def brightness(pin: int, values: list[str]) -> None:
        say(f"device: V1 set to {values[0]} by the cloud; reporting it back on V2")
        agent.virtual_write(2, f"brightness is {values[0]}")

    device_task = asyncio.create_task(agent.run())
    await agent.ready.wait()
    say(f"device: in setup mode, access point '{agent.ap_name}'")
    if link == "mqtt":
        say(f"device: its cloud link is Blynk's MQTT API (127.0.0.1:{mqtt_port})")
    else:
        say(f"device: its cloud link is the Blynk protocol (127.0.0.1:{gw_port})")
    if ble_side is not None:
        say(f"device: and over Bluetooth LE (Blynk.Inject) as '{ble_side.name}'")

    def show(event: Event) -> None:
        say(f"provisioner {event.elapsed:5.2f}s: {event.message}")

    try:
        async with CloudClient(url, token) as client:
            flow: Provisioner
            if ble_air is not None:
                central = SimBleCentral(SimCentral(ble_air))
                flow = BleProvisioner(client, central, show, online_timeout=30)
            else:
                flow = Provisioner(client, SimPhoneWifi(air), show, online_timeout=30)
            choices = Choices(
                template=template["id"], ssid=HOME, password=HOME_PASSWORD, name="Living room lamp"
            )
            if fail:
                await _show_failure(fail, flow, choices, air, home.id, say)
            device = await flow.run(choices)
            say(f"cloud: writing V1 = 80 to '{device['name']}'")
            await client.write_pin(device["id"], 1, "80")
            echoed = await _wait_for_pin(client, device["id"], "V2")
            say(f"cloud: the device answered on V2: '{echoed}'")
            result = {"device": device, "V2": echoed, "cloud": url, "link": link}
            if console:
                say(f"demo complete: '{device['name']}' is online and answered '{echoed}'")
                say(f"console: {url}/ (sign in as demo@example.com, password {password})")
                say("console: the cloud and the device keep running; press Ctrl-C to stop")
                await asyncio.Event().wait()  # until cancelled (Ctrl-C)
            return result
    finally:
        agent.stop()
        await asyncio.wait_for(device_task, 10)
        await radio.close()
        air.close()
        cloud.http_server.should_exit = True
        await serving


async def _show_failure(
    fail: str,
    flow: Provisioner,
    choices: Choices,
    air: Air,
    home_id: str,
    say: Callable[[str], None],
) -> None:
    attempt = Choices(**vars(choices))
    if fail == "wrong-password":
        attempt.password = "not the password"
    elif fail == "not-found":
        air.set_faults(home_id, not_found=True)
        attempt.hidden = True  # the phone still "knows" the network; the device cannot find it
    elif fail == "no-dhcp":
        air.set_faults(home_id, dhcp_fail=True)
    else:
        raise ValueError(f"--fail must be one of {', '.join(FAILURES)}")
    say(f"demo: first attempt, set up to fail ({fail})")
    try:
        await flow.run(attempt)
    except ProvisioningFailed as exc:
        say(f"provisioner: FAILED (error {exc.code}): {exc.what} {exc.todo}")
    else:
        raise RuntimeError(f"the '{fail}' attempt unexpectedly succeeded")
    air.set_faults(home_id, not_found=False, dhcp_fail=False)
    say("demo: correcting the problem and trying again")


async def _wait_for_pin(client: CloudClient, device_id: int, pin: str) -> str:
    async with asyncio.timeout(10):
        while True:
            value = (await client.pins(device_id)).get(pin)
            if value:
                return value[0]
            await asyncio.sleep(0.05)  # the device's write lands at the next flush (0.2 s)
