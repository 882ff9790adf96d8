"""The cloud's HTTP API, as the provisioner uses it. Errors become CloudRequestFailed with the
cloud's own message (its API answers ``{"error", "message"}``)."""

from __future__ import annotations

import functools
import ssl
from typing import Any
from urllib.parse import quote

import httpx

SIGN_IN = "/api/auth/sign-in"


class CloudRequestFailed(Exception):
    """The cloud answered with an error (``status``), or could not be asked; ``todo`` says what
    to do about it, when this side knows better than the cloud's message."""

    def __init__(self, message: str, status: int | None = None, todo: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.todo = todo


class CloudUnreachable(CloudRequestFailed):
    """No answer at all: the message names the URL that was tried."""


class SessionInvalid(CloudRequestFailed):
    """401 on a signed-in call: the saved session ended (signed out, expired, another cloud)."""


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
IDLE_EXPIRY = 2.0  # seconds a kept-alive connection may idle before it is not used again


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context, made once: making it (loading the CA bundle) costs ~40 ms,
    which a program holding many clients (a bench of 200 phones) would pay for each."""
    return httpx.create_ssl_context()


class CloudClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 70.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        # Long polls hold a connection each: never let them starve other requests of the pool.
        # An idle connection is dropped after 2 s, before the cloud's own 5 s idle timeout
        # (uvicorn's): reusing one as the cloud closes it loses the request (a write is not
        # sent again: it may have been done).
        limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=20, keepalive_expiry=IDLE_EXPIRY
        )
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, limits=limits, verify=_tls()
        )

    async def __aenter__(self) -> CloudClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, again: bool | None = None, **kw: Any) -> Any:
        """One request. ``again``: whether it may be sent twice (default: reads only)."""
        try:
            try:
                reply = await self.http.request(method, path, **kw)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # A kept-alive connection the server closed (idle timeout) just as the request
                # went out on it (closed unanswered, or reset): a read, or a write that does the
                # same when repeated, is sent again once, on a new connection, as browsers do;
                # anything else could have been done and is not repeated.
                if not (method in _IDEMPOTENT if again is None else again):
                    raise
                reply = await self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise CloudUnreachable(
                f"cannot reach the cloud at {self.url} (tried {method} {self.url}{path}: {reason})",
                todo=f"check that `wifiprov cloud` runs at {self.url} and that this machine "
                "reaches it; another cloud: `wifiprov login --cloud URL --email YOU`",
            ) from None
        if reply.status_code >= 400:
            try:
                message = str(reply.json().get("message", reply.text))
            except (ValueError, AttributeError):
                message = reply.text
            if reply.status_code == 401 and path != SIGN_IN:
                raise SessionInvalid(
                    f"your session with {self.url} is not valid: {message}",
                    401,
                    todo=f"run `wifiprov login --cloud {self.url} --email YOU` to sign in again",
                )
            raise CloudRequestFailed(message, reply.status_code)
        return reply.json() if reply.content else None

    async def sign_in(self, email: str, password: str) -> str:
        reply = await self.call("POST", SIGN_IN, json={"email": email, "password": password})
        token = str(reply["token"])
        self.http.headers["Authorization"] = f"Bearer {token}"
        return token

    async def organizations(self) -> list[dict[str, Any]]:
        return list(await self.call("GET", "/api/orgs"))

    async def templates(self, org_id: int) -> list[dict[str, Any]]:
        return list(await self.call("GET", f"/api/orgs/{org_id}/templates"))

    async def provisioning_token(self, template_id: str) -> dict[str, Any]:
        return dict(await self.call("POST", f"/api/templates/{template_id}/provisioning"))

    async def wait_for_claim(self, request_id: int, wait: float) -> dict[str, Any]:
        return dict(
            await self.call("GET", f"/api/provisioning/{request_id}", params={"wait": wait})
        )

    async def devices(self) -> list[dict[str, Any]]:
        return list(await self.call("GET", "/api/devices"))

    async def device(self, device_id: int) -> dict[str, Any]:
        return dict(await self.call("GET", f"/api/devices/{device_id}"))

    async def rename(self, device_id: int, name: str) -> dict[str, Any]:
        return dict(
            await self.call("PATCH", f"/api/devices/{device_id}", again=True, json={"name": name})
        )

    async def reconfigure(self, device_id: int) -> None:
        await self.call("POST", f"/api/devices/{device_id}/reconfigure")

    async def erase(self, device_id: int) -> None:
        await self.call("POST", f"/api/devices/{device_id}/erase")

    async def delete(self, device_id: int) -> None:
        await self.call("DELETE", f"/api/devices/{device_id}")

    async def write_pin(self, device_id: int, pin: int, value: str) -> dict[str, Any]:
        return dict(
            await self.call("PUT", f"/api/devices/{device_id}/pins/{pin}", json={"value": value})
        )

    async def pins(self, device_id: int) -> dict[str, list[str]]:
        return dict(await self.call("GET", f"/api/devices/{device_id}/pins"))

    # --- accounts, organizations, templates (the object commands) ---
    async def me(self) -> dict[str, Any]:
        return dict(await self.call("GET", "/api/me"))

    async def members(self, org_id: int) -> list[dict[str, Any]]:
        return list(await self.call("GET", f"/api/orgs/{org_id}/members"))

    async def set_member(self, org_id: int, email: str, role: str) -> None:
        """Set a member's role; an e-mail without an account is invited with that role."""
        await self.call("PUT", f"/api/orgs/{org_id}/members", json={"email": email, "role": role})

    async def remove_member(self, org_id: int, email: str) -> None:
        await self.call("DELETE", f"/api/orgs/{org_id}/members/{quote(email, safe='@')}")

    async def template(self, template_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/api/templates/{template_id}"))

    async def create_template(
        self, org_id: int, name: str, firmware_type: str = "", description: str = ""
    ) -> dict[str, Any]:
        body = {"name": name, "firmware_type": firmware_type, "description": description}
        return dict(await self.call("POST", f"/api/orgs/{org_id}/templates", json=body))

    async def rename_template(self, template_id: str, name: str) -> dict[str, Any]:
        return await self.update_template(template_id, name=name)

    async def update_template(
        self, template_id: str, *, name: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        return dict(await self.call("PATCH", f"/api/templates/{template_id}", json=body))

    async def firmware_config(self, template_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/api/templates/{template_id}/firmware-config"))
