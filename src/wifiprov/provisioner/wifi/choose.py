"""Which phone WiFi backend this machine has, when ``provision`` is not told (``--wifi``)."""

from __future__ import annotations

import asyncio


async def networkmanager_missing(timeout: float = 3.0) -> str | None:
    """None when NetworkManager answers on the system D-Bus and manages a WiFi device;
    otherwise why not, in words."""
    try:
        from wifiprov.linux.networkmanager import NmClient
    except ImportError as exc:  # dbus-fast missing: not a Linux install with NM support
        return f"the NetworkManager backend is not available ({exc})"
    try:
        async with asyncio.timeout(timeout):
            client = await NmClient.open()
            try:
                await client.wifi_device(None)
            finally:
                client.close()
    except TimeoutError:
        return f"the system D-Bus did not answer within {timeout:.0f} s"
    except Exception as exc:  # NetworkManagerUnavailable, NmError (no WiFi device) ...
        return str(exc) or type(exc).__name__
    return None
