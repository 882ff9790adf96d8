"""What every console page uses: the router and route class (CSRF check, errors as pages), the
``Page`` dependency (signed-in principal, current organization, CSRF token, rendering), and the
navigation registry. See docs/console.md, "Adding a page"."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, quote

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from wifiprov import __version__
from wifiprov.cloud import accounts
from wifiprov.cloud.accounts import RIGHTS, Principal
from wifiprov.cloud.bus import Bus
from wifiprov.cloud.console import sessions
from wifiprov.cloud.db import Database, DatabaseUnavailable
from wifiprov.cloud.db.schema import NAME_LENGTH
from wifiprov.cloud.errors import CloudError, NotFound, Unauthorized
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.tokens import TokenHasher

log = logging.getLogger("wifiprov.cloud.console")

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
STATIC_URL = "/console-static"
SIGN_IN = "/sign-in"
MAX_FIELDS = 200
HEADERS = {
    "Cache-Control": "no-store",  # pages hold CSRF tokens and account data
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass
class Services:
    """What the console runs on (one per app, in ``app.state.console``)."""

    db: Database
    bus: Bus
    hasher: TokenHasher
    settings: CloudSettings
    templates: jinja2.Environment


def services(request: Request) -> Services:
    found: Services = request.app.state.console
    return found


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is escaped, in every template
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = lambda name: f"{STATIC_URL}/{name}?v={quote(__version__)}"
    env.globals["version"] = __version__
    env.globals["name_length"] = NAME_LENGTH
    return env


# --- navigation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NavEntry:
    path: str
    label: str
    right: str  # the right the signed-in user needs in the current organization to see it
    order: int


NAV: dict[str, NavEntry] = {}


def nav(path: str, label: str, *, right: str = "view", order: int = 50) -> None:
    """Put a page in the console's navigation (call at import of its module in ``pages/``)."""
    if right not in RIGHTS["owner"]:
        raise ValueError(f"unknown right {right!r}")
    NAV[path] = NavEntry(path, label, right, order)


def nav_for(who: Principal | None, org_id: int | None) -> list[NavEntry]:
    if who is None or org_id is None or org_id not in who.roles:
        return []
    rights = RIGHTS[who.roles[org_id]]
    return sorted((e for e in NAV.values() if e.right in rights), key=lambda e: (e.order, e.label))


# --- errors shown as pages --------------------------------------------------------------------


class SignInFirst(Exception):
    """The page needs a signed-in browser: redirected to the sign-in page, back here after."""

    def __init__(self, expired: bool = False) -> None:
        self.expired = expired


class StaleForm(Exception):
    """A POST without the CSRF token of this browser's session: refused, nothing done."""


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (never another site: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(c in target for c in "\r\n\t\\") or len(target) > 2000:
        return default
    return target


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """The page ``template`` (it extends base.html) with ``values``, and the console's headers."""
    svc = services(request)
    context: dict[str, Any] = {
        "request": request,
        "path": request.url.path,
        "who": None,
        "org": None,
        "orgs": [],
        "csrf": "",
        "nav": [],
        "title": "",
        **values,
    }
    html = svc.templates.get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def redirect(path: str) -> RedirectResponse:
    """303 See Other to a path of the console (after a form: the browser GETs it)."""
    return RedirectResponse(
        local_path(path), status_code=303, headers={"Cache-Control": "no-store"}
    )


# --- the route class: CSRF before the page's code, errors as pages ------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def public(endpoint: F) -> F:
    """Mark a route that works without signing in (its forms use the pre-session CSRF token)."""
    endpoint.console_public = True  # type: ignore[attr-defined]
    return endpoint


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (first value of each field), parsed once."""
    cached: dict[str, str] | None = getattr(request.state, "console_form", None)
    if cached is not None:
        return cached
    body = (await request.body()).decode("utf-8", "replace")
    form: dict[str, str] = {}
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        pairs = []
    for key, value in pairs:
        form.setdefault(key, value)
    request.state.console_form = form
    return form


async def check_csrf(request: Request, public_route: bool) -> None:
    svc = services(request)
    form = await read_form(request)
    sent = form.get(sessions.CSRF_FIELD)
    secret = request.cookies.get(sessions.SESSION_COOKIE)
    if sessions.csrf_matches(svc.hasher, secret, sent):
        return
    if public_route and sessions.csrf_matches(
        svc.hasher, request.cookies.get(sessions.PRE_COOKIE), sent
    ):
        return
    raise StaleForm()


class ConsoleRoute(APIRoute):
    """Every console route: POST/PUT/PATCH/DELETE must carry this browser's CSRF token (checked
    before the endpoint runs); errors of the domain are pages, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        is_public = bool(getattr(self.endpoint, "console_public", False))

        async def route(request: Request) -> Response:
            try:
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    await check_csrf(request, is_public)
                return await handler(request)
            except SignInFirst as exc:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response: Response = redirect(f"{SIGN_IN}?next={quote(target)}")
                if exc.expired:
                    sessions.forget_cookie(response, request, sessions.SESSION_COOKIE)
                return response
            except StaleForm:
                return render(request, "stale_form.html", status=403, title="Form expired")
            except DatabaseUnavailable:
                return render(
                    request,
                    "error.html",
                    status=503,
                    title="Unavailable",
                    message="The database is unavailable. Try again in a moment.",
                )
            except CloudError as exc:
                title = "Not found" if exc.status == 404 else "Not allowed"
                message = "There is nothing here." if exc.status == 404 else exc.message
                return render(
                    request, "error.html", status=exc.status, title=title, message=message
                )

        return route


