"""A sim phone: sees the access points sim devices open in the air, and "joins" one.

Joining gives the base URL of the device's portal (``http://127.0.0.1:PORT``): what a real phone
reaches at http://192.168.4.1 once on the device's AP. A provisioner's sim WiFi backend uses it as
the base URL of its HTTP client. The phone appears in the air as a station of that AP (the device
counts it as a client) until it leaves, or the AP goes away.
"""

from __future__ import annotations

import asyncio

from wifiprov.sim.air import AccessPoint, Air, Station, address_in, derived_mac


class JoinError(Exception):
    """Joining an access point failed; ``reason`` is ``not_found``, ``invalid_credentials`` or
    ``timeout`` (the AP is there, its portal is not listening yet)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SimPhone:
    """A phone named ``name`` (unique in the air, like every station)."""

    def __init__(self, air: Air, name: str = "phone", mac: str | None = None) -> None:
        self.air = air
        self.name = name
        self.mac = mac or derived_mac(f"phone:{name}")

    def list_aps(self) -> list[AccessPoint]:
        """The access points sim devices have open now."""
        return self.air.aps()

    async def join(
        self, ap_ssid: str, passphrase: str | None = None, *, timeout: float = 10.0
    ) -> str:
        """Join the AP named ``ap_ssid`` and return its portal's base URL.

        Waits (at most ``timeout`` seconds) for the AP to appear and for its portal to listen."""
        feed = self.air.changes(("aps", None))
        try:
            async with asyncio.timeout(timeout):
                while (ap := self._find(ap_ssid)) is None or ap.portal_url is None:
                    await feed.wait()
        except TimeoutError:
            if self._find(ap_ssid) is None:
                raise JoinError("not_found", f"no access point named {ap_ssid!r}") from None
            raise JoinError("timeout", f"{ap_ssid!r} has no portal listening") from None
        finally:
            feed.close()
        if not ap.open and passphrase != ap.passphrase:
            raise JoinError("invalid_credentials", f"{ap_ssid!r} rejected the passphrase")
        ip = address_in("192.168.4", f"{self.name}@{ap.device}")
        station = Station(self.name, self.mac, ip, ap.ssid.encode(), ap.bssid, ap=ap.device)
        self.air.record_station(station)
        return ap.portal_url

    def leave(self) -> None:
        """Leave the AP it joined (nothing happens when it joined none)."""
        self.air.remove_station(self.name)

    def joined(self) -> AccessPoint | None:
        """The AP it is on now: None when it never joined, left, or the AP stopped."""
        station = self.air.station(self.name)
        if station is None or station.ap is None:
            return None
        return self.air.ap(station.ap)

    def _find(self, ssid: str) -> AccessPoint | None:
        return next((ap for ap in self.air.aps() if ap.ssid == ssid), None)
