"""Phone WiFi for a person who has already joined the device's access point by hand.

Nothing is switched: the device's network is whatever this machine is on now. The only access
point "in range" is the one whose portal answers (its ``/board_info.json`` names it), so the
flow finds it, "joins" it by checking the name, and talks to its portal.
"""

from __future__ import annotations

import httpx

from wifiprov.provisioner.wifi.base import JoinFailed

DEFAULT_PORTAL = "http://blynk.setup"  # the device's DNS answers this name on its AP


class NotOnDeviceNetwork(JoinFailed):
    """The device's portal does not answer: this machine is not on a device's network."""


class JoinedWifi:
    def __init__(
        self, portal: str = DEFAULT_PORTAL, *, prefix: str = "Blynk", timeout: float = 5.0
    ) -> None:
        self.portal = portal.rstrip("/")
        self.prefix = prefix  # the hotspot prefix, only to name the network in advice
        self.timeout = timeout

    async def access_points(self) -> list[str]:
        return [await self._ap_name()]

    async def join(self, ssid: str, passphrase: str | None = None) -> str:
        current = await self._ap_name()
        if current != ssid:
            raise JoinFailed(
                f"this machine is on '{current}', not '{ssid}': join '{ssid}' by hand first"
            )
        return self.portal

    async def leave(self) -> None:
        """Nothing to do: the person leaves the device's network (or the device closes it)."""

    async def _ap_name(self) -> str:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                reply = await client.get(f"{self.portal}/board_info.json")
                reply.raise_for_status()
                name = reply.json()["ssid"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise NotOnDeviceNetwork(
                f"you are not on a device's network ({self.portal} does not answer: "
                f"{exc or type(exc).__name__}): join the device's WiFi (named "
                f"'{self.prefix} …') first"
            ) from None
        if not isinstance(name, str) or not name:
            raise NotOnDeviceNetwork(f"{self.portal}/board_info.json names no access point")
        return name
