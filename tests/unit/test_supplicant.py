"""linux/supplicant.py without a bus: which wpa_supplicant signals end a join as a wrong password
(the real stack's answers are in tests/realradio)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from dbus_fast import Message, MessageType, Variant

from wifiprov.linux import supplicant
from wifiprov.linux.networkmanager import PROPERTIES, ActivationFailed, NmDevice
from wifiprov.linux.nm_settings import Failure

IFACE = "/fi/w1/wpa_supplicant1/Interfaces/1"
DEVICE = NmDevice("/org/freedesktop/NetworkManager/Devices/3", "wlan0", "02:00:00:00:00:00")


def changed(path: str, **props: Any) -> Message:
    body = [supplicant.I_INTERFACE, {k: Variant("i", v) for k, v in props.items()}, []]
    return Message(
        message_type=MessageType.SIGNAL, path=path, interface=PROPERTIES,
        member="PropertiesChanged", signature="sa{sv}as", body=body,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"AuthStatusCode": 1}, "authentication status 1"),  # SAE confirm did not verify
        ({"AuthStatusCode": 15}, "authentication status 15"),
        ({"DisconnectReason": 23}, "802.1X authentication failed, reason 23"),  # EAP refused
        ({"AuthStatusCode": 126}, None),  # SAE hash-to-element: a step of a good exchange
        ({"AuthStatusCode": 76}, None),  # anti-clogging token
        ({"AuthStatusCode": 0}, None),
        ({"DisconnectReason": 15}, None),  # WPA2's failure is NM's to report (reason 7)
    ],
)
def test_which_codes_are_a_rejected_password(props: dict[str, int], expected: str | None) -> None:
    assert supplicant.rejection(changed(IFACE, **props), IFACE) == expected


def test_another_interface_is_not_ours() -> None:
    assert supplicant.rejection(changed(IFACE + "0", AuthStatusCode=1), IFACE) is None


class Client:
    """NmClient's wait_activated: returns when told to."""

    def __init__(self) -> None:
        self.seen: list[Message] = []
        self.activated = asyncio.Event()

    async def wait_activated(self, device: NmDevice, active: str, queue: Any) -> None:
        while not self.activated.is_set():
            self.seen.append(await queue.get())


async def test_a_rejection_ends_the_wait_as_a_wrong_password() -> None:
    client, queue = Client(), asyncio.Queue[Message]()
    queue.put_nowait(changed(IFACE, AuthStatusCode=126))
    queue.put_nowait(changed(IFACE, AuthStatusCode=1))
    with pytest.raises(ActivationFailed) as caught:
        async with asyncio.timeout(5):
            await supplicant.wait_activated(client, DEVICE, "/a", queue, IFACE)  # type: ignore[arg-type]
    assert caught.value.failure is Failure.AUTH
    assert "rejected the password" in str(caught.value)


async def test_networkmanager_activating_ends_the_wait() -> None:
    client, queue = Client(), asyncio.Queue[Message]()
    client.activated.set()
    async with asyncio.timeout(5):
        await supplicant.wait_activated(client, DEVICE, "/a", queue, IFACE)  # type: ignore[arg-type]
