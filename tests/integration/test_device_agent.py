"""The device agent on the sim radio against the real cloud: provisioning as a phone does it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningCloud
from tests.integration.device_bench import thermostat_config
from tests.integration.support import provisioning_token, template, until
from wifiprov.device import agent as agent_module
from wifiprov.device import machine as sm
from wifiprov.device.agent import Agent, AgentConfig
from wifiprov.device.machine import State
from wifiprov.device.radio.base import ApInfo
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore
from wifiprov.sim.air import Air
from wifiprov.sim.phone import JoinError, SimPhone

HOME = "Home WiFi"
PASSWORD = "correct horse"


class Rig:
    def __init__(self, cloud: RunningCloud, air: Air, agent: Agent, store: ConfigStore) -> None:
        self.cloud, self.air, self.agent, self.store = cloud, air, agent, store
        self.phone = SimPhone(air)

    async def portal(self) -> httpx.AsyncClient:
        url = await self.phone.join(self.agent.ap_name, timeout=10)
        return httpx.AsyncClient(base_url=url, timeout=10)

    async def until_state(self, *states: State, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while self.agent.state not in states:
                await asyncio.sleep(0.01)


@pytest.fixture
async def rig(cloud: RunningCloud, tmp_path: Path) -> AsyncIterator[Rig]:
    air = Air(tmp_path / "air")
    air.add_network(HOME, PASSWORD, rssi=-40)
    air.add_network("Neighbour", "whatever123", rssi=-80)
    tid = await template(cloud, name="Thermostat")
    config = thermostat_config(tid, cloud.gateway[1])
    store = ConfigStore(tmp_path / "device.json")
    radio = SimRadio(air, "device-1", mac="24:6f:28:aa:bb:cc")
    agent = Agent(config, radio, store)
    task = asyncio.create_task(agent.run())
    try:
        yield Rig(cloud, air, agent, store)
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)
        await radio.close()
        air.close()


def config_query(token: str, ssid: str = HOME, password: str = PASSWORD, **extra: str) -> str:
    params = {
        "ssid": ssid,
        "pass": password,
        "blynk": token,
        "host": "",
        "port": "",
        "port_ssl": "",
        **extra,
    }
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


async def test_provisioning_end_to_end(rig: Rig) -> None:
    assert rig.agent.ap_name == "Acme Thermostat-W8FH"
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        info = (await portal.get("/board_info.json")).json()
        assert info["tmpl_id"] == rig.agent.config.template_id and info["board"] == "Thermostat"
        assert info["ssid"] == "Acme Thermostat-W8FH" and info["last_error"] == 0
        assert info["ap_sta"] is True and info["scan_cached"] is False  # scans live
        assert rig.agent.state is State.CONFIGURING
        scan = (await portal.get("/wifi_scan.json")).json()
        assert [n["ssid"] for n in scan] == [HOME, "Neighbour"]
        reply = await portal.get("/config?" + config_query(request["token"]))
        assert reply.status_code == 200
        assert reply.content == b'{"status":"ok","msg":"Trying to connect..."}'
        await rig.until_state(State.RUNNING)
        status = (await portal.get("/status.json")).json()  # the AP lingers: seen live
        assert status["state"] == "RUNNING" and status["last_error"] == 0
    async with rig.cloud.client(rig.cloud.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
        assert claim["status"] == "claimed"
        device_url = f"/api/devices/{claim['device_id']}"

        async def info_stored() -> bool:  # the info message follows the login, written behind
            return bool((await api.get(device_url)).json()["info"])

        await until(info_stored)
        device = (await api.get(device_url)).json()
        assert device["online"] and device["info"]["template_id"] == rig.agent.config.template_id
    stored = rig.store.load().config
    assert stored.is_configured and stored.networks[0].ssid == HOME.encode()
    assert stored.token == request["token"]


@pytest.mark.parametrize(
    "setup,code",
    [
        ("wrong-password", 722),
        ("not-found", 720),
        ("dhcp", 723),
    ],
)
async def test_failed_provisioning_returns_to_ap_with_the_code(
    rig: Rig, setup: str, code: int
) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    ssid, password = HOME, PASSWORD
    if setup == "wrong-password":
        password = "not the password"
    elif setup == "not-found":
        ssid = "Nowhere"
    else:
        rig.air.set_faults(rig.air.networks()[0].id, dhcp_fail=True)
    async with await rig.portal() as portal:
        await portal.get("/board_info.json")
        reply = await portal.get("/config?" + config_query(request["token"], ssid, password))
        assert reply.status_code == 200
        await rig.until_state(State.WAIT_CONFIG)
        info = (await portal.get("/board_info.json")).json()
        assert info["last_error"] == code
        status = (await portal.get("/status.json")).json()
        assert status["last_error"] == code and status["last_error_text"]
    assert not rig.store.load().config.is_configured


async def test_unknown_token_gives_703_and_cloud_unreachable_702(rig: Rig) -> None:
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query("Z" * 32))
        await rig.until_state(State.WAIT_CONFIG)
        assert (await portal.get("/board_info.json")).json()["last_error"] == 703
        await portal.get("/config?" + config_query("Z" * 32, port="1"))
        await rig.until_state(State.CONNECTING_CLOUD)
        await rig.until_state(State.WAIT_CONFIG)
        assert (await portal.get("/board_info.json")).json()["last_error"] == 702


async def test_bad_config_is_refused_with_a_detail_and_changes_nothing(rig: Rig) -> None:
    async with await rig.portal() as portal:
        for query, param in [
            (config_query("short"), "blynk"),
            (config_query("A" * 32, ssid=""), "ssid"),
            (config_query("A" * 32, password="short"), "pass"),
            (config_query("A" * 32) + "&ssid=again", "ssid"),
            (config_query("A" * 32, ip="300.1.1.1"), "ip"),
        ]:
            reply = await portal.get("/config?" + query)
            assert reply.status_code == 500
            body = reply.json()
            assert body["status"] == "error" and body["msg"] == "Configuration invalid"
            assert body["detail"].startswith(param), body
        huge = await portal.get("/config?" + "x" * 5000)
        assert huge.status_code == 500
    assert rig.agent.state in (State.WAIT_CONFIG, State.CONFIGURING)
    assert not rig.store.path.exists()


async def test_reconfigure_from_the_cloud_and_resume(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    async with rig.cloud.client(rig.cloud.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
        device_url = f"/api/devices/{claim['device_id']}"

        async def online() -> bool:  # presence is written behind the login by up to a flush
            return bool((await api.get(device_url)).json()["online"])

        await until(online)
        assert (await api.post(f"{device_url}/reconfigure")).status_code == 202
    await rig.until_state(State.WAIT_CONFIG)
    assert rig.store.load().config.is_configured  # kept
    await rig.until_state(State.RUNNING, timeout=10)  # config timeout (2 s here): resumes


async def test_setup_page_takes_the_token_from_its_url(rig: Rig) -> None:
    async with await rig.portal() as portal:
        page = (await portal.get("/?token=" + "T" * 32)).text
    assert 'value="' + "T" * 32 + '"' in page and HOME in page
    assert "Acme Thermostat-W8FH" in page


async def test_link_loss_retries_without_opening_the_ap(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    await asyncio.sleep(0.6)  # the AP lingers 0.5 s after success, then closes
    assert rig.air.aps() == []
    home = rig.air.networks()[0]
    rig.air.remove_network(home.id)
    await rig.until_state(State.RETRY_WAIT, State.CONNECTING_NET)
    await asyncio.sleep(0.5)
    assert rig.air.aps() == []  # retrying, never back to AP mode
    rig.air.add_network(HOME, PASSWORD)
    await rig.until_state(State.RUNNING, timeout=10)


async def test_user_code_gets_writes_and_sends_values(rig: Rig) -> None:
    got: list[tuple[int, list[str]]] = []
    rig.agent.on_write(3)(lambda pin, values: got.append((pin, values)))
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
    await rig.until_state(State.RUNNING)
    async with rig.cloud.client(rig.cloud.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
        device_id = claim["device_id"]
        await api.put(f"/api/devices/{device_id}/pins/3", json={"value": "42"})
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0.01)
        assert got == [(3, ["42"])]
        rig.agent.virtual_write(4, "hello")
        async with asyncio.timeout(5):
            while (await api.get(f"/api/devices/{device_id}/pins")).json().get("V4") != ["hello"]:
                await asyncio.sleep(0.05)


async def test_save_keeps_the_config_before_the_first_login(rig: Rig) -> None:
    async with await rig.portal() as portal:
        reply = await portal.get("/config?" + config_query("Z" * 32, save="1"))
        assert reply.content == b'{"status":"ok","msg":"Configuration saved"}'
    stored = rig.store.load().config
    assert not stored.is_configured and stored.candidate is not None  # saved, not yet working
    assert stored.candidate.token == "Z" * 32 and stored.candidate.networks[0].ssid == HOME.encode()


async def test_reboot_restarts_the_agent_from_its_store(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
        await portal.get("/reboot")
    await rig.until_state(State.CONNECTING_NET, State.CONNECTING_CLOUD, State.RUNNING)
    await rig.until_state(State.RUNNING)  # came back up from the stored configuration


async def test_reset_from_the_portal_and_the_button_erase(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    assert rig.store.load().config.is_configured
    rig.agent.reset_from_button()
    await rig.until_state(State.WAIT_CONFIG)
    async with asyncio.timeout(5):
        while rig.store.path.exists():
            await asyncio.sleep(0.01)
    async with await rig.portal() as portal:
        reply = await portal.get("/reset")
        assert reply.content == b'{"status":"ok","msg":"Configuration reset"}'


async def test_concurrent_config_requests_leave_one_consistent_attempt(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        replies = await asyncio.gather(
            portal.get("/config?" + config_query(request["token"], password="wrong password 1")),
            portal.get("/config?" + config_query(request["token"])),
            portal.get("/config?" + config_query("bad")),
        )
    assert sorted(r.status_code for r in replies) == [200, 200, 500]
    await rig.until_state(State.RUNNING, State.WAIT_CONFIG)
    stored = rig.store.load()
    assert stored.problem is None  # whatever happened, the file is whole


async def test_requests_after_the_ap_closed_are_refused(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    url = await rig.phone.join(rig.agent.ap_name)
    async with httpx.AsyncClient(base_url=url, timeout=5) as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
        await asyncio.sleep(0.7)  # the AP lingers 0.5 s
        with pytest.raises(httpx.ConnectError):
            await portal.get("/config?" + config_query("Z" * 32))
    assert rig.store.load().config.token == request["token"]


async def test_classic_radio_drops_the_ap_and_reports_through_last_error(
    cloud: RunningCloud, tmp_path: Path
) -> None:
    air = Air(tmp_path / "air")
    air.add_network(HOME, PASSWORD)
    tid = await template(cloud, name="Classic")
    config = AgentConfig(
        template_id=tid,
        template_name="Classic",
        host="127.0.0.1",
        port=cloud.gateway[1],
        port_ssl=None,
        machine=sm.Settings(net_timeout=3, cloud_timeout=3),
    )
    radio = SimRadio(air, "classic-1", ap_and_station=False)
    agent = Agent(config, radio, ConfigStore(tmp_path / "store.json"))
    task = asyncio.create_task(agent.run())
    try:
        phone = SimPhone(air)
        url = await phone.join(agent.ap_name)
        async with httpx.AsyncClient(base_url=url, timeout=5) as portal:
            info = (await portal.get("/board_info.json")).json()
            assert info["ap_sta"] is False  # board info says the AP goes down while connecting
            assert info["scan_cached"] is True  # and that the network list predates the AP
            await portal.get("/config?" + config_query("Z" * 32, password="wrong password"))
        async with asyncio.timeout(10):  # the AP closes, then comes back with the error
            while agent.state is not State.WAIT_CONFIG or agent.last_error == 0:
                await asyncio.sleep(0.01)
        url = await phone.join(agent.ap_name)
        async with httpx.AsyncClient(base_url=url, timeout=5) as portal:
            assert (await portal.get("/board_info.json")).json()["last_error"] == 722
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)
        await radio.close()
        air.close()


@pytest.mark.parametrize(
    "path,host",
    [
        ("/generate_204", "connectivitycheck.gstatic.com"),  # Android
        ("/hotspot-detect.html", "captive.apple.com"),  # Apple
        ("/connecttest.txt", "www.msftconnecttest.com"),  # Windows
        ("/canonical.html", "detectportal.firefox.com"),  # Firefox
        ("/generate_204", "192.168.4.1"),  # a probe by address
        ("/", "example.com"),  # any other site
    ],
)
async def test_captive_portal_probes_are_sent_to_the_setup_page(
    rig: Rig, path: str, host: str
) -> None:
    async with await rig.portal() as portal:
        reply = await portal.get(path, headers={"Host": host}, follow_redirects=False)
        assert reply.status_code == 302
        location = reply.headers["location"]
        assert location == str(portal.base_url).rstrip("/") + "/"
        page = await portal.get(location)
        assert page.status_code == 200 and "Acme Thermostat-W8FH" in page.text
        own = await portal.get("/board_info.json", headers={"Host": "blynk.setup"})
        assert own.status_code == 200  # the device's own names are served, not redirected


async def test_saved_networks_fail_over_to_the_previous_one(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    rig.agent.dispatch(sm.ConfigStart())  # "Reconfigure": move the device to another network
    await rig.until_state(State.WAIT_CONFIG)
    async with await rig.portal() as portal:
        query = config_query(request["token"], ssid="Neighbour", password="whatever123")
        await portal.get("/config?" + query)
        await rig.until_state(State.RUNNING)
    stored = rig.store.load().config
    assert [n.ssid for n in stored.networks] == [b"Neighbour", HOME.encode()]

    neighbour = next(n for n in rig.air.networks() if n.ssid == b"Neighbour")
    rig.air.remove_network(neighbour.id)  # the new network goes away: the old one still works

    async def on_home() -> bool:
        station = (await rig.agent.radio.status()).station
        return station is not None and station.ssid == HOME.encode()

    await until(on_home)
    await rig.until_state(State.RUNNING, timeout=10)
    assert [n.ssid for n in rig.store.load().config.networks] == [b"Neighbour", HOME.encode()]


async def test_a_failed_new_network_keeps_the_working_configuration(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    before = rig.store.load().config
    rig.agent.dispatch(sm.ConfigStart())
    await rig.until_state(State.WAIT_CONFIG)
    async with await rig.portal() as portal:
        query = config_query(request["token"], ssid="Neighbour", password="wrong-password")
        await portal.get("/config?" + query)
        await rig.until_state(State.WAIT_CONFIG, timeout=10)
        assert (await portal.get("/status.json")).json()["last_error"] == 722
    after = rig.store.load().config
    assert after.networks == before.networks and after.token == before.token


async def test_an_access_point_that_cannot_open_stops_the_agent_with_the_reason(
    tmp_path: Path,
) -> None:
    class BrokenRadio(SimRadio):
        async def start_ap(self, ssid: str, passphrase: str | None = None, **kw: bool) -> ApInfo:
            raise RuntimeError("NetworkManager left the bus while opening the AP")

    air = Air(tmp_path / "air")
    radio = BrokenRadio(air, "device-1", mac="24:6f:28:aa:bb:cc")
    config = AgentConfig(template_id="TMPL1", template_name="Thermostat", host="127.0.0.1")
    agent = Agent(config, radio, ConfigStore(tmp_path / "device.json"))
    with pytest.raises(RuntimeError, match="left the bus"):
        await asyncio.wait_for(agent.run(), 10)
    assert air.aps() == [] and agent.portal_address is None
    await radio.close()
    air.close()


async def test_a_secured_captive_ap_takes_only_its_passphrase(tmp_path: Path) -> None:
    air = Air(tmp_path / "air")
    radio = SimRadio(air, "device-1", mac="24:6f:28:aa:bb:cc")
    config = AgentConfig(
        template_id="TMPL1", template_name="Thermostat", ap_passphrase="label-on-the-box"
    )
    agent = Agent(config, radio, ConfigStore(tmp_path / "device.json"))
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.ready.wait(), 10)
        phone = SimPhone(air)
        with pytest.raises(JoinError, match="passphrase"):
            await phone.join(agent.ap_name, "guessed-wrong", timeout=10)
        with pytest.raises(JoinError):
            await phone.join(agent.ap_name, None, timeout=10)
        portal = await phone.join(agent.ap_name, "label-on-the-box", timeout=10)
        async with httpx.AsyncClient(base_url=portal, timeout=10) as client:
            assert (await client.get("/board_info.json")).status_code == 200
        status = await radio.status()
        assert status.ap is not None and status.ap.secured and status.ap.captive
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)
        await radio.close()
        air.close()


@pytest.mark.parametrize("passphrase", ["short", "x" * 64, "pässphrase-ünicode"])
def test_an_ap_passphrase_wpa2_cannot_take_is_refused(passphrase: str) -> None:
    with pytest.raises(ValueError, match="8 to 63 ASCII"):
        AgentConfig(template_id="TMPL1", template_name="Thermostat", ap_passphrase=passphrase)


async def test_an_ap_that_went_down_on_its_own_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "AP_REOPEN_DELAY", 0.05)

    class FlakyRadio(SimRadio):
        opened = 0
        fail_from = 99

        async def start_ap(self, ssid: str, passphrase: str | None = None, **kw: bool) -> ApInfo:
            self.opened += 1
            if self.opened >= self.fail_from:
                raise RuntimeError("NetworkManager is not running")
            return await super().start_ap(ssid, passphrase, **kw)

    air = Air(tmp_path / "air")
    radio = FlakyRadio(air, "device-1", mac="24:6f:28:aa:bb:cc")
    config = AgentConfig(template_id="TMPL1", template_name="Thermostat")
    agent = Agent(config, radio, ConfigStore(tmp_path / "device.json"))
    task = asyncio.create_task(agent.run())
    phone = SimPhone(air)

    async def ap_published() -> bool:
        ap = air.ap("device-1")
        return ap is not None and ap.portal is not None

    async def reopened() -> bool:
        return radio.opened == 2

    await until(ap_published)
    await radio.stop_ap()  # what NetworkManager restarting does to the AP ...
    radio._ap_lost("NetworkManager restarted")  # ... and what the radio reports
    await until(reopened)
    await until(ap_published)
    portal = await phone.join(agent.ap_name, timeout=10)
    async with httpx.AsyncClient(base_url=portal, timeout=10) as client:
        assert (await client.get("/board_info.json")).status_code == 200

    radio.fail_from = 3  # the next reopening fails: the agent stops with the reason
    await radio.stop_ap()
    radio._ap_lost("NetworkManager restarted")
    with pytest.raises(RuntimeError, match="not running"):
        await asyncio.wait_for(task, 10)
    await radio.close()
    air.close()


async def test_save_at_once_keeps_the_previous_networks_for_failover(rig: Rig) -> None:
    request = await provisioning_token(rig.cloud, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    rig.agent.dispatch(sm.ConfigStart())
    await rig.until_state(State.WAIT_CONFIG)
    async with await rig.portal() as portal:  # save=1: stored before it logs in (Edgent)
        query = config_query(request["token"], ssid="Neighbour", password="whatever123", save="1")
        await portal.get("/config?" + query)
        await rig.until_state(State.RUNNING)
    assert [n.ssid for n in rig.store.load().config.networks] == [b"Neighbour", HOME.encode()]