def router() -> APIRouter:
    """A router for a page module: ``router = kit.router()`` at its top."""
    return APIRouter(route_class=ConsoleRoute, include_in_schema=False)


# --- the signed-in page context ---------------------------------------------------------------


@dataclass
class PageContext:
    """A signed-in request: who, which organization, the CSRF token, and how to answer."""

    request: Request
    services: Services
    who: Principal
    session_token: str
    orgs: list[dict[str, Any]]
    org: dict[str, Any] | None
    csrf: str = field(init=False)

    def __post_init__(self) -> None:
        self.csrf = sessions.csrf_token(self.services.hasher, self.session_token)

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def bus(self) -> Bus:
        return self.services.bus

    @property
    def hasher(self) -> TokenHasher:
        return self.services.hasher

    @property
    def settings(self) -> CloudSettings:
        return self.services.settings

    @property
    def org_id(self) -> int:
        """The current organization's id (404 page when the user is in none)."""
        if self.org is None:
            raise NotFound("not a member of any organization")
        return int(self.org["id"])

    @property
    def role(self) -> str | None:
        return None if self.org is None else str(self.org["role"])

    def can(self, right: str) -> bool:
        """Whether the user has ``right`` in the current organization (to show a button)."""
        return self.role is not None and right in RIGHTS[self.role]

    def require(self, right: str) -> None:
        """Refuse (403 page; 404 outside the organization) unless the user has ``right``."""
        self.who.require(self.org_id, right)

    async def form(self) -> dict[str, str]:
        """The posted form's fields (its CSRF token was checked before the page ran)."""
        return await read_form(self.request)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(
            self.request,
            template,
            status,
            who=self.who,
            org=self.org,
            orgs=self.orgs,
            csrf=self.csrf,
            nav=nav_for(self.who, None if self.org is None else int(self.org["id"])),
            **values,
        )

    def redirect(self, path: str) -> RedirectResponse:
        return redirect(path)


def chosen_org(orgs: list[dict[str, Any]], cookie: str | None) -> dict[str, Any] | None:
    """The organization the browser chose (cookie), if still a member; else the first."""
    for org in orgs:
        if cookie is not None and str(org["id"]) == cookie:
            return org
    return orgs[0] if orgs else None


async def signed_in(request: Request) -> PageContext:
    svc = services(request)
    token = request.cookies.get(sessions.SESSION_COOKIE)
    if not token:
        raise SignInFirst()
    try:
        who = await accounts.authenticate(svc.db, svc.hasher, token)
    except Unauthorized as exc:
        raise SignInFirst(expired=True) from exc
    orgs = await accounts.list_orgs(svc.db, who)
    org = chosen_org(orgs, request.cookies.get(sessions.ORG_COOKIE))
    return PageContext(request, svc, who, token, orgs, org)


Page = Annotated[PageContext, Depends(signed_in)]
"""The signed-in request; a browser that is not signed in is sent to the sign-in page."""
