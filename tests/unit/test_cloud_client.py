"""The provisioner's cloud client over a real socket: a kept-alive connection that the server
closes as a request goes out on it (its idle timeout) costs a read one more try on a new
connection; a write is never sent twice."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from wifiprov.provisioner.client import CloudClient, CloudUnreachable

BODY = b'{"ok": true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class DroppingServer:
    """Answers the first request on each connection, then closes it when the next arrives,
    unanswered (what an idle timeout firing at that moment looks like to the client), or
    (``reset``) resets it, as a kernel does for data arriving on a socket already closed."""

    def __init__(self, reset: bool = False) -> None:
        self.requests: list[str] = []
        self.reset = reset

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = False
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                line = head.split(b"\r\n", 1)[0].decode()
                self.requests.append(line)
                length = next(
                    (int(h.split(b":")[1]) for h in head.lower().split(b"\r\n")
                     if h.startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                await reader.readexactly(length)
                if answered:
                    if self.reset:
                        linger = struct.pack("ii", 1, 0)
                        writer.get_extra_info("socket").setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, linger
                        )
                    break
                writer.write(OK)
                await writer.drain()
                answered = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture(params=["closed", "reset"])
async def url(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, DroppingServer]]:
    dropping = DroppingServer(reset=request.param == "reset")
    server = await asyncio.start_server(dropping.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", dropping


async def test_a_read_on_a_connection_closed_under_it_is_sent_again(
    url: tuple[str, DroppingServer],
) -> None:
    base, server = url
    async with CloudClient(base) as client:
        assert await client.call("GET", "/api/devices") == {"ok": True}
        assert await client.call("GET", "/api/devices") == {"ok": True}  # stale, then again
    assert server.requests == ["GET /api/devices HTTP/1.1"] * 3


async def test_a_write_on_a_connection_closed_under_it_is_not_repeated(
    url: tuple[str, DroppingServer],
) -> None:
    base, server = url
    async with CloudClient(base) as client:
        assert await client.call("GET", "/api/devices") == {"ok": True}
        with pytest.raises(CloudUnreachable, match="cannot reach the cloud"):
            await client.call("PATCH", "/api/devices/1", json={"name": "x"})
    assert server.requests == ["GET /api/devices HTTP/1.1", "PATCH /api/devices/1 HTTP/1.1"]


async def test_an_idle_connection_is_not_reused_after_its_expiry(
    url: tuple[str, DroppingServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the cloud's idle timeout can close it: a write after a pause goes out on a new
    connection and is answered."""
    monkeypatch.setattr("wifiprov.provisioner.client.IDLE_EXPIRY", 0.2)
    base, server = url
    async with CloudClient(base) as client:
        assert await client.call("GET", "/api/devices") == {"ok": True}
        await asyncio.sleep(0.4)
        assert await client.call("PATCH", "/api/devices/1", json={"name": "x"}) == {"ok": True}
    assert server.requests == ["GET /api/devices HTTP/1.1", "PATCH /api/devices/1 HTTP/1.1"]


async def test_a_rename_is_sent_again_it_does_the_same_twice(
    url: tuple[str, DroppingServer],
) -> None:
    base, server = url
    async with CloudClient(base) as client:
        assert await client.call("GET", "/api/devices") == {"ok": True}
        assert await client.rename(1, "Lamp") == {"ok": True}
    assert server.requests == ["GET /api/devices HTTP/1.1"] + ["PATCH /api/devices/1 HTTP/1.1"] * 2
