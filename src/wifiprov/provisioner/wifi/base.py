"""What the provisioner needs from the phone's (or laptop's) WiFi."""

from __future__ import annotations

from typing import Protocol


class JoinFailed(Exception):
    """The device's access point could not be joined (gone, wrong passphrase, timeout)."""


class PhoneWifi(Protocol):
    async def access_points(self) -> list[str]:
        """Names of the access points in range, one per access point: a name twice is two
        access points of that name (two devices whose names collide)."""
        ...

    async def join(self, ssid: str, passphrase: str | None = None) -> str:
        """Join ``ssid``; return the base URL of the device's portal (``http://192.168.4.1``
        on a real radio). Raises JoinFailed."""
        ...

    async def leave(self) -> None:
        """Back to the phone's normal network."""
        ...
