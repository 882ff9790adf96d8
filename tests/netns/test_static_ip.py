"""A static address, applied for real: `wifiprov device --radio nm` is given Edgent's ``ip``,
``mask``, ``gw`` and ``dns`` by a phone, NetworkManager (the mock of tests/nm, which puts a
manual address on the lab's "home" link as NM would) receives an ``ipv4.method manual``
profile, the device has that address and nothing else on the link, and it reaches the cloud
through that gateway: the cloud's address it is told (10.77.2.1, the cloud's "mobile" side) is
not on the home network, so only the default route through the gateway leads there.

The same over Ethernet (``if=eth``): the mock's wired device is the "home" link.
The world (lab, private system bus, mock NM, agent) is test_nm_device.py's.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from tests.netns import test_nm_device
from tests.netns.netlab import HOME_PASSWORD, HOME_SSID, Lab
from tests.netns.test_nm_device import WIFI, World, _open_ap_and_join_it_from_the_phone
from wifiprov.linux.nm_settings import dns_text

world = test_nm_device.world  # the fixture: lab, cloud, private bus, mock NM

STATIC_IP, MASK, PREFIX = "10.77.1.50", "255.255.255.0", 24
GATEWAY = Lab.CLOUD_HOME  # the home network's router (and its DNS)
CLOUD_FAR = Lab.CLOUD_MOBILE  # the cloud's address off the home network: via the gateway only


def _addresses(lab: Lab, link: str) -> list[str]:
    """The IPv4 addresses on ``link`` in the device ns (``-4 -j`` lists none: filter here)."""
    done = lab.run(lab.device, [lab.tools["ip"], "-j", "addr", "show", "dev", link], check=True)
    return [
        f"{a['local']}/{a['prefixlen']}"
        for entry in json.loads(done.stdout)
        for a in entry["addr_info"]
        if a.get("family") == "inet"
    ]


def _mac(lab: Lab, link: str) -> str:
    """``link``'s MAC in the device ns ("dev": ``home`` alone is a keyword of ``ip``)."""
    done = lab.run(lab.device, [lab.tools["ip"], "-j", "link", "show", "dev", link], check=True)
    return str(json.loads(done.stdout)[0]["address"]).lower()


