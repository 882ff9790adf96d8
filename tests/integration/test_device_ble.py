"""The device agent provisioned over (simulated) Bluetooth LE against the real cloud: Blynk.Inject
messages, the one session shared with the SoftAP portal (busy, same codes), bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningCloud
from tests.integration.device_bench import thermostat_config
from tests.integration.support import provisioning_token, template
from tests.integration.test_device_agent import HOME, PASSWORD, config_query
from wifiprov.device.agent import Agent
from wifiprov.device.ble import BleProvisioning
from wifiprov.device.machine import State
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore
from wifiprov.sim.air import Air
from wifiprov.sim.ble import BleAir, BleError, SimCentral, SimGatt, SimLink
from wifiprov.sim.phone import SimPhone
from wifiprov.wire import inject

WAIT = 10.0  # a bound on waiting for a notification, not a timed assertion


class Phone:
    """A BLE central that speaks Inject."""

    def __init__(self, link: SimLink) -> None:
        self.link = link

    async def write(self, raw: bytes) -> None:
        await self.link.write(raw)

    async def send(self, kind: str, **fields: Any) -> None:
        await self.link.write(inject.request(kind, **fields))

    async def next(self) -> dict[str, Any]:
        return inject.decode(await self.link.notification(WAIT))

    async def until(self, *kinds: str) -> list[dict[str, Any]]:
        """Every message up to and including the first of ``kinds`` (a type, or a status)."""
        seen: list[dict[str, Any]] = []
        while not seen or not {seen[-1]["t"], seen[-1].get("s")} & set(kinds):
            try:
                seen.append(await self.next())
            except TimeoutError:
                raise AssertionError(f"no {kinds} after {seen}") from None
        return seen


class Rig:
    def __init__(self, cloud: RunningCloud, air: Air, ble: BleAir, agent: Agent) -> None:
        self.cloud, self.air, self.ble, self.agent = cloud, air, ble, agent

    async def phone(self, address: str = "") -> Phone:
        central = SimCentral(self.ble, address)
        for _ in range(500):  # the agent starts advertising once its AP is open
            found = [a for a in await central.scan() if inject.SERVICE_UUID in a.services]
            if found:
                return Phone(await central.connect(found[0].address))
            await asyncio.sleep(0.02)
        raise AssertionError("the device never advertised")

    async def until_state(self, *states: State) -> None:
        async with asyncio.timeout(WAIT):
            while self.agent.state not in states:
                await asyncio.sleep(0.01)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: BLE never touches the database (the SoftAP tests cover both backends)."""
    return str(tmp_path / "cloud.sqlite3")


@pytest.fixture
def ble_code() -> str | None:
    return None  # overridden by tests of a device that requires its label's code


@pytest.fixture
async def rig(cloud: RunningCloud, tmp_path: Path, ble_code: str | None) -> AsyncIterator[Rig]:
    air = Air(tmp_path / "air")
    air.add_network(HOME, PASSWORD, rssi=-40)
    air.add_network("Neighbour", "whatever123", rssi=-80)
    tid = await template(cloud, name="Thermostat")
    config = thermostat_config(tid, cloud.gateway[1], ble_code=ble_code)
    ble = BleAir()
    radio = SimRadio(air, "device-1", mac="24:6f:28:aa:bb:cc")
    agent = Agent(
        config,
        radio,
        ConfigStore(tmp_path / "device.json"),
        ble=BleProvisioning(SimGatt(ble, inject.SERVICE_UUID)),
    )
    task = asyncio.create_task(agent.run())
    try:
        yield Rig(cloud, air, ble, agent)
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)
        await radio.close()
        air.close()


