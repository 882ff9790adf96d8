"""The ``lab`` fixture: device, phone and cloud namespaces for one test (see netlab.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns import netlab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[netlab.Lab]:
    with netlab.lab(tmp_path / "lab") as net:
        yield net
