"""Refuse sign-ins from a backing-off address before the framework does any work (ASGI).

An attacker that ignores ``Retry-After`` resends at once; letting each attempt through routing,
body parsing and validation only to refuse it costs the event loop more than the attempt is
worth (docs/benchmarks.md, sign-in flood). This gate answers 429 from the address throttle
alone, without reading the body. Account backoff and the hashing queue stay in
``accounts.sign_in``, which needs the parsed body.
"""

from __future__ import annotations

import json
import math

from starlette.types import ASGIApp, Receive, Scope, Send

from wifiprov.cloud import accounts
from wifiprov.cloud.db import Database

PATH = "/api/auth/sign-in"


class SignInGate:
    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app, self.db = app, db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            client = scope.get("client")
            wait = accounts.policy(self.db).by_address.blocked(client[0]) if client else 0.0
            if wait > 0:
                await _refuse(send, wait)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, wait: float) -> None:
    message = f"too many failed sign-ins from this address: try again in {math.ceil(wait)} s"
    body = json.dumps({"error": "too_many_requests", "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(max(1, math.ceil(wait))).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
