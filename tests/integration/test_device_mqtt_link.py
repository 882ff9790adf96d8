"""The device's MQTT cloud link (aiomqtt) against the real cloud's MQTT gateway: login, the
failure codes it shares with the Blynk-protocol link, and the agent provisioning, failing and
reconnecting over it."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import RunningCloud, start_cloud, stop_cloud, with_owner
from tests.integration.device_bench import thermostat_config
from tests.integration.support import free_port, provisioning_token, template, until
from tests.integration.test_device_agent import HOME, PASSWORD, config_query
from wifiprov.cloud.app import Cloud
from wifiprov.cloud.settings import CloudSettings
from wifiprov.device.agent import Agent, AgentConfig
from wifiprov.device.link import LinkCallbacks, LinkError, LinkSettings
from wifiprov.device.machine import State
from wifiprov.device.mqtt_link import MqttLink
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore
from wifiprov.sim.air import Air
from wifiprov.sim.phone import SimPhone


@dataclass
class MqttCloud:
    settings: CloudSettings
    rc: RunningCloud
    task: asyncio.Task[None]

    @property
    def port(self) -> int:
        return self.rc.cloud.gateway.mqtt_addresses()["mqtt"][1]

    async def restart(self, pause: float = 0.0) -> None:
        await stop_cloud(self.rc.cloud, self.task)
        await asyncio.sleep(pause)
        cloud, self.task = await start_cloud(self.settings)
        self.rc = _same_owner(self.rc, cloud)


def _same_owner(old: RunningCloud, cloud: Cloud) -> RunningCloud:
    host, port = cloud.http_address
    return RunningCloud(
        cloud, f"http://{host}:{port}", cloud.gateway.addresses()[0], old.owner_token, old.org_id
    )


@pytest.fixture
async def mq(settings: CloudSettings) -> AsyncIterator[MqttCloud]:
    settings.mqtt = ("127.0.0.1", free_port())  # fixed: a restarted cloud listens there again
    running, task = await start_cloud(settings)
    holder = MqttCloud(settings, await with_owner(running, hotspot_prefix="Acme"), task)
    try:
        yield holder
    finally:
        await stop_cloud(holder.rc.cloud, holder.task)


async def named_pins(rc: RunningCloud, template_id: str, *pins: int) -> None:
    """Datastreams named ``V<pin>``: how an MQTT-linked agent's pins are reached."""
    async with rc.client(rc.owner_token) as api:
        for pin in pins:
            reply = await api.put(
                f"/api/templates/{template_id}/datastreams/V{pin}",
                json={"pin": pin, "type": "string"},
            )
            assert reply.status_code == 200, reply.text


def link_settings(token: str, port: int | None, template_id: str = "TMPLtest") -> LinkSettings:
    info = {"mcu": "1.2.3", "fw-type": template_id, "build": "wifiprov", "tmpl": template_id}
    return LinkSettings(token=token, host="127.0.0.1", port=port, info=info, heartbeat=10)


async def test_mqtt_link_claims_reports_info_and_carries_pin_values(mq: MqttCloud) -> None:
    rc = mq.rc
    template_id = await template(rc)
    await named_pins(rc, template_id, 1, 2)
    request = await provisioning_token(rc, template_id)
    writes: list[tuple[int, list[str]]] = []
    link = MqttLink(
        link_settings(request["token"], mq.port, template_id),
        LinkCallbacks(on_write=lambda pin, values: writes.append((pin, values))),
    )
    await link.open(timeout=5)
    serving = asyncio.create_task(link.run())
    try:
        async with rc.client(rc.owner_token) as api:
            claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
            assert claim["status"] == "claimed"
            url = f"/api/devices/{claim['device_id']}"

            async def online_with_info() -> bool:
                device = (await api.get(url)).json()
                return bool(device["online"] and device["info"])

            await until(online_with_info)
            device = (await api.get(url)).json()
            assert device["info"]["template_id"] == template_id
            assert device["info"]["firmware_version"] == "1.2.3"
            link.virtual_write(2, "21.5")

            async def stored() -> bool:
                return bool((await api.get(f"{url}/pins")).json().get("V2") == ["21.5"])

            await until(stored)
            reply = await api.put(f"{url}/pins/1", json={"value": "on"})
            assert reply.json()["delivered"] is True, reply.text

            async def written() -> bool:
                return bool(writes)

            await until(written)
            assert writes == [(1, ["on"])]
            link.send_console_reply("no console over MQTT")  # a no-op, not a failure
            await api.delete(url)
        reason = await asyncio.wait_for(serving, 10)
        assert "lost" in reason or "closed" in reason
    finally:
        serving.cancel()
        await link.close()
    again = MqttLink(link_settings(request["token"], mq.port, template_id))
    with pytest.raises(LinkError) as failure:
        await again.open(timeout=5)
    assert failure.value.code == 703


