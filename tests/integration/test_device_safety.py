"""The device agent is never bricked: unverified and replaced configurations, a store it cannot
write, a phone that leaves, a task that dies. The sim radio and the real cloud, as a phone and a
provisioner would use them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.device_bench import DEVICE, PASSWORD, WRONG, Bench
from tests.integration.test_device_agent import config_query
from wifiprov.device import agent as agent_module
from wifiprov.device.link import CloudLink
from wifiprov.device.machine import State

# --- item 1: save=1 ----------------------------------------------------------------------------


async def test_unverified_saved_config_is_retried_with_the_ap_open_until_it_works(
    bench: Bench,
) -> None:
    agent = bench.start()
    request = await bench.token()
    async with await bench.portal() as portal:
        # The router's password is about to change to what the user typed: not yet.
        reply = await portal.get(
            "/config?" + config_query(request["token"], password="new pass 1", save="1")
        )
        assert reply.json() == {"status": "ok", "msg": "Configuration saved"}
    await bench.state(State.WAIT_CONFIG)
    assert agent.last_error == 722 and bench.air.ap(DEVICE) is not None  # AP open
    stored = bench.store.load().config
    assert not stored.is_configured and stored.candidate is not None
    # It keeps trying, the AP open all along.
    await bench.went_through(State.CONNECTING_NET, State.WAIT_CONFIG, since=bench.mark())
    assert bench.air.ap(DEVICE) is not None
    # A restart (or a power cut) does not close the AP on it either.
    await bench.stop()
    bench.start()
    await bench.state(State.CONNECTING_NET, State.WAIT_CONFIG)
    assert bench.air.ap(DEVICE) is not None
    await bench.state(State.WAIT_CONFIG)
    # The router gets the new password: the saved configuration works at its next try.
    bench.air.update_network(bench.home, password="new pass 1")
    await bench.state(State.RUNNING, timeout=20)
    stored = await bench.committed()
    assert stored.is_configured and stored.candidate is None
    assert stored.token == request["token"] and stored.networks[0].password == "new pass 1"
    assert await bench.claim_status(request) == "claimed"


async def test_a_restart_during_a_working_configs_retries_keeps_the_ap_closed(
    bench: Bench,
) -> None:
    """The rule's other side: a configuration that has worked is retried with the AP closed,
    as in Edgent (the router may just be rebooting)."""
    bench.start()
    request = await bench.token()
    async with await bench.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
    await bench.state(State.RUNNING)
    bench.air.update_network(bench.home, password="changed on the router")
    await bench.stop()
    bench.start()
    await bench.state(State.RETRY_WAIT)
    await asyncio.sleep(0.5)
    assert bench.agent is not None and bench.agent.state is not State.WAIT_CONFIG
    assert bench.air.ap(DEVICE) is None


# --- item 2: a second /config during the first ---------------------------------------------


async def test_second_config_during_a_slow_join_replaces_the_first(bench: Bench) -> None:
    """The issue's race: config 1 is joining (slowly) when config 2 arrives. Config 2 is the one
    tried, whole: its network and its token. Config 1's late success changes nothing."""
    agent = bench.start()
    assert bench.radio is not None
    bench.radio.held = PASSWORD  # config 1 (right password) joins slowly
    first, second = await bench.token(), await bench.token()
    async with await bench.portal() as portal:
        await portal.get("/config?" + config_query(first["token"]))
        await bench.radio.joining.wait()
        assert agent.state is State.CONNECTING_NET
        reply = await portal.get("/config?" + config_query(second["token"], password=WRONG))
        assert reply.status_code == 200
        bench.radio.release()  # config 1's join now succeeds, late
        await bench.state(State.WAIT_CONFIG)
    assert agent.last_error == 722  # config 2's outcome
    assert not bench.store.load().config.is_configured  # config 2 never worked: not committed
    assert await bench.claim_status(first) == "pending"  # token 1 never used
    assert await bench.claim_status(second) == "pending"


async def test_second_config_during_a_slow_join_wins_when_it_is_right(bench: Bench) -> None:
    agent = bench.start()
    assert bench.radio is not None
    bench.radio.held = WRONG
    first, second = await bench.token(), await bench.token()
    async with await bench.portal() as portal:
        await portal.get("/config?" + config_query(first["token"], password=WRONG))
        await bench.radio.joining.wait()
        await portal.get("/config?" + config_query(second["token"]))
        bench.radio.release()
        await bench.state(State.RUNNING)
    stored = await bench.committed()
    assert stored.token == second["token"] and stored.networks[0].password == PASSWORD
    assert agent.last_error == 0 and await bench.claim_status(first) == "pending"


