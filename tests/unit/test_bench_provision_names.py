"""`wifiprov bench provision` runs devices whose names all differ: a device's name ends in a code
of its MAC, and two APs of one name cannot be told apart by a phone (one device got both
configurations and another none in a 1,000-at-once run)."""

from __future__ import annotations

from wifiprov.bench.provision import _mac, distinct_devices
from wifiprov.wire import naming


def code(number: int) -> str:
    return naming.chip_code(naming.mac_chip_id(_mac(number)))


def test_sequential_macs_do_share_a_name() -> None:
    assert code(894) == code(1157)  # why the bench must choose


def test_the_bench_skips_a_device_whose_name_is_taken() -> None:
    numbers = distinct_devices(1200)
    assert len(numbers) == 1200
    assert 894 in numbers and 1157 not in numbers
    assert len({code(n) for n in numbers}) == 1200
