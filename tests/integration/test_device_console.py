"""Edgent's identity and remote console on the running agent: the persistent Device UID in board
info, INTERNAL meta after the first login, and console commands over INTERNAL dbg answered and
carried out. The cloud is scripted on a real socket, so every frame is visible."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_device_link import CloudSide, ScriptedCloud
from wifiprov.device import machine as sm
from wifiprov.device.agent import Agent, AgentConfig
from wifiprov.device.machine import State
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore, Flags, Network, StoredConfig
from wifiprov.sim.air import Air
from wifiprov.sim.phone import SimPhone
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command

HOME, PASSWORD = "Home WiFi", "correct horse"
TOKEN = "T" * 32
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class Device:
    def __init__(self, tmp: Path, cloud: ScriptedCloud) -> None:
        self.tmp, self.cloud = tmp, cloud
        self.air = Air(tmp / "air")
        self.air.add_network(HOME, PASSWORD)
        self.store = ConfigStore(tmp / "device.json")
        self.agent: Agent | None = None
        self.task: asyncio.Task[None] | None = None
        self.radio: SimRadio | None = None

    def provisioned(self) -> None:
        self.store.save(
            StoredConfig(
                networks=(Network(HOME.encode(), PASSWORD),),
                token=TOKEN,
                host="127.0.0.1",
                port=self.cloud.port,
                flags=Flags(valid=True),
            )
        )

    def start(self) -> Agent:
        config = AgentConfig(
            template_id="TMPLconsole1",
            template_name="Thermostat",
            vendor="Acme",
            port_ssl=None,
            machine=sm.Settings(net_timeout=3, cloud_timeout=3, config_timeout=30, ap_linger=0.2),
        )
        self.radio = SimRadio(self.air, "device-1", mac="24:6f:28:aa:bb:cc")
        self.agent = Agent(config, self.radio, self.store)
        self.task = asyncio.create_task(self.agent.run())
        return self.agent

    async def stop(self) -> None:
        if self.agent is not None and self.task is not None:
            self.agent.stop()
            await asyncio.wait_for(self.task, 10)
            assert self.radio is not None
            await self.radio.close()
            self.agent = self.task = None

    async def state(self, *states: State) -> None:
        async with asyncio.timeout(10):
            while self.agent is None or self.agent.state not in states:
                await asyncio.sleep(0.01)


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[Device]:
    async with ScriptedCloud() as cloud:
        d = Device(tmp_path, cloud)
        try:
            yield d
        finally:
            await d.stop()
            d.air.close()


async def logged_in(d: Device) -> CloudSide:
    side = await d.cloud.next()
    await side.login()
    return side


async def command(side: CloudSide, line: str, msg_id: int = 100) -> str:
    """Send a console line as the cloud does (INTERNAL dbg) and return the device's reply."""
    side.send(blynk.encode(Command.INTERNAL, msg_id, "dbg", line))
    while True:
        frame = await side.recv(timeout=10)
        assert frame is not None, "the device closed the connection"
        args = frame.text_args() if frame.command == Command.INTERNAL else []
        if args[:1] == ["dbg"]:
            return args[1]


async def test_board_info_uid_is_persistent_and_survives_an_erase(device: Device) -> None:
    agent = device.start()
    await device.state(State.WAIT_CONFIG)
    phone = SimPhone(device.air)
    url = await phone.join(agent.ap_name, timeout=10)
    async with httpx.AsyncClient(base_url=url) as portal:
        uid = (await portal.get("/board_info.json")).json()["uid"]
    assert UUID.fullmatch(uid)
    assert (device.tmp / "device.json.uid").read_text().strip() == uid
    await device.stop()
    again = device.start()
    await device.state(State.WAIT_CONFIG)
    assert again.uid == uid  # kept across a restart
    again.reset_from_button()  # an erase of the configuration keeps the device's identity
    await device.state(State.WAIT_CONFIG)
    await device.stop()
    assert device.start().uid == uid


async def test_meta_follows_the_first_login_and_is_not_repeated(device: Device) -> None:
    device.provisioned()
    agent = device.start()
    side = await logged_in(device)
    metas = []
    for _ in range(2):
        frame = await side.recv()
        assert frame is not None
        metas.append(frame.text_args())
    assert metas == [
        ["meta", "set", "Device UID", agent.uid],
        ["meta", "set", "Hotspot Name", "Acme Thermostat-W8FH"],
    ]
    await device.state(State.RUNNING)
    side.writer.close()  # the cloud drops the connection: the device logs in again
    side2 = await logged_in(device)
    side2.send(blynk.encode(Command.PING, 9))
    pong = await side2.recv()  # no meta this time: the answer to PING comes first
    assert pong is not None and (pong.command, pong.msg_id) == (Command.RESPONSE, 9)


async def test_console_commands_are_answered_and_carried_out(device: Device) -> None:
    device.provisioned()
    agent = device.start()
    side = await logged_in(device)
    await device.state(State.RUNNING)
    info = json.loads(await command(side, "devinfo"))
    assert info == {
        "name": "Acme Thermostat-W8FH",
        "board": "Thermostat",
        "tmpl_id": "TMPLconsole1",
        "fw_type": "TMPLconsole1",
        "fw_ver": "0.1.0",
    }
    shown = await command(side, "wifi show")
    assert shown.startswith("mac:24:6F:28:AA:BB:CC ip:10.") and "(Home WiFi [" in shown
    scan = await command(side, "wifi scan")
    assert "Home WiFi" in scan and scan.lstrip().startswith("*")  # the current network marked
    assert "Version:   0.1.0" in await command(side, "firmware info")
    status = await command(side, "status")
    assert "Uptime:" in status and "RUNNING" in status and agent.uid in status
    assert await command(side, "bogus") == "Command not found."
    assert await command(side, "") == "Command not found."
    assert (await command(side, "wifi dance")).startswith("Available commands:")
    assert agent.state is State.RUNNING  # none of those changed anything
    reply = await command(side, "config start")
    assert json.loads(reply) == {"status": "OK", "msg": "entering configuration mode"}
    await device.state(State.WAIT_CONFIG)
    assert device.store.load().config.is_configured  # Reconfigure keeps the configuration


async def test_console_connect_tries_the_new_network_and_keeps_the_old_on_failure(
    device: Device,
) -> None:
    device.provisioned()
    agent = device.start()
    side = await logged_in(device)
    await device.state(State.RUNNING)
    ssid = HOME.replace(" ", "\\x20")  # the console's escape for a space
    reply = await command(side, f"connect {'N' * 32} {ssid} wrong\\x20pass")
    assert json.loads(reply) == {"status": "OK", "msg": "trying to connect..."}
    await device.state(State.WAIT_CONFIG)  # the new configuration failed: the AP opens
    assert agent.last_error == 722
    stored = device.store.load().config
    assert stored.token == TOKEN and stored.is_configured  # the working one is kept