async def test_ble_provisioning_end_to_end(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    assert rig.ble.adverts()[0].name == "Acme Thermostat-W8FH"
    await phone.send("info")
    info = await phone.next()
    assert info == {
        "t": "info",
        "vendor": "Acme",
        "tmpl_id": rig.agent.config.template_id,
        "fw_type": rig.agent.config.template_id,
        "fw_ver": "0.1.0",
        "name": "Acme Thermostat-W8FH",
        "uid": rig.agent.uid,
        "caps": ["live_status"],
    }
    assert rig.agent.state is State.CONFIGURING
    await phone.send("ifs")
    ifs = await phone.until("ifs_end")
    assert [m["t"] for m in ifs] == ["ifs_start", "if", "ifs_end"]
    assert ifs[1]["name"] == "wifi" and ifs[1]["status"] == "unavailable" and ifs[1]["scan"] == 1
    await phone.send("scan")
    scan = await phone.until("scan_end")
    assert [m.get("ssid") for m in scan] == [None, HOME, "Neighbour", None]
    await phone.send("set", ssid=HOME, blynk=request["token"])
    assert await phone.next() == {"t": "set_ok"}
    await phone.send("set", **{"pass": PASSWORD, "if": "wifi"})
    assert await phone.next() == {"t": "set_ok"}
    await phone.send("connect")
    got = await phone.until("connected", "net_fail", "cloud_fail", "connect_fail")
    kinds = [(m["t"], m.get("s")) for m in got]
    assert kinds == [
        ("connecting", None),
        ("status", "connecting_net"),
        ("status", "connecting_cloud"),
        ("net_status", None),
        ("status", "connected"),
    ]
    assert got[3]["ssid"] == HOME and got[3]["state"] == "connected"
    await rig.until_state(State.RUNNING)
    assert rig.agent.last_error == 0
    async with rig.cloud.client(rig.cloud.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
    assert claim["status"] == "claimed"


@pytest.mark.parametrize(
    ("ssid", "password", "kind", "reason", "code"),
    [
        (HOME, "not the password", "net_fail", "invalid_credentials", 722),
        ("Nowhere", PASSWORD, "net_fail", "not_found", 720),
    ],
)
async def test_ble_failure_gives_blynks_reason_and_the_portals_code(
    rig: Rig, ssid: str, password: str, kind: str, reason: str, code: int
) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    await phone.send("set", ssid=ssid, **{"pass": password}, blynk=request["token"])
    assert await phone.next() == {"t": "set_ok"}
    await phone.send("connect")
    got = await phone.until("connected", "net_fail", "cloud_fail", "connect_fail")
    assert got[-1] == {"t": kind, "reason": reason, "code": code}
    await rig.until_state(State.WAIT_CONFIG)
    assert rig.agent.last_error == code
    assert rig.ble.adverts(), "still advertising: the device can be provisioned again"
    # the same code through the portal's board info
    async with await _portal(rig) as portal:
        assert (await portal.get("/board_info.json")).json()["last_error"] == code


async def test_ble_rejected_token_is_a_cloud_fail(rig: Rig) -> None:
    phone = await rig.phone()
    await phone.send("set", ssid=HOME, **{"pass": PASSWORD}, blynk="x" * 32)
    await phone.next()
    await phone.send("connect")
    got = await phone.until("connected", "net_fail", "cloud_fail", "connect_fail")
    assert got[-1] == {"t": "cloud_fail", "reason": "auth_failed", "code": 703}


@pytest.mark.parametrize(
    ("raw", "answer"),
    [
        (b"{not json", {"t": "error", "msg": "wrong format"}),
        (b'{"t":"fly"}', {"t": "error", "msg": "invalid command"}),
        (b'{"t":"set","port":"80"}', {"t": "set_fail", "msg": "unknown key(s): port"}),
        (
            b'{"t":"connect"}',
            {
                "t": "connect_fail",
                "msg": "configuration invalid",
                "detail": "blynk: must be 32 characters long (got 0)",
            },
        ),
    ],
)
async def test_bad_input_gets_an_answer_and_changes_nothing(
    rig: Rig, raw: bytes, answer: dict[str, Any]
) -> None:
    phone = await rig.phone()
    await rig.until_state(State.WAIT_CONFIG)
    await phone.write(raw)
    assert await phone.next() == answer
    assert rig.agent.state in (State.WAIT_CONFIG, State.CONFIGURING)
    await phone.send("info")  # the conversation goes on
    assert (await phone.next())["t"] == "info"


async def test_short_token_and_bad_password_are_refused_before_trying(rig: Rig) -> None:
    phone = await rig.phone()
    await phone.send("scan")
    await phone.until("scan_end")
    await phone.send("set", ssid=HOME, **{"pass": "short"}, blynk="b" * 32)
    await phone.next()
    await phone.send("connect")
    reply = await phone.next()
    assert reply["t"] == "connect_fail" and reply["detail"].startswith("pass: must be 8 to 63")
    await phone.send("set", blynk="tooshort")
    await phone.next()
    await phone.send("connect")
    assert (await phone.next())["detail"] == "blynk: must be 32 characters long (got 8)"
    assert rig.agent.state in (State.WAIT_CONFIG, State.CONFIGURING)


async def test_reset_forgets_pending_network_fields(rig: Rig) -> None:
    phone = await rig.phone()
    await phone.send("set", ssid=HOME, blynk="c" * 32)
    await phone.next()
    await phone.send("reset")
    assert await phone.next() == {"t": "reset_ok"}
    await phone.send("connect")
    assert (await phone.next())["detail"].startswith("ssid: must name the WiFi network")


async def _portal(rig: Rig) -> httpx.AsyncClient:
    url = await SimPhone(rig.air).join(rig.agent.ap_name, timeout=10)
    return httpx.AsyncClient(base_url=url, timeout=10)


async def test_second_provisioner_on_the_other_transport_is_busy(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    await phone.send("set", ssid=HOME, **{"pass": PASSWORD}, blynk=request["token"])
    assert await phone.next() == {"t": "set_ok"}
    async with await _portal(rig) as portal:
        assert (await portal.get("/board_info.json")).status_code == 200  # reads are fine
        reply = await portal.get("/config?" + config_query(request["token"]))
        assert reply.status_code == 409
        assert reply.json()["msg"].startswith(
            "busy: another provisioner is configuring this device over Bluetooth"
        )
        assert (await portal.get("/reset")).status_code == 409
        assert rig.agent.state in (State.WAIT_CONFIG, State.CONFIGURING)
        # a second phone over BLE is busy too
        other = await rig.phone(address="02:00:00:00:99:99")
        await other.send("set", ssid=HOME)
        refused = await other.next()
        assert refused["t"] == "set_fail" and refused["msg"].startswith("busy")
        # the first phone leaves: the portal may now configure
        await phone.link.disconnect()
        reply = await portal.get("/config?" + config_query(request["token"]))
        assert reply.status_code == 200
        await rig.until_state(State.RUNNING)


async def test_portal_holding_the_session_makes_ble_busy(rig: Rig) -> None:
    async with await _portal(rig) as portal:
        await portal.get("/board_info.json")
        phone = await rig.phone()
        await phone.send("set", ssid=HOME, **{"pass": PASSWORD}, blynk="d" * 32)
        refused = await phone.next()
        assert refused["t"] == "set_fail"
        assert "over its access point (HTTP)" in refused["msg"]
        await phone.send("connect")
        refused = await phone.next()
        assert refused["t"] == "connect_fail"


async def test_provisioned_device_stops_advertising_and_refuses_config(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    await phone.send("set", ssid=HOME, **{"pass": PASSWORD}, blynk=request["token"])
    await phone.next()
    await phone.send("connect")
    await phone.until("connected")
    async with asyncio.timeout(WAIT):  # the AP lingers 0.5 s, then closes with the advert
        while rig.ble.adverts():
            await asyncio.sleep(0.02)
    await phone.send("set", ssid="Neighbour", **{"pass": "whatever123"}, blynk=request["token"])
    await phone.next()
    await phone.send("connect")
    refused = await phone.next()
    assert refused["t"] == "connect_fail" and "not in provisioning mode" in refused["detail"]
    assert rig.agent.state is State.RUNNING
    with pytest.raises(BleError):
        await SimCentral(rig.ble).connect(phone.link.peripheral.address)


async def test_secrets_never_reach_the_log(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    await phone.send("set", ssid=HOME, **{"pass": PASSWORD}, blynk=request["token"])
    await phone.next()
    await phone.send("connect")
    await phone.until("connected")
    text = caplog.text
    assert PASSWORD not in text and request["token"] not in text


@pytest.mark.parametrize("ble_code", ["482913"])
async def test_device_with_a_label_code_requires_it(rig: Rig, ble_code: str) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    await phone.send("info")
    assert (await phone.next())["caps"] == ["live_status", "oob_code"]
    await phone.send("set", ssid=HOME, **{"pass": PASSWORD}, blynk=request["token"])
    await phone.next()
    await phone.send("connect")
    assert (await phone.next())["msg"] == "code required"
    for _ in range(5):  # five wrong codes lock connect for a while, even with the right code
        await phone.send("set", code="000000")
        assert await phone.next() == {"t": "set_ok"}
        await phone.send("connect")
        assert (await phone.next())["msg"] == "wrong code"
    await phone.send("set", code=ble_code)
    await phone.next()
    await phone.send("connect")
    locked = await phone.next()
    assert locked["msg"] == "code locked" and "try again in" in locked["detail"]
    assert rig.agent.state in (State.WAIT_CONFIG, State.CONFIGURING)
    ble_side = rig.agent.ble
    assert isinstance(ble_side, BleProvisioning)
    ble_side._locked_until = 0.0  # the lockout is over (60 s later)
    await phone.send("connect")
    got = await phone.until("connected", "net_fail", "cloud_fail", "connect_fail")
    assert got[-1].get("s") == "connected"


async def test_a_device_without_a_code_ignores_one(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    phone = await rig.phone()
    await phone.send("set", ssid=HOME, **{"pass": PASSWORD}, blynk=request["token"], code="1")
    assert await phone.next() == {"t": "set_ok"}
    await phone.send("connect")
    got = await phone.until("connected", "net_fail", "cloud_fail", "connect_fail")
    assert got[-1].get("s") == "connected"
