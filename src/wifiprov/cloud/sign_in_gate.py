"""Refuse sign-ins from a backing-off address before the framework does any work (ASGI).

An attacker that ignores ``Retry-After`` resends at once; letting each attempt through routing,
body parsing and validation only to refuse it costs the event loop more than the attempt is
worth (docs/benchmarks.md, sign-in flood). This gate answers 429 from the address throttle
alone, without reading the body. Account backoff and the hashing queue stay in
``accounts.sign_in``, which needs the parsed body.

The refusal is also held back (a tarpit) for the rest of the block, at most ``TARPIT`` seconds:
a client that retries the moment it is answered then sends one attempt per block instead of
hundreds a second, and a waiting request costs only a sleeping coroutine. The sign-in route
holds its own 429s (a full hashing queue, an account backing off) the same way. At most
``MAX_HELD`` refusals wait at once; past that they are answered at once.
"""

from __future__ import annotations

import asyncio
import json
import math

from starlette.types import ASGIApp, Receive, Scope, Send

from wifiprov.cloud import accounts
from wifiprov.cloud.db import Database

PATHS = {"/api/auth/sign-in": "json", "/sign-in": "html"}  # the API's, and the console's form
TARPIT = 2.0  # seconds a refusal is held back at most
MAX_HELD = 1000  # refusals held back at once


class Tarpit:
    """Holds refusals back, at most ``MAX_HELD`` at once."""

    def __init__(self, limit: int = MAX_HELD) -> None:
        self.limit = limit
        self.held = 0

    async def hold(self, seconds: float) -> None:
        if self.held >= self.limit or seconds <= 0:
            return
        self.held += 1
        try:
            await asyncio.sleep(min(seconds, TARPIT))
        finally:
            self.held -= 1


class SignInGate:
    def __init__(self, app: ASGIApp, db: Database, tarpit: Tarpit) -> None:
        self.app, self.db, self.tarpit = app, db, tarpit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if kind is not None and scope["method"] == "POST":
            client = scope.get("client")
            address: str | None = client[0] if client else None
            backoff = accounts.policy(self.db).by_address
            wait = backoff.blocked(address) if address else 0.0
            if wait > 0:
                await self.tarpit.hold(wait)
                await _refuse(send, max(backoff.blocked(address or ""), 0.001), kind)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, wait: float, kind: str = "json") -> None:
    message = f"too many failed sign-ins from this address: try again in {math.ceil(wait)} s"
    if kind == "html":
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width">'
            f"<title>Try again later</title><h1>Try again later</h1><p>{message.capitalize()}."
            '<p><a href="/sign-in">Back to sign in</a></html>'
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": "too_many_requests", "message": message}).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(max(1, math.ceil(wait))).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
