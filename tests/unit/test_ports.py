"""Who holds a port, read from /proc, against sockets the test itself binds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wifiprov.linux.ports import UNKNOWN, port_in_use_message, port_owners

ME = f"(pid {os.getpid()})"


def test_a_listening_tcp_socket_names_this_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        owners = port_owners(port, "tcp")
    assert len(owners) == 1 and owners[0].endswith(ME), owners
    assert port_owners(port, "tcp") == []  # closed: nobody


def test_a_bound_udp6_socket_counts_and_tcp_does_not_see_it() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        assert port_owners(port, "udp")[0].endswith(ME)
        assert port_owners(port, "tcp") == []


def test_a_tcp_socket_that_only_connects_is_not_an_owner() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            client_port = client.getsockname()[1]
            assert port_owners(client_port, "tcp") == []


def test_another_process_is_named_with_its_pid() -> None:
    code = (
        "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen();"
        "print(s.getsockname()[1], flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        message = port_in_use_message("127.0.0.1", port, "tcp")
    finally:
        child.communicate("", timeout=10)
    assert f"port {port} on 127.0.0.1 is already in use by " in message
    assert f"(pid {child.pid})" in message and "stop it" in message


def test_a_socket_without_a_visible_owner_is_an_unknown_process(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt uid ...\n"
    # 192.168.4.1:80 listening (state 0A), inode 4242: the kernel's layout, fields 1, 3 and 9.
    row = "   0: 0104A8C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 4242 1\n"
    (tmp_path / "net" / "tcp").write_text(header + row)
    (tmp_path / "1" / "fd").mkdir(parents=True)
    os.symlink("socket:[777]", tmp_path / "1" / "fd" / "3")
    assert port_owners(80, "tcp", proc=str(tmp_path)) == [UNKNOWN]
    assert "in use by an unknown process" in port_in_use_message(
        "192.168.4.1", 80, "tcp", proc=str(tmp_path)
    )
    os.symlink("socket:[4242]", tmp_path / "1" / "fd" / "4")
    (tmp_path / "1" / "comm").write_text("nginx\n")
    assert port_owners(80, "tcp", proc=str(tmp_path)) == ["nginx (pid 1)"]


def test_udp_port_53_message_points_at_the_usual_suspects(tmp_path: Path) -> None:
    message = port_in_use_message("192.168.4.1", 53, "udp", proc=str(tmp_path))
    assert message.startswith("udp port 53 on 192.168.4.1 is already in use by an unknown")
    assert "dnsmasq" in message and "systemd-resolved" in message


def test_only_tcp_and_udp() -> None:
    with pytest.raises(ValueError):
        port_owners(80, "sctp")
