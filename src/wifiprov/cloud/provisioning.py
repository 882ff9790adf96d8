"""Provisioning tokens: a user asks for one, a device's first login with it claims the device."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.bus import Bus, claimed_subject
from wifiprov.cloud.db import Database, inserted_id
from wifiprov.cloud.db.schema import provisioning_requests as requests
from wifiprov.cloud.errors import NotFound
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.templates import get_template
from wifiprov.cloud.tokens import TokenHasher, last4, new_token

# Where a provisioner (or a person) reaches a device in AP mode; Edgent serves its setup page there.
DEVICE_SETUP_URL = "http://192.168.4.1/"
MAX_WAIT = 60.0


async def request_token(
    db: Database, hasher: TokenHasher, who: Principal, template_id: str, settings: CloudSettings
) -> dict[str, Any]:
    template = await get_template(db, who, template_id, right="provision")
    token = new_token()
    now = time.time()
    async with db.begin() as conn:
        result = await conn.execute(
            requests.insert().values(
                org_id=template["org_id"],
                template_id=template_id,
                user_id=who.user_id,
                token_hash=hasher(token),
                token_last4=last4(token),
                created_at=now,
                expires_at=now + settings.provisioning_ttl,
            )
        )
    request_id = inserted_id(result)
    port = settings.device_port
    port_ssl = settings.device_port_ssl
    link_params = {"token": token, "host": settings.public_host}
    if port is not None:
        link_params["port"] = str(port)
    if port_ssl is not None:
        link_params["port_ssl"] = str(port_ssl)
    return {
        "id": request_id,
        "template_id": template_id,
        "token": token,
        "host": settings.public_host,
        "port": port,
        "port_ssl": port_ssl,
        "expires_at": now + settings.provisioning_ttl,
        "setup_link": DEVICE_SETUP_URL + "?" + urlencode(link_params),
    }


def _status(row: Any, now: float) -> dict[str, Any]:
    if row.claimed_at is not None:
        state = "claimed"
    elif row.refused_reason is not None:
        state = "refused"  # a device tried and was refused (refused_reason says why)
    elif row.expires_at <= now:
        state = "expired"
    else:
        state = "pending"
    return {
        "id": row.id,
        "template_id": row.template_id,
        "status": state,
        "device_id": row.device_id,
        "token_last4": row.token_last4,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "claimed_at": row.claimed_at,
        "refused_reason": row.refused_reason,
    }


async def get_request(db: Database, who: Principal, request_id: int) -> dict[str, Any]:
    async with db.begin() as conn:
        row = (await conn.execute(select(requests).where(requests.c.id == request_id))).first()
    if row is None or row.org_id not in who.roles:
        raise NotFound(f"no provisioning request {request_id} in your organizations")
    who.require(row.org_id, "view")
    return _status(row, time.time())


async def wait_for_claim(
    db: Database, bus: Bus, who: Principal, request_id: int, timeout: float
) -> dict[str, Any]:
    """Long-poll: return as soon as the request is claimed, refused or expired, or after
    ``timeout``."""
    claimed = asyncio.Event()
    sub = await bus.subscribe(claimed_subject(request_id), lambda _msg: claimed.set())
    try:
        status = await get_request(db, who, request_id)
        if status["status"] != "pending":
            return status
        wait = min(timeout, MAX_WAIT, max(0.0, status["expires_at"] - time.time()))
        try:
            await asyncio.wait_for(claimed.wait(), wait)
        except TimeoutError:
            pass
        return await get_request(db, who, request_id)
    finally:
        await sub.unsubscribe()
