"""Which host name devices are told to use, chosen so a device on the LAN can reach it.

A device learns the cloud's host from its setup link and keeps it: a name it cannot resolve (the
machine's short host name, which home routers rarely serve) or a loopback address sends every
device nowhere, silently. The default is the machine's fully qualified name when it has one that
resolves to an address other than loopback, else the LAN address of the default route.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

Resolve = Callable[[str], list[str]]


def _resolve(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def route_address() -> str | None:
    """The local IPv4 address of the default route (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the routing table is consulted
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address == "0.0.0.0" else address


def default_public_host(
    fqdn: Callable[[], str] = socket.getfqdn,
    resolve: Resolve = _resolve,
    route: Callable[[], str | None] = route_address,
) -> str:
    name = fqdn()
    if "." in name and any(not _loopback(a) for a in resolve(name)):
        return name
    return route() or "127.0.0.1"


def warning(host: str, resolve: Resolve = _resolve) -> str | None:
    """Why devices may not reach ``host``, or None when it looks reachable."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host:
            return (
                f"'{host}' is a bare host name: devices on a home network usually cannot resolve "
                "it; give --public-host a full name or an IP address they can reach"
            )
        if not resolve(host):
            return f"'{host}' does not resolve here: devices will not find it either"
        return None
    if address.is_loopback:
        return (
            f"{host} is this machine's loopback address: only programs on this machine (the sim "
            "radio, the demo) can reach it; give --public-host the LAN address for real devices"
        )
    if address.is_unspecified:
        return f"{host} is no address a device can connect to: give --public-host"
    return None


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True
