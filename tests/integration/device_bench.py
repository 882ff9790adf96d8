"""A bench for device agent tests: the real cloud, the sim air, and an agent that can be killed
and started again on its store, with a radio whose joins can be held."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import RunningCloud
from tests.integration.support import provisioning_token
from wifiprov.device import machine as sm
from wifiprov.device.agent import Agent, AgentConfig
from wifiprov.device.machine import State
from wifiprov.device.radio.base import StationInfo
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore, StoredConfig
from wifiprov.sim.air import Air
from wifiprov.sim.phone import SimPhone

HOME = "Home WiFi"
PASSWORD = "correct horse"


DEVICE = "device-1"
WRONG = "not the password"


def quick_settings() -> sm.Settings:
    """The state machine's timers, short enough for tests on the sim air."""
    return sm.Settings(
        net_timeout=3,
        cloud_timeout=3,
        retry_base=0.05,
        retry_max=0.2,
        config_timeout=2,
        ap_linger=0.5,
    )


def thermostat_config(template_id: str, port: int, **extra: Any) -> AgentConfig:
    """An agent of a "Thermostat" template by Acme, for a cloud on 127.0.0.1:``port``."""
    return AgentConfig(
        template_id=template_id,
        template_name="Thermostat",
        vendor="Acme",
        host="127.0.0.1",
        port=port,
        port_ssl=None,
        machine=quick_settings(),
        **extra,
    )


class SlowRadio(SimRadio):
    """A sim radio whose joins with ``held`` as the password wait until ``release()``:
    a join scripted to be slow, so a test can act while the agent is in CONNECTING_NET."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: str | None = None
        self.joining = asyncio.Event()
        self._gate = asyncio.Event()

    def release(self) -> None:
        self._gate.set()

    async def connect(self, ssid: bytes, password: str, **kwargs: Any) -> StationInfo:
        if password == self.held:
            self.joining.set()
            await self._gate.wait()
        return await super().connect(ssid, password, **kwargs)


class Bench:
    """A cloud, the air, and a device agent that can be killed and started again on its store."""

    def __init__(self, cloud: RunningCloud, tmp: Path, template_id: str) -> None:
        self.cloud, self.tmp, self.template_id = cloud, tmp, template_id
        self.air = Air(tmp / "air")
        self.home = self.air.add_network(HOME, PASSWORD, rssi=-40).id
        self.store = ConfigStore(tmp / "device.json")
        self.phone = SimPhone(self.air)
        self.settings = sm.Settings(
            net_timeout=2,
            cloud_timeout=2,
            retry_base=0.05,
            retry_max=0.2,
            config_timeout=30,
            ap_linger=3,
            candidate_retry=1,
        )
        self.agent: Agent | None = None
        self.radio: SlowRadio | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, radio: dict[str, Any] | None = None, **settings: Any) -> Agent:
        config = AgentConfig(
            template_id=self.template_id,
            template_name="Thermostat",
            vendor="Acme",
            host="127.0.0.1",
            port=self.cloud.gateway[1],
            port_ssl=None,
            machine=sm.Settings(**{**self.settings.__dict__, **settings}),
        )
        self.radio = SlowRadio(self.air, DEVICE, mac="24:6f:28:aa:bb:cc", **(radio or {}))
        self.agent = Agent(config, self.radio, self.store)
        self._task = asyncio.create_task(self.agent.run())
        return self.agent

    async def stop(self) -> None:
        if self.agent is not None and self._task is not None:
            self.agent.stop()
            await asyncio.wait_for(self._task, 10)
            assert self.radio is not None
            await self.radio.close()

    async def state(self, *states: State, timeout: float = 15) -> None:
        assert self.agent is not None
        async with asyncio.timeout(timeout):
            while self.agent.state not in states:
                await asyncio.sleep(0.01)

    def mark(self) -> int:
        """A point in the agent's state history, for ``went_through``."""
        assert self.agent is not None
        return len(self.agent.machine.ctx.history)

    async def went_through(self, *states: State, since: int = 0, timeout: float = 15) -> None:
        """Wait until the agent has entered ``states`` in this order (not necessarily one right
        after the other) since ``since``: a state may last too short a time for polling."""
        wanted = [s.value for s in states]
        async with asyncio.timeout(timeout):
            while True:
                assert self.agent is not None
                seen = iter(self.agent.machine.ctx.history[since:])
                if all(state in seen for state in wanted):  # a subsequence, in order
                    return
                await asyncio.sleep(0.01)

    async def committed(self) -> StoredConfig:
        """The stored configuration once one has been committed (the store is written just
        after the state turns RUNNING)."""
        async with asyncio.timeout(10):
            while not (stored := self.store.load().config).is_configured:
                await asyncio.sleep(0.01)
        return stored

    async def portal(self) -> httpx.AsyncClient:
        assert self.agent is not None
        url = await self.phone.join(self.agent.ap_name, timeout=10)
        return httpx.AsyncClient(base_url=url, timeout=10)

    async def claim_status(self, request: dict[str, Any]) -> str:
        async with self.cloud.client(self.cloud.owner_token) as api:
            status: str = (await api.get(f"/api/provisioning/{request['id']}")).json()["status"]
            return status

    async def token(self) -> dict[str, Any]:
        return await provisioning_token(self.cloud, self.template_id)
