"""The laptop's WiFi through NetworkManager: join a device's access point, then come back.

``join`` first writes down the connection the WiFi device is on (its uuid) in ``nm-return.json``
(in ``$WIFIPROV_CONFIG_DIR`` or the user state directory), then activates a temporary profile
for the device's AP: volatile (NM forgets it once down, NM >= 1.16) where NM can, otherwise
deleted by ``leave``. ``leave`` reactivates the remembered connection, deletes the temporary one
and the file. If the provisioner dies in between (Ctrl-C, a crash), the file remains and
``restore_after_interruption()`` — which the CLI calls at start — does what ``leave`` would have.
The temporary profile never takes the default route, so a wired link keeps working meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from dbus_fast.errors import DBusError
from platformdirs import user_state_dir

from wifiprov.linux import nm_settings as nms
from wifiprov.linux import supplicant
from wifiprov.linux.networkmanager import ActivationFailed, NmClient, NmError, WifiDevice
from wifiprov.provisioner.wifi.base import JoinFailed

log = logging.getLogger(__name__)

OWNER = "provisioner"
STATE_NAME = "nm-return.json"
PORTAL_URL = "http://192.168.4.1"


def state_file(state_dir: str | os.PathLike[str] | None = None) -> Path:
    base = state_dir or os.environ.get("WIFIPROV_CONFIG_DIR") or user_state_dir("wifiprov")
    return Path(base) / STATE_NAME


class NmPhoneWifi:
    """The WiFi device ``interface`` (default: the first one NM manages) as the provisioner's
    "phone"."""

    def __init__(
        self,
        interface: str | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        join_timeout: float = 30.0,
        scan_timeout: float = 10.0,
        bus_address: str | None = None,
    ) -> None:
        self.interface = interface
        self.state = state_file(state_dir)
        self.join_timeout = join_timeout
        self.scan_timeout = scan_timeout
        self._bus_address = bus_address
        self._client: NmClient | None = None

    async def _ready(self) -> tuple[NmClient, WifiDevice]:
        if self._client is None or not self._client.running:
            if self._client is not None:
                self._client.close()
            self._client = await NmClient.open(self._bus_address)
        client = self._client
        device = await client.wifi_device(self.interface)
        await client.check_radio()
        return client, device

    async def access_points(self) -> list[str]:
        client, device = await self._ready()
        await client.request_scan(device, self.scan_timeout)
        aps = await client.access_points(device)
        return sorted(ap.ssid.decode("utf-8", "replace") for ap in aps if ap.ssid.strip(b"\0"))

    async def join(self, ssid: str, passphrase: str | None = None) -> str:
        try:
            client, device = await self._ready()
            state = _read(self.state) or await self._remember(client, device)
        except NmError as exc:
            raise JoinFailed(str(exc)) from None
        uuid = nms.new_uuid()
        state["temporary"].append(uuid)
        _write(self.state, state)  # before leaving the network, so a crash can come back
        settings = nms.station_settings(
            ssid.encode(),
            passphrase or "",
            key_mgmt="wpa-psk" if passphrase else None,
            owner=OWNER,
            uuid=uuid,
            interface=device.interface,
            never_default=True,
        )
        with client.listen() as queue:
            try:
                async with asyncio.timeout(self.join_timeout):
                    watch = await supplicant.interface_path(client, device.interface)
                    _, active, _ = await client.add_and_activate(settings, device, volatile=True)
                    await supplicant.wait_activated(
                        client, device, active, queue, watch if passphrase else None
                    )
            except (TimeoutError, NmError, DBusError) as exc:
                why = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                if isinstance(exc, ActivationFailed):
                    why = _failure_words(exc, passphrase)
                if passphrase:
                    why = why.replace(passphrase, "***")  # never a secret in a message
                await _restore(client, state, self.state)
                raise JoinFailed(f"could not join {ssid!r}: {why}") from None
        log.info("joined %r on %s", ssid, device.interface)
        return PORTAL_URL

    async def _remember(self, client: NmClient, device: WifiDevice) -> dict[str, Any]:
        current = await client.active_connection(device)
        previous = None
        if current is not None:
            props = current[1]
            previous = {"uuid": str(props.get("Uuid")), "id": str(props.get("Id"))}
        return {"interface": device.interface, "previous": previous, "temporary": []}

    async def leave(self) -> None:
        state = _read(self.state)
        if state is None:
            return
        client, _ = await self._ready()
        await _restore(client, state, self.state)

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


async def restore_after_interruption(
    state_dir: str | os.PathLike[str] | None = None, *, bus_address: str | None = None
) -> bool:
    """Return to the network a crashed or interrupted run left; True when there was one."""
    path = state_file(state_dir)
    state = _read(path)
    if state is None:
        return False
    log.warning("an earlier run left the WiFi on a device's access point: going back")
    client = await NmClient.open(bus_address)
    try:
        await _restore(client, state, path)
    finally:
        client.close()
    return True


async def _restore(client: NmClient, state: dict[str, Any], path: Path) -> None:
    """Back to ``state["previous"]``, then delete our temporary profiles and the state file."""
    device = await client.wifi_device(state.get("interface"))
    previous = state.get("previous")
    if previous:
        connection = await client.connection_by_uuid(previous["uuid"])
        if connection is None:
            log.warning("the connection %r to return to no longer exists", previous["id"])
        else:
            with client.listen() as queue:
                try:
                    async with asyncio.timeout(30):
                        active = await client.activate(connection, device)
                        await client.wait_activated(device, active, queue)
                    log.info("back on %r", previous["id"])
                except (TimeoutError, NmError, DBusError) as exc:
                    log.warning(
                        "could not return to %r (%s): `nmcli connection up %s` retries",
                        previous["id"],
                        exc,
                        previous["uuid"],
                    )
    for uuid in state.get("temporary", []):
        connection = await client.connection_by_uuid(uuid)  # volatile ones are already gone
        if connection is not None:
            await client.delete_own(connection, OWNER, uuid)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _failure_words(exc: ActivationFailed, passphrase: str | None) -> str:
    """Why NM could not join the device's AP, in words (the passphrase is the usual reason)."""
    if exc.failure is nms.Failure.AUTH:
        if passphrase:
            return "the device's access point rejected the passphrase (--ap-passphrase)"
        return "the device's access point needs a passphrase (--ap-passphrase)"
    if exc.failure is nms.Failure.NOT_FOUND:
        return f"no such access point in range ({nms.reason_text(exc.reason)})"
    return f"{nms.reason_text(exc.reason)} ({exc})"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    tmp.replace(path)
