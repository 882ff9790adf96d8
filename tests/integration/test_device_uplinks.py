"""Static addresses and Ethernet (Edgent's ``ip``/``mask``/``gw``/``dns`` and ``if=eth``) on the
sim radio, through the portal, against the real cloud."""

from __future__ import annotations

import asyncio

from tests.integration.device_bench import DEVICE, Bench
from tests.integration.test_device_agent import config_query
from wifiprov.device.machine import State

STATIC = {"ip": "10.42.0.77", "mask": "255.255.255.0", "gw": "10.42.0.1", "dns": "10.42.0.1"}


async def test_a_static_address_is_applied(bench: Bench) -> None:
    bench.start()
    request = await bench.token()
    async with await bench.portal() as portal:
        assert (await portal.get("/board_info.json")).json()["static_ip"] is True
        await portal.get("/config?" + config_query(request["token"], **STATIC))
    await bench.state(State.RUNNING)
    station = bench.air.station(DEVICE)
    assert station is not None and station.ip == "10.42.0.77"  # not a DHCP address
    assert (await bench.committed()).static_ip is not None  # kept for the next boot


async def test_a_static_address_that_cannot_work_fails_with_700(bench: Bench) -> None:
    agent = bench.start()
    request = await bench.token()
    async with await bench.portal() as portal:
        bad = {**STATIC, "gw": "192.168.9.1"}  # not on the address's network
        reply = await portal.get("/config?" + config_query(request["token"], **bad))
        assert reply.status_code == 200
        await bench.state(State.WAIT_CONFIG)
        status = (await portal.get("/status.json")).json()
    assert agent.last_error == 700 and status["last_error"] == 700
    assert await bench.claim_status(request) == "pending"


async def test_ethernet_is_listed_and_used_where_the_device_has_it(bench: Bench) -> None:
    bench.start(radio={"wired": True})
    assert bench.radio is not None and bench.radio.wired_mac is not None
    request = await bench.token()
    async with await bench.portal() as portal:
        info = (await portal.get("/board_info.json")).json()
        assert {"name": "eth", "mac": bench.radio.wired_mac}.items() <= info["ifs"][1].items()
        query = config_query(request["token"], ssid="", password="") + "&if=eth"
        assert (await portal.get("/config?" + query)).status_code == 200
    await bench.state(State.RUNNING)
    stored = await bench.committed()
    assert stored.networks[0].wired and stored.is_configured


async def test_ethernet_without_a_cable_says_so(bench: Bench) -> None:
    agent = bench.start(radio={"wired": True, "cable": False})
    request = await bench.token()
    async with await bench.portal() as portal:
        query = config_query(request["token"], ssid="", password="") + "&if=eth"
        assert (await portal.get("/config?" + query)).status_code == 200
        async with asyncio.timeout(10):
            while agent.last_error != 721:
                await asyncio.sleep(0.01)
    assert agent.state in (State.WAIT_CONFIG, State.CONFIGURING)


async def test_no_ethernet_interface_is_a_clear_refusal(bench: Bench) -> None:
    bench.start()
    request = await bench.token()
    async with await bench.portal() as portal:
        info = (await portal.get("/board_info.json")).json()
        assert [i["name"] for i in info["ifs"]] == ["wifi"]
        query = config_query(request["token"], ssid="", password="") + "&if=eth"
        reply = await portal.get("/config?" + query)
    assert reply.status_code == 500
    assert reply.json()["detail"] == "if: this device has no Ethernet interface"
