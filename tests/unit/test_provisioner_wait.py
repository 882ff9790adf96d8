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


class DevicePortal:
    """A device's portal over a real socket: /board_info.json and (wifiprov's agent only)
    /status.json."""

    def __init__(self, state: str | None) -> None:
        self.state = state

    async def handle(self, reader: Any, writer: Any) -> None:
        import json

        line = (await reader.readuntil(b"\r\n\r\n")).split(b" ")[1]
        if line == b"/board_info.json":
            status, body = 200, json.dumps({"board": "Lamp", "last_error": 0})
        elif line == b"/status.json" and self.state is not None:
            status, body = 200, json.dumps({"state": self.state, "last_error": 0})
        else:
            status, body = 404, "{}"
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            f"{body}".encode()
        )
        await writer.drain()
        writer.close()


class PortalWifi:
    def __init__(self, url: str) -> None:
        self.url = url

    async def join(self, ap: str, passphrase: str | None) -> str:
        return self.url

    async def leave(self) -> None:
        pass


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("CONNECTING_CLOUD", "still connecting after 1 s (its state: CONNECTING_CLOUD)"),
        ("WAIT_CONFIG", "back in setup mode without an error code"),
        (None, "back in setup mode without an error code"),  # Blynk's firmware: no /status.json
    ],
)
async def test_a_device_not_seen_in_time_says_whether_it_is_still_connecting(
    state: str | None, words: str
) -> None:
    import asyncio

    portal = DevicePortal(state)
    server = await asyncio.start_server(portal.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    events: list[Event] = []
    provisioner = Provisioner(
        FakeCloud(None, "pending"),  # type: ignore[arg-type]
        PortalWifi(url),  # type: ignore[arg-type]
        events.append,
        online_timeout=1.0,
    )
    async with server:
        with pytest.raises(ProvisioningFailed) as failed:
            await provisioner.wait_online({"id": 1}, "ap")
    assert words in failed.value.what, failed.value.what
