"""A bare Blynk-protocol server: it parses frames with the same codec and answers what the load
generator waits for (logins, info, PINGs: 200) and nothing else — no database, no sessions, no
write-behind. The ingest scenario runs against it in the same run, with the same generator, so
the gateway's figure is also given as a share of what framing alone allows on this machine now.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from wifiprov.bench.gateway.config import BenchError
from wifiprov.bench.gateway.world import _accepts, free_port
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status

_ANSWERED = {Command.HW_LOGIN, Command.LOGIN, Command.PING, Command.INTERNAL}


class BareProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.decoder = blynk.Decoder(65535)
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            frames = self.decoder.feed(data)
        except blynk.ProtocolError:
            self.transport.close()
            return
        replies = [
            blynk.encode_response(frame.msg_id, Status.OK)
            for frame in frames
            if frame.command in _ANSWERED
        ]
        if replies:
            self.transport.write(b"".join(replies))


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BareProtocol, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(port: int) -> None:
    try:
        import uvloop

        uvloop.run(serve(port))  # the gateway runs on uvloop too
    except ImportError:
        asyncio.run(serve(port))


class BareServer:
    """The bare server in its own process (as the gateway is)."""

    def __init__(self) -> None:
        self.port = free_port("127.0.0.1")
        code = "import sys; from wifiprov.bench.gateway.bare import main; main(int(sys.argv[1]))"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not _accepts(self.port):
            self.check()
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError("the bare frame server did not start within 30 s")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
            raise BenchError(f"the bare frame server exited ({self.proc.returncode}): {err[-500:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

