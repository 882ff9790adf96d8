"""The HTTP API (FastAPI): a thin layer over the domain modules. Errors are JSON:
``{"error": <code>, "message": <what happened and what to do>}``."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from wifiprov import __version__
from wifiprov.cloud import accounts, devices, provisioning, templates
from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.bus import Bus
from wifiprov.cloud.db import Database, DatabaseUnavailable
from wifiprov.cloud.errors import CloudError, Invalid
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.tokens import TokenHasher


class SignIn(BaseModel):
    email: str
    password: str


class OrgUpdate(BaseModel):
    name: str | None = None
    hotspot_prefix: str | None = None


class Member(BaseModel):
    email: str
    role: str


class NewTemplate(BaseModel):
    name: str
    firmware_type: str = ""


class Rename(BaseModel):
    name: str


class Redirect(BaseModel):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)


class PinWrite(BaseModel):
    value: str | list[str]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def create_app(db: Database, bus: Bus, hasher: TokenHasher, settings: CloudSettings) -> FastAPI:
    app = FastAPI(
        title="wifiprov cloud",
        version=__version__,
        description="Accounts, templates, provisioning tokens and devices.",
    )
    bearer = HTTPBearer(auto_error=False)

    @app.exception_handler(CloudError)
    async def cloud_error(_: Request, exc: CloudError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(DatabaseUnavailable)
    async def db_down(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return _error(503, "unavailable", "the database is unavailable; try again shortly")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return _error(422, "invalid", f"invalid request: {problems}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, "http_error", message)

    async def principal(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if creds is None:
            raise accounts.Unauthorized(
                "sign in first: send 'Authorization: Bearer <token>' (wifiprov login)"
            )
        return await accounts.authenticate(db, hasher, creds.credentials)

    Who = Annotated[Principal, Depends(principal)]

    @app.get("/api/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "node": settings.node_id}

    # --- accounts ---
    @app.post("/api/auth/sign-in", tags=["accounts"])
    async def sign_in(body: SignIn) -> dict[str, Any]:
        token = await accounts.sign_in(db, hasher, body.email, body.password)
        who = await accounts.authenticate(db, hasher, token)
        return {"token": token, "user": {"id": who.user_id, "email": who.email}}

    @app.post("/api/auth/sign-out", status_code=204, tags=["accounts"])
    async def sign_out(
        who: Who, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Response:
        assert creds is not None
        await accounts.sign_out(db, hasher, creds.credentials)
        return Response(status_code=204)

    @app.get("/api/me", tags=["accounts"])
    async def me(who: Who) -> dict[str, Any]:
        return {
            "id": who.user_id,
            "email": who.email,
            "organizations": await accounts.list_orgs(db, who),
        }

    @app.get("/api/orgs", tags=["accounts"])
    async def orgs(who: Who) -> list[dict[str, Any]]:
        return await accounts.list_orgs(db, who)

    @app.get("/api/orgs/{org_id}", tags=["accounts"])
    async def org(who: Who, org_id: int) -> dict[str, Any]:
        return await accounts.get_org(db, who, org_id)

    @app.patch("/api/orgs/{org_id}", tags=["accounts"])
    async def update_org(who: Who, org_id: int, body: OrgUpdate) -> dict[str, Any]:
        return await accounts.update_org(
            db, who, org_id, name=body.name, hotspot_prefix=body.hotspot_prefix
        )

    @app.get("/api/orgs/{org_id}/members", tags=["accounts"])
    async def members(who: Who, org_id: int) -> list[dict[str, Any]]:
        return await accounts.list_members(db, who, org_id)

    @app.put("/api/orgs/{org_id}/members", status_code=204, tags=["accounts"])
    async def set_member(who: Who, org_id: int, body: Member) -> Response:
        await accounts.set_member(db, who, org_id, body.email, body.role)
        return Response(status_code=204)

    # --- templates ---
    @app.get("/api/orgs/{org_id}/templates", tags=["templates"])
    async def list_templates(who: Who, org_id: int) -> list[dict[str, Any]]:
        return await templates.list_templates(db, who, org_id)

    @app.post("/api/orgs/{org_id}/templates", status_code=201, tags=["templates"])
    async def create_template(who: Who, org_id: int, body: NewTemplate) -> dict[str, Any]:
        return await templates.create_template(db, who, org_id, body.name, body.firmware_type)

    @app.get("/api/templates/{template_id}", tags=["templates"])
    async def get_template(who: Who, template_id: str) -> dict[str, Any]:
        return await templates.get_template(db, who, template_id)

    @app.get("/api/templates/{template_id}/firmware-config", tags=["templates"])
    async def firmware_config(who: Who, template_id: str) -> dict[str, Any]:
        return await templates.firmware_config(db, who, template_id, settings)

    # --- provisioning ---
    @app.post("/api/templates/{template_id}/provisioning", status_code=201, tags=["provisioning"])
    async def request_token(who: Who, template_id: str) -> dict[str, Any]:
        return await provisioning.request_token(db, hasher, who, template_id, settings)

    @app.get("/api/provisioning/{request_id}", tags=["provisioning"])
    async def provisioning_status(
        who: Who,
        request_id: int,
        wait: Annotated[float, Query(ge=0, le=provisioning.MAX_WAIT)] = 0,
    ) -> dict[str, Any]:
        """With ``wait``, a long poll: answers when the token claims a device or expires."""
        if wait:
            return await provisioning.wait_for_claim(db, bus, who, request_id, wait)
        return await provisioning.get_request(db, who, request_id)

    # --- devices ---
    @app.get("/api/devices", tags=["devices"])
    async def list_devices(who: Who, org_id: int | None = None) -> list[dict[str, Any]]:
        return await devices.list_devices(db, who, org_id)

    @app.get("/api/devices/{device_id}", tags=["devices"])
    async def get_device(who: Who, device_id: int) -> dict[str, Any]:
        return await devices.get_device(db, who, device_id)

    @app.patch("/api/devices/{device_id}", tags=["devices"])
    async def rename_device(who: Who, device_id: int, body: Rename) -> dict[str, Any]:
        return await devices.rename(db, who, device_id, body.name)

    @app.delete("/api/devices/{device_id}", status_code=204, tags=["devices"])
    async def delete_device(who: Who, device_id: int) -> Response:
        await devices.delete_device(db, bus, who, device_id)
        return Response(status_code=204)

    @app.post("/api/devices/{device_id}/reconfigure", status_code=202, tags=["devices"])
    async def reconfigure(who: Who, device_id: int) -> dict[str, Any]:
        await devices.reconfigure(db, bus, who, device_id)
        return {"sent": devices.RECONFIGURE}

    @app.post("/api/devices/{device_id}/erase", status_code=204, tags=["devices"])
    async def erase(who: Who, device_id: int) -> Response:
        await devices.erase(db, bus, who, device_id)
        return Response(status_code=204)

    @app.post("/api/devices/{device_id}/redirect", status_code=202, tags=["devices"])
    async def redirect(who: Who, device_id: int, body: Redirect) -> dict[str, Any]:
        await devices.redirect(db, bus, who, device_id, body.host, body.port)
        return {"host": body.host, "port": body.port}

    @app.get("/api/devices/{device_id}/pins", tags=["devices"])
    async def read_pins(who: Who, device_id: int) -> dict[str, list[str]]:
        return await devices.read_pins(db, who, device_id)

    @app.put("/api/devices/{device_id}/pins/{pin}", tags=["devices"])
    async def write_pin(who: Who, device_id: int, pin: int, body: PinWrite) -> dict[str, Any]:
        values = [body.value] if isinstance(body.value, str) else body.value
        return await devices.write_pin(db, bus, who, device_id, pin, values)

    # --- Blynk's HTTP device API, for scripts (authenticated by the device token) ---
    def _pins(request: Request) -> dict[int, list[str]]:
        """``V1=a&V1=b&V2=c`` as {1: ["a", "b"], 2: ["c"]} (repeats are a multi-value write)."""
        pins: dict[int, list[str]] = {}
        for key, value in request.query_params.multi_items():
            if key[:1] in ("V", "v") and key[1:].isdigit():
                pins.setdefault(int(key[1:]), []).append(value)
        return pins

    @app.get("/external/api/get", tags=["device API"])
    async def external_get(request: Request, token: str) -> Response:
        row = await devices.device_by_token(db, hasher, token)
        pins = _pins(request)
        if not pins:
            raise Invalid("name a pin, e.g. ?token=...&V1")
        stored = await devices.pins_of(db, row.id)
        if len(pins) == 1:
            (pin,) = pins
            value = stored.get(f"V{pin}")
            if value is None:
                raise devices.NotFound(f"no value stored for V{pin}")
            return PlainTextResponse(value[0]) if len(value) == 1 else JSONResponse(value)
        return JSONResponse({f"v{p}": stored.get(f"V{p}", [None])[0] for p in pins})

    @app.get("/external/api/update", tags=["device API"])
    async def external_update(request: Request, token: str) -> Response:
        row = await devices.device_by_token(db, hasher, token)
        pins = _pins(request)
        if not pins:
            raise Invalid("give a pin and value, e.g. ?token=...&V1=42")
        for pin, values in pins.items():
            await devices.write_pin_of(db, bus, row, pin, values)
        return Response(status_code=200)

    @app.get("/external/api/isHardwareConnected", tags=["device API"])
    async def external_connected(token: str) -> Response:
        row = await devices.device_by_token(db, hasher, token)
        return PlainTextResponse("true" if row.online_node is not None else "false")

    return app
