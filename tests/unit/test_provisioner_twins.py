"""Two devices in setup mode under one name (their codes collide): the provisioner says so before
it sends anything, instead of configuring whichever one the radio joins."""

from __future__ import annotations

import pytest

from wifiprov.provisioner.flow import Choices, Event, Provisioner, ProvisioningFailed

TWIN = "Blynk Lamp-W8FH"


class Air:
    def __init__(self, aps: list[str]) -> None:
        self.aps, self.joined = aps, False

    async def access_points(self) -> list[str]:
        return self.aps

    async def join(self, ssid: str, passphrase: str | None = None) -> str:
        self.joined = True
        return "http://192.168.4.1"


def flow(air: Air, events: list[Event]) -> Provisioner:
    return Provisioner(None, air, events.append)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", [None, TWIN])  # found by the template's pattern, or named
async def test_two_devices_of_one_name_are_refused_before_joining(device: str | None) -> None:
    air = Air(["Home", TWIN, TWIN])
    with pytest.raises(ProvisioningFailed) as failed:
        await flow(air, []).find_device(Choices(device=device), "Blynk", "Lamp")
    assert f"2 devices in setup mode are named '{TWIN}'" in failed.value.what
    assert "out of setup mode" in failed.value.todo
    assert not air.joined


async def test_a_device_beside_a_twin_of_another_name_is_found() -> None:
    events: list[Event] = []
    air = Air(["Blynk Lamp-0W8N", TWIN, TWIN])
    chosen = await flow(air, events).find_device(Choices(device="Blynk Lamp-0W8N"), "Blynk", "Lamp")
    assert chosen == "Blynk Lamp-0W8N" and events[-1].step == "find"
