"""Why a WPA join failed, from wpa_supplicant itself (``fi.w1.wpa_supplicant1`` on D-Bus).

NetworkManager reports a wrong WPA2 password within seconds (reason 7, no secrets), but a wrong
WPA3-SAE password (and a wrong password against a WPA2/WPA3 transition network, where the
supplicant picks SAE) only after its 25 s supplicant timeout, as reason 53, "SSID not found"
(measured on the real stack: docs/device.md); a WPA-Enterprise EAP server refusing the password
is reported ~22 s after it did. The access point said it earlier and plainly: it rejected the
SAE authentication (wpa_supplicant publishes the status code as its interface's
``AuthStatusCode`` property) or deauthenticated with reason 23 (``DisconnectReason``).
``wait_activated`` follows NM's activation as ``NmClient.wait_activated`` does and ends it as a
wrong password on such a rejection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

from dbus_fast import Message
from dbus_fast.errors import DBusError

from wifiprov.linux.networkmanager import (
    DBUS,
    PROPERTIES,
    ActivationFailed,
    NmClient,
    NmError,
    WifiDevice,
)
from wifiprov.linux.nm_settings import REASON_NO_SECRETS, Failure

log = logging.getLogger(__name__)

SUPPLICANT = "fi.w1.wpa_supplicant1"
SUPPLICANT_PATH = "/fi/w1/wpa_supplicant1"
I_INTERFACE = SUPPLICANT + ".Interface"

# IEEE 802.11 status codes an access point answers a bad password with during authentication:
# 1 (hostapd's answer to an SAE confirm that does not verify), 15 (challenge failure), 123
# (unknown SAE password identifier). Codes that are steps of a good SAE exchange (76 anti-
# clogging token, 77 group not supported, 126 hash-to-element) are not rejections.
WRONG_PASSWORD_STATUS = {1, 15, 123}
# The deauthentication reason a WPA-Enterprise network gives when its EAP server refused the
# identity or password (IEEE 802.11 reason 23, "IEEE 802.1X authentication failed"): NM says so
# only after its supplicant timeout, ~22 s later.
EAP_FAILED_REASON = 23

_MATCH = (
    f"type='signal',sender='{SUPPLICANT}',interface='{PROPERTIES}',member='PropertiesChanged',"
    f"arg0='{I_INTERFACE}'"
)
_watching: weakref.WeakSet[NmClient] = weakref.WeakSet()  # clients that get these signals


async def interface_path(client: NmClient, interface: str) -> str | None:
    """wpa_supplicant's object for ``interface`` (None when it has none, or is not on the bus),
    with its property changes delivered to ``client``'s listeners from now on."""
    try:
        if client not in _watching:
            await client.call("/org/freedesktop/DBus", DBUS, "AddMatch", "s", [_MATCH],
                              destination=DBUS)  # fmt: skip
            _watching.add(client)
        body = await client.call(
            SUPPLICANT_PATH, SUPPLICANT, "GetInterface", "s", [interface], destination=SUPPLICANT
        )
    except (DBusError, NmError) as exc:
        log.debug("no wpa_supplicant interface for %s: %s", interface, exc)
        return None
    return str(body[0])


def rejection(msg: Message, path: str) -> str | None:
    """How the access point rejected the password, when ``msg`` says it did, else None."""
    if msg.path != path or msg.member != "PropertiesChanged" or msg.interface != PROPERTIES:
        return None
    if not msg.body or msg.body[0] != I_INTERFACE:
        return None
    status = msg.body[1].get("AuthStatusCode")
    if status is not None and int(status.value) in WRONG_PASSWORD_STATUS:
        return f"authentication status {int(status.value)}"
    reason = msg.body[1].get("DisconnectReason")
    if reason is not None and int(reason.value) == EAP_FAILED_REASON:
        return f"802.1X authentication failed, reason {EAP_FAILED_REASON}"
    return None


async def wait_activated(
    client: NmClient,
    device: WifiDevice,
    active: str,
    queue: asyncio.Queue[Message],
    supplicant: str | None,
) -> None:
    """``client.wait_activated``, ended by ``ActivationFailed(AUTH)`` as soon as wpa_supplicant's
    interface ``supplicant`` (from ``interface_path``, taken before activating) reports that the
    access point rejected the password. The caller bounds the wait."""
    if supplicant is None:
        await client.wait_activated(device, active, queue)
        return
    to_nm: asyncio.Queue[Message] = asyncio.Queue()

    async def sort() -> None:
        while True:
            msg = await queue.get()
            how = rejection(msg, supplicant)
            if how is not None:
                log.info("%s: the access point rejected the password (%s)", device.interface, how)
                raise ActivationFailed(
                    Failure.AUTH,
                    REASON_NO_SECRETS,
                    f"the access point rejected the password ({how})",
                )
            to_nm.put_nowait(msg)

    sorter = asyncio.ensure_future(sort())
    waiter = asyncio.ensure_future(client.wait_activated(device, active, to_nm))
    try:
        await asyncio.wait({sorter, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sorter, waiter):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    rejected = sorter.exception() if sorter.done() and not sorter.cancelled() else None
    if rejected is not None:
        raise rejected
    waiter.result()
