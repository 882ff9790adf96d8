"""The cloud's HTTP API, as the provisioner uses it. Errors become CloudRequestFailed with the
cloud's own message (its API answers ``{"error", "message"}``)."""

from __future__ import annotations

from typing import Any

import httpx


class CloudRequestFailed(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CloudClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 70.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        # Long polls hold a connection each: never let them starve other requests of the pool.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, limits=limits
        )

    async def __aenter__(self) -> CloudClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            reply = await self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CloudRequestFailed(f"cannot reach the cloud at {self.url}: {exc}") from None
        if reply.status_code >= 400:
            try:
                message = reply.json().get("message", reply.text)
            except ValueError:
                message = reply.text
            raise CloudRequestFailed(message, reply.status_code)
        return reply.json() if reply.content else None

    async def sign_in(self, email: str, password: str) -> str:
        reply = await self.call(
            "POST", "/api/auth/sign-in", json={"email": email, "password": password}
        )
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
        return dict(await self.call("PATCH", f"/api/devices/{device_id}", json={"name": name}))

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
