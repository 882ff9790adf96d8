"""The AP's network half on real sockets: DHCP and DNS from dnsmasq as NetworkManager runs it
(with our snippet), a phone with a real DHCP client, OS probes by name, port culprits, and the
lab cleaning up after itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns import netlab
from tests.netns.netlab import Lab, LabError

PROBES = [  # what Android, Apple and Windows fetch to decide "captive portal?"
    "http://connectivitycheck.gstatic.com/generate_204",
    "http://captive.apple.com/hotspot-detect.html",
    "http://www.msftconnecttest.com/connecttest.txt",
]


def named_python(lab: Lab, name: str) -> str:
    """A link to Python called ``name``: the process's comm (what port_owners shows) is then
    ``name``, like the real program a user would have to stop."""
    link = lab.tmp / name
    link.symlink_to(Path(sys.executable).resolve())
    return str(link)


def test_the_phone_gets_an_ap_address_and_the_portal_as_dns_by_dhcp(lab: Lab) -> None:
    lab.start_dnsmasq(captive=False)
    address = lab.dhcp()
    assert address.startswith(Lab.AP_PREFIX)
    assert 10 <= int(address.rsplit(".", 1)[1]) <= 254  # NM's range for 192.168.4.1/24
    assert "nameserver 192.168.4.1" in lab.phone_resolv_conf().splitlines()
    lease = lab.phone_lease.read_text()
    assert "option domain-name-servers 192.168.4.1;" in lease
    assert "captive-portal" not in lease  # not captive: no RFC 8910 option


def test_not_captive_only_blynk_setup_is_the_portal_the_rest_is_forwarded(lab: Lab) -> None:
    lab.start_dnsmasq(captive=False)
    lab.dhcp()
    assert lab.resolve(lab.phone, "blynk.setup") == [Lab.AP_ADDRESS]
    assert lab.resolve(lab.phone, "portal.blynk.setup") == [Lab.AP_ADDRESS]
    # Other names go to the home network's DNS (which answers UPSTREAM_ANSWER), not the portal.
    assert lab.resolve(lab.phone, "example.com") == [Lab.UPSTREAM_ANSWER]
    assert lab.resolve(lab.phone, "connectivitycheck.gstatic.com") == [Lab.UPSTREAM_ANSWER]


def test_captive_every_name_is_the_portal_and_dhcp_offers_option_114(lab: Lab) -> None:
    lab.start_dnsmasq(captive=True)
    lab.dhcp()
    for name in ("example.com", "captive.apple.com", "blynk.setup", "a.b.c.d.test"):
        assert lab.resolve(lab.phone, name) == [Lab.AP_ADDRESS], name
    assert 'option captive-portal "http://192.168.4.1/";' in lab.phone_lease.read_text()


def test_os_probe_urls_fetched_by_name_land_on_the_setup_page(lab: Lab) -> None:
    lab.start_dnsmasq(captive=True)
    lab.dhcp()
    lab.start_device()
    for url in PROBES:
        reply = lab.http_get(lab.phone, url)
        assert reply.get("status") == 302, (url, reply)
        assert reply["location"] == "http://192.168.4.1/", (url, reply)
    page = lab.http_get(lab.phone, "http://192.168.4.1/")
    assert page.get("status") == 200 and "<html" in page["body"].lower(), page


def test_port_80_taken_the_agent_names_the_culprit(lab: Lab) -> None:
    nginx = lab.spawn(
        lab.device,
        [named_python(lab, "nginx"), "-m", "http.server", "--bind", Lab.AP_ADDRESS, "80"],
        name="nginx",
    )
    lab._wait_bound(nginx, 80, "tcp", 15)
    device = lab.start_device(wait=False)
    try:
        device.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the agent kept running without its portal: {device.output()[-2000:]}")
    output = device.output()
    assert device.popen.returncode == 1, output
    assert f"port 80 on 192.168.4.1 is already in use by nginx (pid {nginx.pid})" in output, output
    assert "Traceback" not in output, output


def test_port_53_taken_dnsmasq_fails_and_the_culprit_is_named(lab: Lab) -> None:
    code = (
        "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"s.bind(('{Lab.AP_ADDRESS}',53)); sys.stdin.read()"
    )
    resolved = lab.spawn(
        lab.device,
        [named_python(lab, "systemd-resolve"), "-c", code],
        name="resolved",
        stdin=subprocess.PIPE,
    )
    lab._wait_bound(resolved, 53, "udp", 15)
    with pytest.raises(LabError) as failure:
        lab.start_dnsmasq(captive=True)
    message = str(failure.value)
    assert "Address already in use" in message or "address in use" in message.lower(), message
    assert (
        f"udp port 53 on 192.168.4.1 is already in use by systemd-resolve "
        f"(pid {resolved.pid})" in message
    ), message


def test_the_lab_leaves_nothing_behind(tmp_path: Path) -> None:
    with netlab.lab(tmp_path) as net:
        net.start_dnsmasq(captive=True)
        net.dhcp()  # leaves a dhclient daemon in the phone ns
        pids = [p.pid for p in net.processes]
        assert net.run(net.phone, ["true"]).returncode == 0
    assert netlab.leftovers(net) == []
    time.sleep(0)  # nothing to wait for: close() waited for every process
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
