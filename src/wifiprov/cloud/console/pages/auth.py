"""Sign in, sign out, and the first-run sign-up (what `wifiprov cloud init` does)."""

from __future__ import annotations

import asyncio
import math

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from wifiprov.cloud import accounts
from wifiprov.cloud.console import kit, sessions
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import NAME_LENGTH, memberships
from wifiprov.cloud.errors import CloudError, Conflict, TooManyRequests, Unauthorized

router = kit.router()
_first_run = asyncio.Lock()  # one sign-up at a time on this node


async def has_owner(db: Database) -> bool:
    """Whether the cloud has its first user (an organization with an owner), as `cloud init`."""
    async with db.begin() as conn:
        found = await conn.scalar(
            select(memberships.c.user_id).where(memberships.c.role == "owner").limit(1)
        )
    return found is not None


def _public_page(request: Request, template: str, status: int = 200, **values: object) -> Response:
    """A page for a browser that is not signed in: its forms carry the pre-session token."""
    svc = kit.services(request)
    secret, new = sessions.pre_session(request)
    headers = {"Retry-After": str(values.pop("retry_after"))} if "retry_after" in values else None
    response = kit.render(
        request,
        template,
        status,
        headers=headers,
        csrf=sessions.csrf_token(svc.hasher, secret),
        **values,
    )
    if new:
        sessions.set_cookie(response, request, sessions.PRE_COOKIE, secret)
    return response


def _signed_in(request: Request, token: str, target: str) -> Response:
    svc = kit.services(request)
    response = kit.redirect(target)
    sessions.set_cookie(
        response,
        request,
        sessions.SESSION_COOKIE,
        token,
        max_age=int(svc.settings.session_lifetime),
    )
    sessions.forget_cookie(response, request, sessions.PRE_COOKIE)
    return response


@router.get(kit.SIGN_IN)
@kit.public
async def sign_in_page(request: Request, next: str = "/", signed_out: int = 0) -> Response:
    svc = kit.services(request)
    if not await has_owner(svc.db):
        return kit.redirect("/sign-up")
    token = request.cookies.get(sessions.SESSION_COOKIE)
    if token:
        try:
            await accounts.authenticate(svc.db, svc.hasher, token)
            return kit.redirect(kit.local_path(next))
        except Unauthorized:
            pass
    notice = "You are signed out." if signed_out else ""
    return _public_page(
        request,
        "sign_in.html",
        title="Sign in",
        next=kit.local_path(next),
        email="",
        errors={},
        notice=notice,
    )


@router.post(kit.SIGN_IN)
@kit.public
async def sign_in(request: Request) -> Response:
    svc = kit.services(request)
    form = await kit.read_form(request)
    email = form.get("email", "").strip()
    password = form.get("password", "")
    target = kit.local_path(form.get("next"))
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your e-mail address."
    if not password:
        errors["password"] = "Enter your password."
    status, retry = 400, None
    if not errors:
        address = request.client.host if request.client else None
        try:
            token = await accounts.sign_in(svc.db, svc.hasher, email, password, address=address)
            return _signed_in(request, token, target)
        except TooManyRequests as exc:
            retry = max(1, math.ceil(exc.retry_after))
            status = 429
            errors["form"] = (
                f"Too many failed sign-ins. Wait {retry} s before trying again "
                "(each further failure makes the wait longer)."
            )
        except Unauthorized:
            status = 401
            errors["password"] = "Wrong e-mail or password."
    values: dict[str, object] = {"retry_after": retry} if retry is not None else {}
    return _public_page(
        request,
        "sign_in.html",
        status,
        title="Sign in",
        next=target,
        email=email,
        errors=errors,
        notice="",
        **values,
    )


@router.post("/sign-out")
async def sign_out(page: kit.Page) -> Response:
    await accounts.sign_out(page.db, page.hasher, page.session_token)
    response = kit.redirect(f"{kit.SIGN_IN}?signed_out=1")
    sessions.forget_cookie(response, page.request, sessions.SESSION_COOKIE)
    sessions.forget_cookie(response, page.request, sessions.ORG_COOKIE)
    return response


SIGN_UP_FIELDS = ("email", "org", "hotspot_prefix")


@router.get("/sign-up")
@kit.public
async def sign_up_page(request: Request) -> Response:
    svc = kit.services(request)
    if await has_owner(svc.db):
        return kit.redirect(kit.SIGN_IN)
    return _public_page(
        request,
        "sign_up.html",
        title="Set up this cloud",
        errors={},
        values={"email": "", "org": "", "hotspot_prefix": "Blynk"},
    )


def _check_sign_up(form: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    email = form.get("email", "").strip().lower()
    if not accounts.EMAIL.fullmatch(email) or len(email) > 254:
        errors["email"] = "Enter an e-mail address, like you@example.com."
    password = form.get("password", "")
    if len(password) < accounts.MIN_PASSWORD:
        errors["password"] = f"Use at least {accounts.MIN_PASSWORD} characters."
    elif form.get("password2", "") != password:
        errors["password2"] = "The two passwords differ."
    org = form.get("org", "").strip()
    if not org or len(org) > NAME_LENGTH or any(ord(c) < 32 or c == "\x7f" for c in org):
        errors["org"] = f"Name the organization: 1 to {NAME_LENGTH} characters on one line."
    try:
        accounts.check_prefix(form.get("hotspot_prefix", ""))
    except CloudError:
        errors["hotspot_prefix"] = "1 to 20 letters, digits and inner spaces (like Blynk)."
    return errors


@router.post("/sign-up")
@kit.public
async def sign_up(request: Request) -> Response:
    svc = kit.services(request)
    form = await kit.read_form(request)
    errors = _check_sign_up(form)
    if not errors:
        async with _first_run:
            if await has_owner(svc.db):
                return kit.render(
                    request,
                    "error.html",
                    409,
                    title="Already set up",
                    message="This cloud has its first user already: sign in, or ask its owner "
                    "to invite you.",
                )
            email = form["email"].strip().lower()
            try:
                user_id = await accounts.create_user(svc.db, email, form["password"])
                await accounts.create_org(
                    svc.db, form["org"].strip(), user_id, form["hotspot_prefix"]
                )
            except Conflict:
                errors["email"] = "A user with this e-mail exists already."
            else:
                address = request.client.host if request.client else None
                token = await accounts.sign_in(
                    svc.db, svc.hasher, email, form["password"], address=address
                )
                return _signed_in(request, token, "/")
    return _public_page(
        request,
        "sign_up.html",
        400,
        title="Set up this cloud",
        errors=errors,
        values={k: form.get(k, "") for k in SIGN_UP_FIELDS},
    )
