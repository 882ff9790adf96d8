"""The device's HTTP server on its access point: a small asyncio + h11 shell.

It knows HTTP, not provisioning: each request is handed to
``handler(method, path, query, host)`` (``host``: the Host header, lower case, without the port),
which returns a ``Reply``. A form body (``application/x-www-form-urlencoded``, as a POST from a
web page sends) is appended to the query, as Edgent's WebServer merges POST arguments into its
arguments; other bodies are read and dropped. A ``HEAD`` gets the reply's headers and no body.
Connections may be kept alive; a request larger than the limit is answered 431/414 (a body
larger than ``MAX_BODY``: 413) and the connection closed. One misbehaving client never blocks
another, and any request gets an HTTP answer.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11

log = logging.getLogger("wifiprov.device.portal")

MAX_REQUEST = 8192  # bytes of request line + headers; bigger requests are refused
MAX_BODY = 8192  # bytes of body; a /config form is far smaller
FORM = b"application/x-www-form-urlencoded"
IDLE_TIMEOUT = 30.0  # seconds a kept-alive connection may sit idle
JSON = "application/json"
HTML = "text/html; charset=utf-8"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    after: Callable[[], None] | None = None  # runs once the reply is sent (e.g. a restart)


Handler = Callable[[str, str, bytes, str], Awaitable[Reply]]


class Portal:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        try:
            self.server = await asyncio.start_server(self._serve, host, port, backlog=128)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            from wifiprov.linux.ports import port_in_use_message  # only on this rare path

            busy = OSError(port_in_use_message(host, port, "tcp"))
            busy.errno = exc.errno
            raise busy from None
        address = self.server.sockets[0].getsockname()
        return address[0], address[1]

    async def close(self) -> None:
        """Stop listening and drop every connection, as an access point going down does."""
        server, self.server = self.server, None
        if server is not None:
            server.close()
            for writer in list(self._clients):
                writer.transport.abort()
            await server.wait_closed()

    @property
    def serving(self) -> bool:
        return self.server is not None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
        self._clients.add(writer)
        try:
            while True:
                event = await self._next_event(conn, reader)
                if isinstance(event, h11.Request):
                    body, too_big = await self._read_body(conn, reader)
                    if too_big:
                        reply = Reply(413, b'{"status":"error","msg":"Request body too large"}')
                        writer.write(self._encode(conn, reply, close=True))
                        await writer.drain()
                        break
                    if event.method == b"CONNECT":  # no tunnels here (h11 would switch protocol)
                        reply = Reply(405, b'{"status":"error","msg":"Method not allowed"}')
                        writer.write(self._encode(conn, reply, close=True))
                        await writer.drain()
                        break
                    reply = await self._dispatch(event, body)
                    writer.write(self._encode(conn, reply, head=event.method == b"HEAD"))
                    await writer.drain()
                    if reply.after is not None:
                        reply.after()
                if conn.our_state is h11.MUST_CLOSE or event is None:
                    break
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    break
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                reply = Reply(status, b'{"status":"error","msg":"Bad request"}')
                writer.write(self._encode(conn, reply, close=True))
        except (TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("portal request failed")
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(4096), IDLE_TIMEOUT)
                conn.receive_data(data)
                continue
            if event is h11.PAUSED:
                return None
            return event

    async def _read_body(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[bytes, bool]:
        """The request's body (all of it read, so the connection can be reused), and whether
        it was larger than ``MAX_BODY`` (then only the start is kept)."""
        body = bytearray()
        while True:
            event = await self._next_event(conn, reader)
            if event is None or isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return bytes(body), False
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    return b"", True

    async def _dispatch(self, request: h11.Request, body: bytes = b"") -> Reply:
        target = request.target
        path, _, query = target.partition(b"?")
        content_type = next((v for k, v in request.headers if k == b"content-type"), b"")
        if body and content_type.split(b";")[0].strip().lower() == FORM:
            query = b"&".join(part for part in (query, body.strip()) if part)
        method = request.method.decode("ascii", "replace")
        host = next((v for k, v in request.headers if k == b"host"), b"")
        host_name = host.decode("ascii", "replace").lower().rsplit(":", 1)[0].strip("[]")
        try:
            return await self.handler(method, path.decode("ascii", "replace"), query, host_name)
        except Exception:
            log.exception("handling %s %s failed", method, path)
            return Reply(500, b'{"status":"error","msg":"Internal error"}')

    @staticmethod
    def _encode(
        conn: h11.Connection, reply: Reply, close: bool = False, head: bool = False
    ) -> bytes:
        headers = [
            ("Content-Type", reply.content_type),
            ("Content-Length", str(len(reply.body))),
            ("Cache-Control", "no-store"),
            *reply.headers,
        ]
        if close:
            headers.append(("Connection", "close"))
        data = conn.send(h11.Response(status_code=reply.status, headers=headers)) or b""
        if reply.body and not head:
            data += conn.send(h11.Data(data=reply.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        return data