async def test_second_config_while_logging_in_replaces_the_first(
    bench: Bench, silent_cloud: int
) -> None:
    bench.start()
    first, second = await bench.token(), await bench.token()
    async with await bench.portal() as portal:
        await portal.get(
            "/config?" + config_query(first["token"], host="127.0.0.1", port=str(silent_cloud))
        )
        await bench.state(State.CONNECTING_CLOUD)
        reply = await portal.get("/config?" + config_query(second["token"]))
        assert reply.status_code == 200
        await bench.state(State.RUNNING)
    stored = await bench.committed()
    assert stored.token == second["token"] and stored.port == bench.cloud.gateway[1]
    assert await bench.claim_status(first) == "pending"


async def test_config_is_refused_once_a_configuration_works(bench: Bench) -> None:
    bench.start()
    first, second = await bench.token(), await bench.token()
    async with await bench.portal() as portal:
        await portal.get("/config?" + config_query(first["token"]))
        await bench.state(State.RUNNING)
        reply = await portal.get("/config?" + config_query(second["token"]))  # AP lingering
        assert reply.status_code == 409
        assert "not in provisioning mode (RUNNING)" in reply.json()["msg"]
    assert (await bench.committed()).token == first["token"]


# --- item 3: a task that dies -----------------------------------------------------------------


