"""The host devices are told to use: one a device on the LAN can reach, with a warning when it
looks unreachable (issue: the cloud told devices its short host name, "vm")."""

from __future__ import annotations

import pytest

from wifiprov.cloud import reach
from wifiprov.cloud.settings import CloudSettings, parse_address


def test_a_resolvable_full_name_is_preferred() -> None:
    host = reach.default_public_host(
        fqdn=lambda: "cloud.farm.example",
        resolve=lambda name: ["10.1.2.3"],
        route=lambda: "10.1.2.3",
    )
    assert host == "cloud.farm.example"


@pytest.mark.parametrize(
    "fqdn,addresses",
    [("vm", ["10.1.2.3"]), ("localhost", ["127.0.0.1"]), ("box.lan", ["127.0.1.1"])],
)
def test_else_the_lan_address_of_the_default_route(fqdn: str, addresses: list[str]) -> None:
    host = reach.default_public_host(
        fqdn=lambda: fqdn, resolve=lambda name: addresses, route=lambda: "192.168.1.20"
    )
    assert host == "192.168.1.20"


def test_without_a_route_it_falls_back_to_loopback_and_warns() -> None:
    host = reach.default_public_host(fqdn=lambda: "vm", resolve=lambda n: [], route=lambda: None)
    assert host == "127.0.0.1"
    assert "loopback" in (reach.warning(host) or "")


def test_warnings() -> None:
    assert "bare host name" in (reach.warning("vm") or "")
    assert "does not resolve" in (reach.warning("x.invalid", resolve=lambda n: []) or "")
    assert reach.warning("192.168.1.20") is None
    assert reach.warning("cloud.example", resolve=lambda n: ["203.0.113.9"]) is None
    assert "no address" in (reach.warning("0.0.0.0") or "")


def test_the_default_is_never_the_short_host_name() -> None:
    assert "." in CloudSettings().public_host  # an address or a full name, never "vm"


def test_a_url_is_not_an_address() -> None:
    with pytest.raises(ValueError, match="is a URL, not HOST:PORT"):
        parse_address("http://127.0.0.1:8080", 8080)
