"""The phone's WiFi in the sim air: devices' APs are files, their portals loopback ports."""

from __future__ import annotations

from wifiprov.provisioner.wifi.base import JoinFailed
from wifiprov.sim.air import Air
from wifiprov.sim.phone import JoinError, SimPhone


class SimPhoneWifi:
    def __init__(self, air: Air, name: str = "provisioner", join_timeout: float = 10.0) -> None:
        self.phone = SimPhone(air, name)
        self.join_timeout = join_timeout

    async def access_points(self) -> list[str]:
        return sorted(ap.ssid for ap in self.phone.list_aps())

    async def join(self, ssid: str, passphrase: str | None = None) -> str:
        try:
            return await self.phone.join(ssid, passphrase, timeout=self.join_timeout)
        except JoinError as exc:
            raise JoinFailed(str(exc)) from None

    async def leave(self) -> None:
        self.phone.leave()