async def test_mqtt_link_failures_carry_the_blynk_links_codes(
    mq: MqttCloud, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Q" * 32
    cases = [
        (LinkSettings(token=wrong, host="nonexistent.invalid", port=1883), 710),
        (link_settings(wrong, free_port()), 702),  # nothing listens there
        (link_settings(wrong, mq.port), 703),
    ]
    for settings, code in cases:
        link = MqttLink(settings)
        with pytest.raises(LinkError) as failure:
            await link.open(timeout=5)
        assert failure.value.code == code, (code, str(failure.value))
    # a silent server: the login times out (702); a certificate the link does not trust: 711
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    tls = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=server_ctx)
    try:
        port = silent.sockets[0].getsockname()[1]
        with pytest.raises(LinkError) as failure:
            await MqttLink(link_settings(wrong, port)).open(timeout=1)
        assert failure.value.code == 702
        tls_port = tls.sockets[0].getsockname()[1]
        untrusted = LinkSettings(token=wrong, host="127.0.0.1", port=None, port_ssl=tls_port)
        with pytest.raises(LinkError) as failure:
            await MqttLink(untrusted).open(timeout=5)
        assert failure.value.code == 711, str(failure.value)
    finally:
        for writer in held:
            writer.close()
        silent.close()
        tls.close()
    assert wrong not in caplog.text  # a token never reaches a log


