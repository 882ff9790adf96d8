"""Ping and reboot a device from the cloud, as Blynk's device menu does ("Ping", "Reboot").

What reaches the device, by protocol (docs/cloud.md §Ping and reboot):
- Blynk's MQTT API: ``downlink/ping`` at QoS 1 with an empty payload, answered by the client's
  PUBACK (Blynk's docs: "the client should automatically respond with an MQTT PUBACK packet");
  ``downlink/reboot`` with an empty payload.
- The Blynk protocol: reboot is INTERNAL ``dbg`` ``reboot`` (Blynk's firmware docs, "Reboot":
  ``BLYNK_WRITE(InternalPinDBG)`` with ``"reboot"``; Edgent's console command). Blynk's C++
  library answers a cloud's PING with a RESPONSE, but the gateway does not match responses to
  pings it sent: pinging a Blynk-protocol device is refused (409) with that reason.

Over the bus, as pin writes are: the API node asks ``DEVICE_ACTIONS`` ``{"device_id", "action",
"ping_id"}``; only the node holding the device's live connection replies (``mqtt_gateway.act``).
A ping's answer comes later, on ``ping_subject(ping_id)``: ``{"node", "acked", "rtt_ms"}`` when
the PUBACK arrives, or ``{"acked": false, "reason"}`` when the connection closes first; the
asking node subscribes to it before it asks.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from wifiprov.cloud import devices
from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.bus import Bus, Message
from wifiprov.cloud.db import Database
from wifiprov.cloud.errors import Invalid, NotDelivered

DEVICE_ACTIONS = "wifiprov.device.actions"
PING_TIMEOUT = 5.0  # seconds a ping waits for the device's acknowledgement, unless told
MAX_PING_TIMEOUT = 30.0


def ping_subject(ping_id: str) -> str:
    return f"wifiprov.device.pings.{ping_id}"


async def _ask(bus: Bus, row: Any, action: str, **extra: str) -> dict[str, Any]:
    """Ask the node holding the device to act (``devices.ask_holder``'s answer, with ``sent``)."""
    return await devices.ask_holder(
        bus,
        row,
        DEVICE_ACTIONS,
        {"action": action, **extra},
        "the device's connection refused it",
        keep=("sent",),
    )


async def ping(
    db: Database, bus: Bus, who: Principal, device_id: int, timeout: float = PING_TIMEOUT
) -> dict[str, Any]:
    """Send the device a ping and wait (up to ``timeout`` s) for its acknowledgement: ``acked``
    and ``rtt_ms`` (measured by the node holding the connection, from sending the ping to its
    PUBACK). Not delivered (offline, or refused) is a Conflict."""
    if not 0 < timeout <= MAX_PING_TIMEOUT:
        raise Invalid(f"timeout must be more than 0 and at most {MAX_PING_TIMEOUT:g} seconds")
    row = await devices.device_row(db, who, device_id, "operate")
    ping_id = secrets.token_hex(8)
    answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def on_answer(msg: Message) -> None:
        if not answer.done():
            answer.set_result(msg)

    subscription = await bus.subscribe(ping_subject(ping_id), on_answer)
    try:
        delivery = await _ask(bus, row, "ping", ping_id=ping_id)
        if not delivery["delivered"]:
            raise NotDelivered(
                f"{delivery['message']}: only an online device can be pinged", delivery
            )
        try:
            got: Message | None = await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            got = None
    finally:
        await subscription.unsubscribe()
    if got is None:
        message = f"sent; the device did not acknowledge it within {timeout:g} s"
        return {**delivery, "acked": False, "rtt_ms": None, "message": message}
    if not got.get("acked"):
        reason = str(got.get("reason") or "the device did not acknowledge it")
        return {**delivery, "acked": False, "rtt_ms": None, "message": reason}
    rtt = float(got.get("rtt_ms") or 0.0)
    message = f"the device acknowledged the ping in {rtt:.1f} ms"
    return {**delivery, "acked": True, "rtt_ms": rtt, "message": message}


async def reboot(db: Database, bus: Bus, who: Principal, device_id: int) -> dict[str, Any]:
    """Tell an online device to reboot (nothing is kept for later: not delivered is a
    Conflict). Whether it did shows as a new connection (``connected_at``)."""
    row = await devices.device_row(db, who, device_id, "manage")
    delivery = await _ask(bus, row, "reboot")
    if not delivery["delivered"]:
        raise NotDelivered(
            f"{delivery['message']}: it can only be told to reboot while online", delivery
        )
    return delivery