async def test_a_dying_cloud_task_is_logged_and_the_device_reconnects(
    bench: Bench, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    deaths = 0
    real_run = CloudLink.run

    async def run_then_die(self: CloudLink) -> str:
        nonlocal deaths
        if deaths == 0:
            deaths += 1
            raise RuntimeError("a bug in a frame handler")
        return await real_run(self)

    monkeypatch.setattr(CloudLink, "run", run_then_die)
    agent = bench.start()
    request = await bench.token()
    async with await bench.portal() as portal:
        await portal.get("/config?" + config_query(request["token"]))
    with caplog.at_level(logging.INFO, "wifiprov.device"):
        await bench.state(State.RUNNING)
        async with asyncio.timeout(10):  # the dead task became a lost link, then a new login
            while agent.machine.ctx.history[-3:] != ["RUNNING", "CONNECTING_CLOUD", "RUNNING"]:
                await asyncio.sleep(0.01)
    assert "the cloud task died (RuntimeError('a bug in a frame handler'))" in caplog.text
    assert "left b'Home WiFi'" not in caplog.text  # only the cloud connection was dropped
    assert agent.link is not None and deaths == 1


async def test_the_supervisor_restarts_a_dead_effects_loop(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    agent = bench.start()
    await bench.state(State.WAIT_CONFIG)
    with caplog.at_level(logging.INFO, "wifiprov.device"):
        agent._supervised["effects"].cancel()  # a stand-in: it ends without being stopped
        await asyncio.sleep(0.05)
        assert "the effects task died" not in caplog.text  # cancelled: only on shutdown
    crashed = asyncio.Event()

    async def crash() -> None:
        crashed.set()
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, "wifiprov.device"):
        agent._supervise("effects", crash)
        await crashed.wait()
        await asyncio.sleep(0.05)
    assert "the effects task died (boom): restarting it in 1 s" in caplog.text


# --- item 4: a store that cannot be written -----------------------------------------------------


async def test_a_store_that_cannot_be_written_refuses_config_and_says_so(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    bench.store.path.mkdir()  # a directory where the file should be
    with caplog.at_level(logging.INFO, "wifiprov.device"):
        agent = bench.start()
        await bench.state(State.WAIT_CONFIG)
    assert "the configuration store is unusable" in caplog.text
    assert f"{bench.store.path} is a directory" in caplog.text
    request = await bench.token()
    async with await bench.portal() as portal:
        reply = await portal.get("/config?" + config_query(request["token"], save="1"))
        assert reply.status_code == 500
        assert reply.json()["msg"] == (
            f"the device cannot save a configuration: {bench.store.path} is a directory"
        )
        status = (await portal.get("/status.json")).json()
        assert status["store_problem"] == f"{bench.store.path} is a directory"
    assert agent.state in (State.WAIT_CONFIG, State.CONFIGURING)
    assert await bench.claim_status(request) == "pending"
    # Fixed while running: the next /config is taken.
    bench.store.path.rmdir()
    async with await bench.portal() as portal:
        reply = await portal.get("/config?" + config_query(request["token"]))
        assert reply.status_code == 200
    await bench.state(State.RUNNING)


# --- item 5: the phone leaves ------------------------------------------------------------------


async def test_configuring_returns_to_wait_config_when_the_phone_leaves(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "CLIENT_POLL", 0.05)
    bench.start()
    async with await bench.portal() as portal:
        await portal.get("/board_info.json")
    await bench.state(State.CONFIGURING)
    await asyncio.sleep(0.2)
    assert bench.agent is not None and bench.agent.state is State.CONFIGURING  # still there
    bench.phone.leave()
    await bench.state(State.WAIT_CONFIG, timeout=5)


async def test_configuring_ends_when_the_app_stops_talking(bench: Bench) -> None:
    bench.start(idle_timeout=0.5)
    async with await bench.portal() as portal:
        await portal.get("/board_info.json")
        for _ in range(4):  # requests keep it alive
            await asyncio.sleep(0.3)
            await portal.get("/status.json")
            assert bench.agent is not None and bench.agent.state is State.CONFIGURING
        await bench.state(State.WAIT_CONFIG, timeout=5)  # then silence: the app is gone


# --- the acceptance walk: kill and restart in every state -------------------------------------


async def kill(b: Bench) -> None:
    """Power loss: the agent's process ends at once (no clean-up runs) and its AP vanishes."""
    assert b.agent is not None and b._task is not None
    b.agent.dispatch = lambda event: None  # type: ignore[method-assign]  # nothing runs any more
    tasks = [b._task, b.agent._net_task, b.agent._cloud_task, *b.agent._supervised.values()]
    for task in tasks:
        if task is not None:
            task.cancel()
    for handle in b.agent._timers.values():
        handle.cancel()
    await asyncio.sleep(0)
    assert b.radio is not None
    await b.radio.close()  # the AP and the station vanish with the power
    b.agent = None
    b._task = None


async def ap_comes_back(b: Bench) -> None:
    async with asyncio.timeout(10):
        while b.air.ap(DEVICE) is None or b.air.ap(DEVICE).portal is None:  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
    async with await b.portal() as portal:  # HEAD: answered, and the state stays as it is
        assert (await portal.head("/board_info.json")).status_code == 200
    b.phone.leave()


Step = Callable[[Bench, httpx.AsyncClient], Any]


async def test_kill_and_restart_in_every_state(bench: Bench, silent_cloud: int) -> None:
    """Walk the agent through each state with a failing, an unverified and a working
    configuration; kill it there; start it again on its store. Whenever no configuration has
    worked yet, the AP comes back."""
    b = bench
    tokens = [await b.token() for _ in range(3)]
    worked = False

    async def restart() -> None:
        await kill(b)
        b.start()
        if not worked:
            await ap_comes_back(b)

    async def send(query: str) -> None:
        async with await b.portal() as portal:
            assert (await portal.get("/config?" + query)).status_code == 200

    b.start()
    await b.state(State.WAIT_CONFIG)
    await restart()  # WAIT_CONFIG, nothing stored
    async with await b.portal() as portal:
        await portal.get("/board_info.json")
    await b.state(State.CONFIGURING)
    await restart()  # CONFIGURING
    assert b.radio is not None
    b.radio.held = WRONG
    await send(config_query(tokens[0]["token"], password=WRONG))  # failing, not saved
    await b.radio.joining.wait()
    assert b.agent is not None and b.agent.state is State.CONNECTING_NET
    await restart()  # CONNECTING_NET with a failing config
    assert b.store.load().config.candidate is None
    b.radio.held = WRONG
    await send(config_query(tokens[0]["token"], password=WRONG, save="1"))  # unverified
    await b.radio.joining.wait()
    await restart()  # CONNECTING_NET with an unverified config: tried again, AP open
    await b.went_through(State.CONNECTING_NET, State.WAIT_CONFIG)
    await restart()  # WAIT_CONFIG between attempts of the unverified config
    await send(config_query(tokens[1]["token"], host="127.0.0.1", port=str(silent_cloud), save="1"))
    await b.state(State.CONNECTING_CLOUD)
    await restart()  # CONNECTING_CLOUD with an unverified config (the cloud does not answer)
    await b.state(State.CONNECTING_CLOUD)
    await b.state(State.WAIT_CONFIG)  # its attempt failed: the AP is open
    assert b.air.ap(DEVICE) is not None
    await send(config_query(tokens[2]["token"]))  # a working config
    await b.state(State.RUNNING)
    worked = True
    await restart()  # RUNNING
    await b.state(State.RUNNING)
    b.air.set_faults(b.home, not_found=True)  # the router is switched off
    await b.state(State.RETRY_WAIT)
    await restart()  # RETRY_WAIT of a working config: it keeps trying it
    await b.state(State.RETRY_WAIT)
    b.air.set_faults(b.home, not_found=False)
    await b.state(State.RUNNING)
    stored = await b.committed()
    assert stored.is_configured and stored.token == tokens[2]["token"]