def _default_route(lab: Lab) -> list[dict[str, Any]]:
    done = lab.run(
        lab.device, [lab.tools["ip"], "-j", "-4", "route", "show", "default"], check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _gateway_peers(lab: Lab) -> list[str]:
    """Who holds a TCP connection to the cloud's device gateway, as the cloud sees it."""
    done = lab.run(
        lab.cloud, ["ss", "-Htn", "state", "established", f"( sport = :{lab.GATEWAY_PORT} )"]
    )
    return [line.split()[-1] for line in done.stdout.splitlines() if line.strip()]


def test_static_address_is_applied_and_reaches_the_cloud_through_its_gateway(
    world: World,
) -> None:
    lab, nm = world.lab, world.nm
    nm.mock.SetIpLink(lab.device, "home")  # NM's manual addresses land on the real link
    assert _addresses(lab, "home") == [f"{lab.DEVICE_HOME}/24"]  # what DHCP gave before
    _open_ap_and_join_it_from_the_phone(world)

    request = lab.api("POST", f"/api/templates/{lab.template_id}/provisioning")
    query = urlencode(
        {
            "ssid": HOME_SSID,
            "pass": HOME_PASSWORD,
            "blynk": request["token"],
            "host": CLOUD_FAR,
            "port": lab.GATEWAY_PORT,
            "ip": STATIC_IP,
            "mask": MASK,
            "gw": GATEWAY,
            "dns": GATEWAY,
        }
    )
    reply = lab.http_get(lab.phone, f"http://blynk.setup/config?{query}")
    assert reply.get("status") == 200, f"{reply}{world.logs()}"

    # NM was given a manual IPv4 profile: that address, prefix, gateway and DNS; no DHCP.
    world.until(lambda: len(nm.added()) >= 2, "the agent to ask NM to join")
    station = nm.added()[1]
    assert station[WIFI]["ssid"] == HOME_SSID.encode()
    assert station["ipv4"]["method"] == "manual", station["ipv4"]
    assert station["ipv4"]["address-data"] == [{"address": STATIC_IP, "prefix": PREFIX}]
    assert station["ipv4"]["gateway"] == GATEWAY
    assert [dns_text(d) for d in station["ipv4"]["dns"]] == [GATEWAY]

    # The device comes online in the owner's account ...
    deadline = time.monotonic() + 90
    status: dict[str, Any] = {}
    while time.monotonic() < deadline and status.get("status") != "claimed":
        status = lab.api("GET", f"/api/provisioning/{request['id']}?wait=10")
    assert status.get("status") == "claimed", f"{status}{world.logs()}"

    # ... with exactly that address on its link and its default route through that gateway,
    # and the cloud sees it connect from that address (to its far side: routed, not on-link).
    assert _addresses(lab, "home") == [f"{STATIC_IP}/{PREFIX}"], world.logs()
    assert [(r.get("gateway"), r.get("dev")) for r in _default_route(lab)] == [(GATEWAY, "home")]
    world.until(
        lambda: any(peer.startswith(f"{STATIC_IP}:") for peer in _gateway_peers(lab)),
        f"a gateway connection from {STATIC_IP}",
    )
    assert all(peer.startswith(f"{STATIC_IP}:") for peer in _gateway_peers(lab))


def test_ethernet_with_a_static_address_reaches_the_cloud(world: World) -> None:
    """``if=eth``: the device's wired interface (the mock's Ethernet device is the lab's "home"
    link, cable in) gets an ``802-3-ethernet`` profile with the static address, and the device
    comes online through it; no WiFi network is joined."""
    lab, nm = world.lab, world.nm
    home_mac = _mac(lab, "home")
    nm.mock.AddEthernet("home", "home", home_mac, True)
    nm.mock.SetIpLink(lab.device, "home")
    _open_ap_and_join_it_from_the_phone(world)
    info = lab.portal_json("/board_info.json")
    assert {"name": "eth", "mac": home_mac} in [
        {"name": i.get("name"), "mac": i.get("mac")} for i in info.get("ifs", [])
    ], info

    request = lab.api("POST", f"/api/templates/{lab.template_id}/provisioning")
    query = urlencode(
        {
            "if": "eth",
            "blynk": request["token"],
            "host": CLOUD_FAR,
            "port": lab.GATEWAY_PORT,
            "ip": STATIC_IP,
            "mask": MASK,
            "gw": GATEWAY,
        }
    )
    reply = lab.http_get(lab.phone, f"http://blynk.setup/config?{query}")
    assert reply.get("status") == 200, f"{reply}{world.logs()}"

    world.until(lambda: len(nm.added()) >= 2, "the agent to ask NM for the wired profile")
    wired = nm.added()[1]
    assert wired["connection"]["type"] == "802-3-ethernet", wired
    assert wired["connection"]["interface-name"] == "home"
    assert wired["ipv4"]["method"] == "manual"
    assert wired["ipv4"]["address-data"] == [{"address": STATIC_IP, "prefix": PREFIX}]
    assert wired["ipv4"]["gateway"] == GATEWAY
    assert [dns_text(d) for d in wired["ipv4"]["dns"]] == [GATEWAY]  # none given: the gateway

    deadline = time.monotonic() + 90
    status: dict[str, Any] = {}
    while time.monotonic() < deadline and status.get("status") != "claimed":
        status = lab.api("GET", f"/api/provisioning/{request['id']}?wait=10")
    assert status.get("status") == "claimed", f"{status}{world.logs()}"
    assert _addresses(lab, "home") == [f"{STATIC_IP}/{PREFIX}"], world.logs()
    world.until(
        lambda: any(peer.startswith(f"{STATIC_IP}:") for peer in _gateway_peers(lab)),
        f"a gateway connection from {STATIC_IP}",
    )
    assert all(s[WIFI]["mode"] == "ap" for s in nm.added() if WIFI in s)  # no WiFi joined
