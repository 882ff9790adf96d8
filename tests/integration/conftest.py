"""Fixtures shared by the device agent tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningCloud
from tests.integration.device_bench import Bench
from tests.integration.support import template


@pytest.fixture
async def bench(cloud: RunningCloud, tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(cloud, tmp_path, await template(cloud, name="Thermostat"))
    try:
        yield b
    finally:
        await b.stop()
        b.air.close()


@pytest.fixture
async def silent_cloud() -> AsyncIterator[int]:
    """A cloud address that accepts connections and never answers: logins hang there."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
