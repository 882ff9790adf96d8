"""Who holds a port: so "address already in use" can name the process to stop.

Reads /proc/net/{tcp,tcp6,udp,udp6} (the calling process's network namespace) for sockets bound
to the port, then finds the processes whose /proc/<pid>/fd link to those socket inodes. Without
root, other users' processes stay hidden: they show as "an unknown process".
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UNKNOWN", "port_in_use_message", "port_owners"]

UNKNOWN = "an unknown process"
_TCP_LISTEN = "0A"  # include/net/tcp_states.h: TCP_LISTEN
_HINTS = {
    53: "another dnsmasq, bind or systemd-resolved listening on every address often holds it",
    80: "a web server such as nginx, apache2 or lighttpd often holds it",
}


def _socket_inodes(port: int, proto: str, proc: Path) -> set[str]:
    """Inodes of the sockets bound to ``port``: listening for TCP, any state for UDP."""
    if proto not in ("tcp", "udp"):
        raise ValueError(f"protocol must be 'tcp' or 'udp', not {proto!r}")
    inodes: set[str] = set()
    for table in (proto, proto + "6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:  # no IPv6 in this kernel, or /proc not mounted
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) != port:
                continue
            if proto == "tcp" and state != _TCP_LISTEN:
                continue
            if inode != "0":  # 0: a socket in TIME_WAIT, owned by no one
                inodes.add(inode)
    return inodes


def _process_name(pid_dir: Path) -> str:
    try:
        return (pid_dir / "comm").read_text().strip() or "?"
    except OSError:
        return "?"


def port_owners(port: int, proto: str, *, proc: str = "/proc") -> list[str]:
    """Who holds ``port``: ["dnsmasq (pid 123)", ...]; [] when nothing is bound to it.

    A socket found with no visible owner gives ["an unknown process"].
    """
    root = Path(proc)
    inodes = _socket_inodes(port, proto, root)
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    owners: dict[int, str] = {}
    for pid_dir in root.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = os.listdir(pid_dir / "fd")
        except OSError:  # gone, or not ours to read
            continue
        for fd in fds:
            try:
                link = os.readlink(pid_dir / "fd" / fd)
            except OSError:
                continue
            if link in targets:
                pid = int(pid_dir.name)
                owners[pid] = f"{_process_name(pid_dir)} (pid {pid})"
                break
    return [owners[pid] for pid in sorted(owners)] or [UNKNOWN]


def port_in_use_message(address: str, port: int, proto: str, *, proc: str = "/proc") -> str:
    """A sentence for "address already in use": who holds the port, and what to do."""
    owners = port_owners(port, proto, proc=proc) or [UNKNOWN]
    where = f"port {port} on {address}" if proto == "tcp" else f"{proto} port {port} on {address}"
    hint = _HINTS.get(port)
    advice = f" ({hint})" if hint else ""
    return (
        f"{where} is already in use by {', '.join(owners)}: stop it or make it listen elsewhere"
        f"{advice}, then start again"
    )
