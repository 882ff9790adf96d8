"""The dnsmasq snippet and NM's command line (pure), and dnsmasq's own syntax check of the text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from wifiprov.device.radio.dnsmasq import dhcp_range, nm_like_command, shared_snippet


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_captive_snippet_sends_every_name_to_the_portal_and_names_it_in_dhcp() -> None:
    assert _lines(shared_snippet(captive=True)) == [
        "address=/blynk.setup/192.168.4.1",  # its AAAA answered locally, never forwarded
        "local=/blynk.setup/",
        "address=/#/192.168.4.1",
        'dhcp-option=114,"http://192.168.4.1/"',
    ]


def test_setup_only_snippet_answers_blynk_setup_and_forwards_the_rest() -> None:
    assert _lines(shared_snippet(address="10.42.0.1", captive=False)) == [
        "address=/blynk.setup/10.42.0.1",
        "local=/blynk.setup/",
    ]


def test_snippet_refuses_what_is_not_an_address() -> None:
    with pytest.raises(ValueError):
        shared_snippet(address="192.168.4.1\naddress=/#/6.6.6.6", captive=False)


@pytest.mark.parametrize(
    ("address", "prefix", "expected"),
    [
        ("192.168.4.1", 24, ("192.168.4.10", "192.168.4.254")),  # NM on our AP address
        ("10.42.0.1", 24, ("10.42.0.10", "10.42.0.254")),  # NM's own default
        ("192.168.4.200", 24, ("192.168.4.1", "192.168.4.191")),  # upper half: lower range
        ("10.1.2.1", 16, ("10.1.2.10", "10.1.2.254")),  # bigger nets shrink to a /24
        ("192.168.4.0", 24, ("192.168.4.10", "192.168.4.254")),  # network address coerced
    ],
)
def test_dhcp_range_follows_networkmanager(
    address: str, prefix: int, expected: tuple[str, str]
) -> None:
    assert dhcp_range(address, prefix) == expected


def test_dhcp_range_refuses_tiny_subnets() -> None:
    with pytest.raises(ValueError):
        dhcp_range("192.168.4.1", 31)


def test_nm_like_command_is_networkmanagers() -> None:
    argv = nm_like_command(
        interface="wlan0",
        address="192.168.4.1",
        conf_dir="/etc/NetworkManager/dnsmasq-shared.d",
        lease_file="/var/lib/NetworkManager/dnsmasq-wlan0.leases",
        pid_file="/run/nm-dnsmasq-wlan0.pid",
    )
    assert argv == [
        "dnsmasq",
        "--conf-file=/dev/null",
        "--no-hosts",
        "--keep-in-foreground",
        "--bind-interfaces",
        "--except-interface=lo",
        "--clear-on-reload",
        "--strict-order",
        "--listen-address=192.168.4.1",
        "--dhcp-range=192.168.4.10,192.168.4.254,60m",
        "--dhcp-lease-max=50",
        "--dhcp-leasefile=/var/lib/NetworkManager/dnsmasq-wlan0.leases",
        "--pid-file=/run/nm-dnsmasq-wlan0.pid",
        "--conf-dir=/etc/NetworkManager/dnsmasq-shared.d",
    ]


@pytest.mark.parametrize("captive", [True, False])
def test_dnsmasq_accepts_the_generated_configuration(tmp_path: Path, captive: bool) -> None:
    dnsmasq = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    assert dnsmasq, "dnsmasq is needed for this test: apt-get install dnsmasq-base"
    (tmp_path / "wifiprov.conf").write_text(shared_snippet(captive=captive))
    argv = nm_like_command(
        interface="ap",
        address="192.168.4.1",
        conf_dir=str(tmp_path),
        lease_file=str(tmp_path / "leases"),
        pid_file=str(tmp_path / "pid"),
    )
    check = subprocess.run(
        [dnsmasq, *argv[1:], "--test"], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stderr
    assert "syntax check OK" in check.stderr
