"""The HTTP API (FastAPI): a thin layer over the domain modules. Errors are JSON:
``{"error": <code>, "message": <what happened and what to do>}``."""

from collections.abc import Mapping
from pathlib import Path as PathLib
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from wifiprov import __version__
from wifiprov.cloud import (
    accounts,
    console,
    datastreams,
    device_actions,
    devices,
    provisioning,
    templates,
)
from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.body_limit import MAX_BODY, BodyLimit, BodyTooLarge
from wifiprov.cloud.bus import Bus
from wifiprov.cloud.db import Database, DatabaseUnavailable
from wifiprov.cloud.errors import CloudError, Invalid, TooManyRequests
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.sign_in_gate import SignInGate, Tarpit
from wifiprov.cloud.tokens import TokenHasher
from wifiprov.cloud.validation import (
    DB_INT_MAX,
    Description,
    DeviceName,
    Email,
    EmailPath,
    FirmwareType,
    Host,
    HotspotPrefix,
    OrgName,
    Password,
    Port,
    Role,
    RowId,
    TemplateId,
    TemplateName,
    Text,
    text,
)

DOCS_ASSETS = PathLib(__file__).parent / "docs_assets"  # Swagger UI, from npm swagger-ui-dist
DOCS_ASSETS_URL = "/docs-assets"


class SignIn(BaseModel):
    email: Email
    password: Password


class OrgUpdate(BaseModel):
    name: OrgName | None = None
    hotspot_prefix: HotspotPrefix | None = None


class Member(BaseModel):
    email: Email
    role: Role


class NewTemplate(BaseModel):
    name: TemplateName
    firmware_type: FirmwareType = ""
    description: Description = ""


class TemplateUpdate(BaseModel):
    name: TemplateName | None = None
    description: Description | None = None


class Rename(BaseModel):
    name: DeviceName


class Redirect(BaseModel):
    host: Host
    port: Port


class PinWrite(BaseModel):
    value: Text | list[Text]


class Datastream(BaseModel):
    pin: Annotated[int, Field(ge=0, le=devices.MAX_PIN, description="its virtual pin (0..255)")]
    type: Literal["integer", "double", "string"] = "string"
    min: float | None = None
    max: float | None = None
    unit: Annotated[str, Field(max_length=datastreams.MAX_UNIT)] = ""


Pin = Annotated[int, Path(ge=0, le=devices.MAX_PIN, description="a virtual pin (V0..V255)")]
DatastreamName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[^/+#\x00-\x1f\x7f]+$",
        description="a datastream's name (one MQTT topic level)",
    ),
]


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    # A message may quote input: never let it fail to encode.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers=headers or None
    )


API_PREFIXES = ("/api/", "/external/", "/openapi.json", "/docs")


def _wants_page(request: Request) -> bool:
    """A browser asking for a console address (not the API): errors are pages, not JSON."""
    path = request.url.path
    return not path.startswith(API_PREFIXES) and "text/html" in request.headers.get("accept", "")