@dataclass
class Rig:
    mq: MqttCloud
    air: Air
    agent: Agent
    store: ConfigStore

    async def portal(self) -> httpx.AsyncClient:
        url = await SimPhone(self.air).join(self.agent.ap_name, timeout=10)
        return httpx.AsyncClient(base_url=url, timeout=10)

    async def until_state(self, *states: State, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while self.agent.state not in states:
                await asyncio.sleep(0.01)


async def start_rig(mq: MqttCloud, tmp_path: Path, mqtt_port: int | None = None) -> Rig:
    air = Air(tmp_path / "air")
    air.add_network(HOME, PASSWORD, rssi=-40)
    tid = await template(mq.rc, name="Thermostat")
    config = thermostat_config(tid, mq.rc.gateway[1], link="mqtt", mqtt_port=mqtt_port or mq.port)
    store = ConfigStore(tmp_path / "device.json")
    agent = Agent(config, SimRadio(air, "device-1", mac="24:6f:28:aa:bb:cc"), store)
    return Rig(mq, air, agent, store)


@pytest.fixture
async def rig(mq: MqttCloud, tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(mq, tmp_path)
    task = asyncio.create_task(r.agent.run())
    try:
        yield r
    finally:
        r.agent.stop()
        await asyncio.wait_for(task, 10)
        await r.agent.radio.close()  # type: ignore[attr-defined]
        r.air.close()


async def test_the_agent_is_provisioned_over_mqtt_and_reconnects_after_a_cloud_restart(
    rig: Rig,
) -> None:
    request = await provisioning_token(rig.mq.rc, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        reply = await portal.get("/config?" + config_query(request["token"]))
        assert reply.status_code == 200
        await rig.until_state(State.RUNNING)
    async with rig.mq.rc.client(rig.mq.rc.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
        assert claim["status"] == "claimed"
        device_id = claim["device_id"]

        async def online() -> bool:
            device = (await api.get(f"/api/devices/{device_id}")).json()
            return bool(device["online"] and device["info"])

        await until(online)
        device = (await api.get(f"/api/devices/{device_id}")).json()
        assert device["info"]["template_id"] == rig.agent.config.template_id
    assert rig.store.load().config.token == request["token"]

    async def ap_closed() -> bool:  # it lingers 0.5 s after the login
        return rig.air.aps() == []

    await until(ap_closed)
    # the cloud goes away for a while, then comes back on the same address
    await rig.mq.restart(pause=0.5)
    await rig.until_state(State.RUNNING)
    async with rig.mq.rc.client(rig.mq.rc.owner_token) as api:

        async def online_again() -> bool:
            return bool((await api.get(f"/api/devices/{device_id}")).json()["online"])

        await until(online_again, timeout=15)
    assert rig.air.aps() == []  # a lost cloud never reopens the AP


async def test_the_cloud_reboots_and_pings_the_agent_over_mqtt(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """downlink/reboot restarts the agent as the Blynk link's INTERNAL dbg reboot does: it logs
    in again from its stored configuration (nothing lost); downlink/ping is acknowledged."""
    caplog.set_level(logging.INFO, "wifiprov")
    request = await provisioning_token(rig.mq.rc, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    async with rig.mq.rc.client(rig.mq.rc.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
        url = f"/api/devices/{claim['device_id']}"

        async def online() -> bool:
            return bool((await api.get(url)).json()["online"])

        await until(online)
        pinged = (await api.post(f"{url}/ping")).json()
        assert pinged["acked"] is True, pinged
        before = (await api.get(url)).json()["connected_at"]
        reply = await api.post(f"{url}/reboot")
        assert reply.status_code == 202 and reply.json()["sent"] == "downlink/reboot"

        async def back_with_a_new_connection() -> bool:
            device = (await api.get(url)).json()
            return bool(device["online"] and device["connected_at"] != before)

        await until(back_with_a_new_connection, timeout=15)
    await rig.until_state(State.RUNNING)
    assert "the cloud asks for a reboot" in caplog.text
    assert rig.store.load().config.token == request["token"]  # the configuration is kept
    assert rig.air.aps() == []  # a reboot is no reconfigure: the AP stays closed


async def test_reconfigure_from_the_cloud_reaches_the_agent_over_mqtt(rig: Rig) -> None:
    """downlink/reconfigure (Blynk's "Reconfigure" for MQTT devices) puts the agent back in
    setup mode as INTERNAL dbg config start does over the Blynk link; its configuration stays."""
    request = await provisioning_token(rig.mq.rc, rig.agent.config.template_id)
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
        await rig.until_state(State.RUNNING)
    async with rig.mq.rc.client(rig.mq.rc.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
        url = f"/api/devices/{claim['device_id']}"

        async def online() -> bool:
            return bool((await api.get(url)).json()["online"])

        await until(online)
        reply = await api.post(f"{url}/reconfigure")
        assert reply.status_code == 202 and reply.json()["delivered"] is True, reply.text
    await rig.until_state(State.WAIT_CONFIG)

    async def ap_open() -> bool:
        return rig.air.aps() != []

    await until(ap_open)
    assert rig.store.load().config.token == request["token"]


async def test_the_agent_over_mqtt_reports_703_for_a_wrong_token(rig: Rig) -> None:
    async with await rig.portal() as portal:
        await portal.get("/config?" + config_query("Z" * 32))
        await rig.until_state(State.WAIT_CONFIG)
        assert (await portal.get("/board_info.json")).json()["last_error"] == 703
    assert not rig.store.load().config.is_configured


async def test_the_agent_over_mqtt_reports_702_when_the_cloud_is_unreachable(
    mq: MqttCloud, tmp_path: Path
) -> None:
    r = await start_rig(mq, tmp_path, mqtt_port=free_port())
    task = asyncio.create_task(r.agent.run())
    try:
        request = await provisioning_token(mq.rc, r.agent.config.template_id)
        async with await r.portal() as portal:
            await portal.get("/config?" + config_query(request["token"]))
            await r.until_state(State.CONNECTING_CLOUD)
            await r.until_state(State.WAIT_CONFIG)
            assert (await portal.get("/board_info.json")).json()["last_error"] == 702
    finally:
        r.agent.stop()
        await asyncio.wait_for(task, 10)
        await r.agent.radio.close()  # type: ignore[attr-defined]
        r.air.close()


def test_the_link_is_chosen_by_device_toml_or_the_flag(tmp_path: Path) -> None:
    from wifiprov.device.cli import KEYS, agent_config, load_settings, parser

    toml = tmp_path / "device.toml"
    toml.write_text('template_id = "TMPL1"\ntemplate_name = "T"\nlink = "mqtt"\nmqtt_port = 1884\n')
    config = agent_config(load_settings(toml, {}))
    assert (config.link, config.mqtt_port, config.mqtt_port_ssl) == ("mqtt", 1884, 8883)
    args = parser().parse_args(["--link", "blynk", "--mqtt-port-ssl", "0"])
    flags = {k: v for k, v in vars(args).items() if k in KEYS}
    config = agent_config(load_settings(toml, flags))
    assert (config.link, config.mqtt_port_ssl) == ("blynk", None)
    default = agent_config(load_settings(None, {"template_id": "TMPL1", "template_name": "T"}))
    assert default.link == "blynk"
    with pytest.raises(ValueError, match="link"):
        AgentConfig(template_id="TMPL1", template_name="T", link="coap")
