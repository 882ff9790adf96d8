"""DHCP and DNS on the access point: the dnsmasq that NetworkManager's shared mode starts.

We write no DHCP server. NM starts dnsmasq for an ``ipv4.method shared`` connection and makes it
read every file in ``/etc/NetworkManager/dnsmasq-shared.d``; the agent puts ``shared_snippet``
there. ``nm_like_command`` rebuilds NM's command line (``create_dm_cmd_line`` in
src/core/dnsmasq/nm-dnsmasq-manager.c) so the netns tests run dnsmasq the way a device does.
Pure: text and argv out, no I/O.
"""

from __future__ import annotations

import ipaddress

__all__ = ["SETUP_NAME", "SNIPPET_NAME", "dhcp_range", "nm_like_command", "shared_snippet"]

SETUP_NAME = "blynk.setup"  # the name the provisioner and people type to reach the portal
SNIPPET_NAME = "wifiprov.conf"  # the file name the agent uses inside dnsmasq-shared.d
NM_CONF_DIR = "/etc/NetworkManager/dnsmasq-shared.d"

# RFC 8910 moved the captive-portal URI from DHCP option 160 (RFC 7710, clashed) to 114.
CAPTIVE_PORTAL_OPTION = 114


def shared_snippet(*, address: str = "192.168.4.1", captive: bool) -> str:
    """The dnsmasq-shared.d text for an AP whose portal is at ``address``.

    Captive: every name resolves to the portal, so phones' connectivity probes land on it and
    they open the setup page; DHCP option 114 names the portal for phones that read it.
    Not captive: only ``blynk.setup`` (and names under it) resolve to the portal; the rest is
    forwarded upstream as NM's dnsmasq normally does. Either way ``blynk.setup``'s AAAA is
    answered locally (no data), never forwarded.
    """
    ip = str(ipaddress.IPv4Address(address))  # refuse anything that is not an address
    lines = [
        "# Written by wifiprov: DNS for the device's setup access point.",
        f"address=/{SETUP_NAME}/{ip}",  # dnsmasq: the name and its subdomains
        # Answer its AAAA locally (no data) instead of forwarding it: with no upstream yet,
        # a forwarded AAAA stalls phones' dual-stack lookups (captive too: /#/ forwards AAAA).
        f"local=/{SETUP_NAME}/",
    ]
    if captive:
        lines += [
            f"address=/#/{ip}",
            f'dhcp-option={CAPTIVE_PORTAL_OPTION},"http://{ip}/"',
        ]
    return "\n".join(lines) + "\n"


def dhcp_range(address: str, prefix: int = 24) -> tuple[str, str]:
    """The lease range NM picks for ``address/prefix`` (nm_dnsmasq_utils_get_range).

    Larger subnets are treated as a /24; the bigger side of the host is handed out, less up to
    8 reserved addresses next to it: 192.168.4.1/24 gives 192.168.4.10 .. 192.168.4.254.
    """
    if prefix > 30:
        raise ValueError(f"address prefix {prefix} is too small for DHCP")
    prefix = max(prefix, 24)
    host = int(ipaddress.IPv4Address(address))
    net = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
    low, high = int(net.network_address), int(net.broadcast_address)
    if host == low:
        host += 1
    elif host == high:
        host -= 1
    first, last = low + 1, high - 1
    mid = low | (((first + last) // 2) & ~int(net.netmask) & 0xFFFFFFFF)
    if host > mid:
        last = host - 1 - min((host - first) // 10, 8)
        first = max(first, last - 256 if last > 256 else 0)
    else:
        first = host + 1 + min((last - host) // 10, 8)
        last = min(last, first + 256)
    return str(ipaddress.IPv4Address(first)), str(ipaddress.IPv4Address(last))


def nm_like_command(
    *,
    interface: str,
    address: str,
    conf_dir: str,
    lease_file: str,
    pid_file: str,
    prefix: int = 24,
) -> list[str]:
    """The argv NetworkManager (1.42, Debian bookworm) runs for a shared connection.

    ``interface`` only names the lease file in NM; dnsmasq itself binds by ``--listen-address``.
    NM adds ``--dhcp-option=option:router`` only when the AP has a default route (it does not)
    and ``--log-dhcp --log-queries`` only when tracing; newer NM dropped ``--dhcp-lease-max=50``.
    """
    del interface  # NM derives the lease file name from it; callers pass lease_file directly
    first, last = dhcp_range(address, prefix)
    return [
        "dnsmasq",
        "--conf-file=/dev/null",
        "--no-hosts",
        "--keep-in-foreground",
        "--bind-interfaces",
        "--except-interface=lo",
        "--clear-on-reload",
        "--strict-order",
        f"--listen-address={address}",
        f"--dhcp-range={first},{last},60m",
        "--dhcp-lease-max=50",
        f"--dhcp-leasefile={lease_file}",
        f"--pid-file={pid_file}",
        f"--conf-dir={conf_dir}",
    ]
