"""Which networks a device keeps after a new one logged in (failover order)."""

from __future__ import annotations

from wifiprov.device.agent import MAX_NETWORKS, saved_networks
from wifiprov.device.store import Flags, Network, StoredConfig


def nets(*names: str) -> tuple[Network, ...]:
    return tuple(Network(ssid=n.encode(), password="pw-" + n) for n in names)


def working(*names: str) -> StoredConfig:
    return StoredConfig(networks=nets(*names), token="T" * 32, flags=Flags(valid=True))


def test_the_new_network_comes_first_then_the_previous_ones() -> None:
    assert saved_networks(nets("new"), working("a", "b")) == nets("new", "a", "b")


def test_a_network_given_again_replaces_its_old_entry() -> None:
    new = (Network(ssid=b"a", password="changed"),)
    assert saved_networks(new, working("a", "b")) == (new[0], *nets("b"))


def test_an_unconfigured_or_never_working_store_adds_nothing() -> None:
    assert saved_networks(nets("new"), StoredConfig()) == nets("new")
    never_logged_in = StoredConfig(networks=nets("a"), token="T" * 32)
    assert saved_networks(nets("new"), never_logged_in) == nets("new")


def test_at_most_max_networks_are_kept_oldest_dropped() -> None:
    old = [f"n{i}" for i in range(MAX_NETWORKS + 2)]
    kept = saved_networks(nets("new"), working(*old))
    assert len(kept) == MAX_NETWORKS
    assert kept == nets("new", *old[: MAX_NETWORKS - 1])