def create_app(db: Database, bus: Bus, hasher: TokenHasher, settings: CloudSettings) -> FastAPI:
    app = FastAPI(
        title="wifiprov cloud",
        version=__version__,
        description="Accounts, templates, provisioning tokens and devices.",
        docs_url=None,  # served below from the package's own copy of Swagger UI (no CDN)
        redoc_url=None,  # left out: one browsable page is enough, and ReDoc is another 1 MB
    )
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    tarpit = Tarpit()
    app.add_middleware(SignInGate, db=db, tarpit=tarpit)  # outermost: a blocked sign-in is cheap
    bearer = HTTPBearer(auto_error=False)

    @app.exception_handler(CloudError)
    async def cloud_error(_: Request, exc: CloudError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, getattr(exc, "headers", None))

    @app.exception_handler(DatabaseUnavailable)
    async def db_down(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return _error(503, "unavailable", "the database is unavailable; try again shortly")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _wants_page(request):  # a console address with a bad part: a page, not JSON
            return console.error_page(request, 404, "Not found", "There is nothing here.")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return _error(422, "invalid", f"invalid request: {problems}")

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return _error(413, "too_large", exc.detail, {"Connection": "close"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_page(request) and exc.status_code in (404, 405):
            return console.error_page(request, 404, "Not found", "There is nothing here.")
        message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, "http_error", message, exc.headers)

    async def principal(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if creds is None:
            raise accounts.Unauthorized(
                "sign in first: send 'Authorization: Bearer <token>' (wifiprov login)"
            )
        return await accounts.authenticate(db, hasher, creds.credentials)

    Who = Annotated[Principal, Depends(principal)]

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI for /openapi.json, every asset from the package: it works offline."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no online validator badge
        )

    @app.get("/api/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "node": settings.node_id}

    # --- accounts ---
    @app.post("/api/auth/sign-in", tags=["accounts"])
    async def sign_in(request: Request, body: SignIn) -> dict[str, Any]:
        address = request.client.host if request.client else None
        try:
            token = await accounts.sign_in(db, hasher, body.email, body.password, address=address)
        except TooManyRequests as exc:
            await tarpit.hold(exc.retry_after)  # a client retrying at once waits for its answer
            raise
        who = await accounts.authenticate(db, hasher, token)
        return {"token": token, "user": {"id": who.user_id, "email": who.email}}

    @app.post("/api/auth/sign-out", status_code=204, tags=["accounts"])
    async def sign_out(
        who: Who, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Response:
        assert creds is not None
        await accounts.sign_out(db, hasher, creds.credentials)
        return Response(status_code=204)

    @app.post("/api/auth/sign-out-everywhere", status_code=204, tags=["accounts"])
    async def sign_out_everywhere(
        who: Who, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Response:
        """End every session of the signed-in user, this one included."""
        assert creds is not None
        await accounts.sign_out_everywhere(db, hasher, creds.credentials)
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
    async def org(who: Who, org_id: RowId) -> dict[str, Any]:
        return await accounts.get_org(db, who, org_id)

    @app.patch("/api/orgs/{org_id}", tags=["accounts"])
    async def update_org(who: Who, org_id: RowId, body: OrgUpdate) -> dict[str, Any]:
        return await accounts.update_org(
            db, who, org_id, name=body.name, hotspot_prefix=body.hotspot_prefix
        )

    @app.get("/api/orgs/{org_id}/members", tags=["accounts"])
    async def members(who: Who, org_id: RowId) -> list[dict[str, Any]]:
        return await accounts.list_members(db, who, org_id)

    @app.put("/api/orgs/{org_id}/members", status_code=204, tags=["accounts"])
    async def set_member(who: Who, org_id: RowId, body: Member) -> Response:
        await accounts.set_member(db, who, org_id, body.email, body.role)
        return Response(status_code=204)

    @app.delete("/api/orgs/{org_id}/members/{email}", status_code=204, tags=["accounts"])
    async def remove_member(who: Who, org_id: RowId, email: EmailPath) -> Response:
        """Remove a member (their sessions end at once); the owner cannot be removed (409)."""
        await accounts.remove_member(db, who, org_id, email)
        return Response(status_code=204)

    # --- templates ---
    @app.get("/api/orgs/{org_id}/templates", tags=["templates"])
    async def list_templates(who: Who, org_id: RowId) -> list[dict[str, Any]]:
        return await templates.list_templates(db, who, org_id)

    @app.post("/api/orgs/{org_id}/templates", status_code=201, tags=["templates"])
    async def create_template(who: Who, org_id: RowId, body: NewTemplate) -> dict[str, Any]:
        return await templates.create_template(
            db, who, org_id, body.name, body.firmware_type, body.description
        )

    @app.get("/api/templates/{template_id}", tags=["templates"])
    async def get_template(who: Who, template_id: TemplateId) -> dict[str, Any]:
        return await templates.get_template(db, who, template_id)

    @app.patch("/api/templates/{template_id}", tags=["templates"])
    async def rename_template(
        who: Who, template_id: TemplateId, body: TemplateUpdate
    ) -> dict[str, Any]:
        return await templates.update_template(
            db, who, template_id, name=body.name, description=body.description
        )

    @app.get("/api/templates/{template_id}/firmware-config", tags=["templates"])
    async def firmware_config(who: Who, template_id: TemplateId) -> dict[str, Any]:
        return await templates.firmware_config(db, who, template_id, settings)

    @app.get("/api/templates/{template_id}/datastreams", tags=["templates"])
    async def list_datastreams(who: Who, template_id: TemplateId) -> list[dict[str, Any]]:
        return await datastreams.list_datastreams(db, who, template_id)

    @app.put("/api/templates/{template_id}/datastreams/{name}", tags=["templates"])
    async def put_datastream(
        who: Who, template_id: TemplateId, name: DatastreamName, body: Datastream
    ) -> dict[str, Any]:
        return await datastreams.put_datastream(
            db, who, template_id, name, body.pin, body.type, body.min, body.max, body.unit
        )

    @app.delete(
        "/api/templates/{template_id}/datastreams/{name}", status_code=204, tags=["templates"]
    )
    async def delete_datastream(who: Who, template_id: TemplateId, name: DatastreamName) -> None:
        await datastreams.delete_datastream(db, who, template_id, name)

    # --- provisioning ---
    @app.post("/api/templates/{template_id}/provisioning", status_code=201, tags=["provisioning"])
    async def request_token(who: Who, template_id: TemplateId) -> dict[str, Any]:
        return await provisioning.request_token(db, hasher, who, template_id, settings)

    @app.get("/api/provisioning/{request_id}", tags=["provisioning"])
    async def provisioning_status(
        who: Who,
        request_id: RowId,
        wait: Annotated[float, Query(ge=0, le=provisioning.MAX_WAIT)] = 0,
    ) -> dict[str, Any]:
        """With ``wait``, a long poll: answers when the token claims a device or expires."""
        if wait:
            return await provisioning.wait_for_claim(db, bus, who, request_id, wait)
        return await provisioning.get_request(db, who, request_id)

    # --- devices ---
    @app.get("/api/devices", tags=["devices"])
    async def list_devices(
        who: Who, org_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None
    ) -> list[dict[str, Any]]:
        return await devices.list_devices(db, who, org_id)

    @app.get("/api/devices/{device_id}", tags=["devices"])
    async def get_device(who: Who, device_id: RowId) -> dict[str, Any]:
        return await devices.get_device(db, who, device_id)

    @app.patch("/api/devices/{device_id}", tags=["devices"])
    async def rename_device(who: Who, device_id: RowId, body: Rename) -> dict[str, Any]:
        return await devices.rename(db, who, device_id, body.name)

    @app.delete("/api/devices/{device_id}", status_code=204, tags=["devices"])
    async def delete_device(who: Who, device_id: RowId) -> Response:
        await devices.delete_device(db, bus, who, device_id)
        return Response(status_code=204)

    @app.post("/api/devices/{device_id}/reconfigure", status_code=202, tags=["devices"])
    async def reconfigure(who: Who, device_id: RowId) -> dict[str, Any]:
        return await devices.reconfigure(db, bus, who, device_id)

    @app.post("/api/devices/{device_id}/erase", status_code=204, tags=["devices"])
    async def erase(who: Who, device_id: RowId) -> Response:
        await devices.erase(db, bus, who, device_id)
        return Response(status_code=204)

    @app.post("/api/devices/{device_id}/redirect", status_code=202, tags=["devices"])
    async def redirect(who: Who, device_id: RowId, body: Redirect) -> dict[str, Any]:
        return await devices.redirect(db, bus, who, device_id, body.host, body.port)

    @app.post("/api/devices/{device_id}/ping", tags=["devices"])
    async def ping(
        who: Who,
        device_id: RowId,
        timeout: Annotated[
            float, Query(gt=0, le=device_actions.MAX_PING_TIMEOUT)
        ] = device_actions.PING_TIMEOUT,
    ) -> dict[str, Any]:
        """Blynk's "Ping": ``downlink/ping`` (QoS 1) to an MQTT device; answers once it
        acknowledges (``acked``, ``rtt_ms``) or after ``timeout`` seconds (``acked`` false)."""
        return await device_actions.ping(db, bus, who, device_id, timeout)

    @app.post("/api/devices/{device_id}/reboot", status_code=202, tags=["devices"])
    async def reboot(who: Who, device_id: RowId) -> dict[str, Any]:
        """Blynk's "Reboot": ``downlink/reboot`` (MQTT) or INTERNAL ``dbg reboot``."""
        return await device_actions.reboot(db, bus, who, device_id)

    @app.get("/api/devices/{device_id}/pins", tags=["devices"])
    async def read_pins(who: Who, device_id: RowId) -> dict[str, list[str]]:
        return await devices.read_pins(db, who, device_id)

    @app.put("/api/devices/{device_id}/pins/{pin}", tags=["devices"])
    async def write_pin(who: Who, device_id: RowId, pin: Pin, body: PinWrite) -> dict[str, Any]:
        values = [body.value] if isinstance(body.value, str) else body.value
        return await devices.write_pin(db, bus, who, device_id, pin, values)

    # --- Blynk's HTTP device API, for scripts (authenticated by the device token) ---
    def _pins(request: Request) -> dict[int, list[str]]:
        """``V1=a&V1=b&V2=c`` as {1: ["a", "b"], 2: ["c"]} (repeats are a multi-value write)."""
        pins: dict[int, list[str]] = {}
        for key, value in request.query_params.multi_items():
            digits = key[1:]
            if key[:1] not in ("V", "v") or not (digits.isascii() and digits.isdigit()):
                continue
            if len(digits) > 3 or int(digits) > devices.MAX_PIN:
                raise Invalid(f"virtual pin {key[:12]} is outside V0..V{devices.MAX_PIN}")
            try:
                text(value)
            except ValueError as exc:
                raise Invalid(f"{key}: {exc}") from exc
            pins.setdefault(int(digits), []).append(value)
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

    console.mount(app, db, bus, hasher, settings)  # the web console: pages at /, cookie sessions
    return app
