"""The provisioner says "online" only when the cloud shows the device online (a claim alone is not
enough), waits for it with progress, and says exactly what it knows when it does not happen."""

from __future__ import annotations

from typing import Any

import pytest

from wifiprov.provisioner.flow import Event, Provisioner, ProvisioningFailed


class FakeCloud:
    def __init__(self, online_after: int | None, status: str = "claimed") -> None:
        self.online_after, self.status, self.reads = online_after, status, 0

    async def wait_for_claim(self, request_id: int, wait: float) -> dict[str, Any]:
        return {"status": self.status, "device_id": 7, "refused_reason": "firmware of TMPLb"}

    async def device(self, device_id: int) -> dict[str, Any]:
        self.reads += 1
        online = self.online_after is not None and self.reads > self.online_after
        return {"id": device_id, "name": "Lamp", "online": online}


def flow(cloud: FakeCloud, events: list[Event], timeout: float) -> Provisioner:
    return Provisioner(cloud, None, events.append, online_timeout=timeout)  # type: ignore[arg-type]


async def test_a_claimed_device_that_stays_offline_is_not_called_online() -> None:
    events: list[Event] = []
    with pytest.raises(ProvisioningFailed) as failed:
        await flow(FakeCloud(online_after=None), events, 1.0).wait_online({"id": 1}, "ap")
    steps = [e.step for e in events]
    assert "claimed" in steps and "online" not in steps, steps
    assert "device 7" in failed.value.what and "not online" in failed.value.what


async def test_the_provisioner_waits_for_online_after_the_claim() -> None:
    events: list[Event] = []
    cloud = FakeCloud(online_after=2)
    assert await flow(cloud, events, 10.0).wait_online({"id": 1}, "ap") == 7
    steps = [e.step for e in events]
    assert steps.index("claimed") < steps.index("online") and cloud.reads == 3


async def test_a_refused_claim_is_explained() -> None:
    events: list[Event] = []
    with pytest.raises(ProvisioningFailed) as failed:
        await flow(FakeCloud(None, "refused"), events, 5.0).wait_online({"id": 1}, "ap")
    assert "refused" in failed.value.what and "TMPLb" in failed.value.what
    assert failed.value.code == 703
