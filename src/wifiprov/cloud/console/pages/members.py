"""Members and roles: list (with who can add devices), invite, change role, remove; the
organization's name and hotspot prefix; and the one-time invite link.

The rules are ``accounts.py``'s: only the owner changes who is owner (by giving another member
the role owner), the owner cannot be removed, removing a member ends their sessions at once.

Invite links need no table: ``/invite/<user>.<org>.<expiry>.<mac>`` where the MAC is an HMAC
under the cloud's token key over the user, the organization, the expiry and the user's current
password hash. An invited e-mail has no password (``accounts.UNUSABLE``) until the link is used;
setting the password changes the hash, so the link works once. The link is also refused after
its expiry or when the user is no longer a member of that organization. Whether the e-mail had
an account already is not told to the inviter (as the API does not): the link of a user with a
password only says "sign in".
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from wifiprov.cloud import accounts
from wifiprov.cloud.accounts import RIGHTS
from wifiprov.cloud.console import kit, sessions
from wifiprov.cloud.db.schema import NAME_LENGTH, memberships, organizations, users
from wifiprov.cloud.errors import CloudError, Conflict, Forbidden, Invalid
from wifiprov.cloud.passwords import UNUSABLE

router = kit.router()
kit.nav("/members", "Members", right="view", order=30)

ROLES = tuple(RIGHTS)  # owner, admin, installer, operator, viewer
ROLE_HELP = {
    "owner": "everything; the only one who can hand ownership over",
    "admin": "everything but ownership: members, templates, devices",
    "installer": "adds devices and operates them",
    "operator": "operates devices (pins, reconfigure)",
    "viewer": "sees everything, changes nothing",
}
INVITE_LIFETIME = 7 * 24 * 3600.0


# --- invite links -----------------------------------------------------------------------------


def _mac(hasher: Any, user_id: int, org_id: int, expires: int, password_hash: str) -> str:
    return str(hasher(f"console-invite\0{user_id}\0{org_id}\0{expires}\0{password_hash}"))[:40]


def invite_token(hasher: Any, user_id: int, org_id: int, password_hash: str) -> str:
    expires = int(time.time() + INVITE_LIFETIME)
    return f"{user_id}.{org_id}.{expires}.{_mac(hasher, user_id, org_id, expires, password_hash)}"


async def _invitee(request: Request, token: str) -> dict[str, Any] | None:
    """The invited user and organization of ``token`` while it is valid (else None)."""
    svc = kit.services(request)
    try:
        user_s, org_s, expires_s, mac = token.split(".")
        user_id, org_id, expires = int(user_s), int(org_s), int(expires_s)
    except ValueError:
        return None
    if expires < time.time():
        return None
    async with svc.db.begin() as conn:
        row = (
            await conn.execute(
                select(users.c.email, users.c.password_hash, organizations.c.name)
                .join(memberships, memberships.c.user_id == users.c.id)
                .join(organizations, organizations.c.id == memberships.c.org_id)
                .where(users.c.id == user_id, memberships.c.org_id == org_id)
            )
        ).first()
    if row is None:
        return None
    expected = _mac(svc.hasher, user_id, org_id, expires, row.password_hash)
    if not hmac.compare_digest(expected, mac):
        return None
    return {"email": row.email, "org_name": row.name, "new": row.password_hash == UNUSABLE}


def _invite_page(request: Request, status: int = 200, **values: Any) -> Response:
    secret, new = sessions.pre_session(request)
    svc = kit.services(request)
    values.setdefault("errors", {})
    response = kit.render(
        request,
        "members/accept.html",
        status,
        title="Accept the invitation",
        csrf=sessions.csrf_token(svc.hasher, secret),
        **values,
    )
    if new:
        sessions.set_cookie(response, request, sessions.PRE_COOKIE, secret)
    return response


@router.get("/invite/{token}")
@kit.public
async def accept_page(request: Request, token: str) -> Response:
    invitee = await _invitee(request, token)
    if invitee is None:
        return _invite_page(request, 404, invitee=None, token="")
    return _invite_page(request, invitee=invitee, token=token)


@router.post("/invite/{token}")
@kit.public
async def accept(request: Request, token: str) -> Response:
    svc = kit.services(request)
    invitee = await _invitee(request, token)
    if invitee is None or not invitee["new"]:
        return _invite_page(request, 404, invitee=None, token="")
    form = await kit.read_form(request)
    password = form.get("password", "")
    errors: dict[str, str] = {}
    if len(password) < accounts.MIN_PASSWORD:
        errors["password"] = f"Use at least {accounts.MIN_PASSWORD} characters."
    elif form.get("password2", "") != password:
        errors["password2"] = "The two passwords differ."
    if errors:
        return _invite_page(request, 400, invitee=invitee, token=token, errors=errors)
    try:
        await accounts.create_user(svc.db, invitee["email"], password)
    except Conflict:  # used a moment ago by another request
        return _invite_page(request, 404, invitee=None, token="")
    address = request.client.host if request.client else None
    email = invitee["email"]
    session = await accounts.sign_in(svc.db, svc.hasher, email, password, address=address)
    response = kit.redirect("/")
    sessions.set_cookie(
        response, request, sessions.SESSION_COOKIE, session,
        max_age=int(svc.settings.session_lifetime),
    )  # fmt: skip
    sessions.forget_cookie(response, request, sessions.PRE_COOKIE)
    return response


# --- the members page -------------------------------------------------------------------------


async def _members_page(page: kit.PageContext, status: int = 200, **values: Any) -> Response:
    rows = await accounts.list_members(page.db, page.who, page.org_id)
    org = await accounts.get_org(page.db, page.who, page.org_id)
    members = [
        {**m, "can_add_devices": "provision" in RIGHTS[str(m["role"])],
         "is_you": m["id"] == page.who.user_id}
        for m in rows
    ]  # fmt: skip
    values.setdefault("errors", {})
    values.setdefault("values", {"email": "", "role": "installer"})
    values.setdefault("org_errors", {})
    values.setdefault("org_values", {"name": org["name"], "hotspot_prefix": org["hotspot_prefix"]})
    values.setdefault("notice", "")
    values.setdefault("problem", "")
    return page.render(
        "members/list.html",
        status,
        title="Members",
        members=members,
        organization=org,
        roles=ROLES,
        role_help=ROLE_HELP,
        can_manage=page.can("manage"),
        is_owner=page.role == "owner",
        **values,
    )


NOTICES = {
    "role": "Role changed.",
    "removed": "Member removed; their sessions ended.",
    "org": "Organization saved.",
}


@router.get("/members")
async def list_page(page: kit.Page, done: str = "") -> Response:
    return await _members_page(page, notice=NOTICES.get(done, ""))


def _domain_problem(exc: CloudError) -> str:
    return exc.message[:1].upper() + exc.message[1:] + "."


@router.post("/members/invite")
async def invite(page: kit.Page) -> Response:
    page.require("manage")
    form = await page.form()
    email = form.get("email", "").strip().lower()
    role = form.get("role", "")
    errors: dict[str, str] = {}
    if not accounts.EMAIL.fullmatch(email) or len(email) > 254:
        errors["email"] = "Enter an e-mail address, like someone@example.com."
    if role not in ROLES:
        errors["role"] = "Choose a role."
    elif role == "owner":
        errors["role"] = "Invite as admin, then hand ownership over by changing their role."
    if not errors:
        try:
            await accounts.set_member(page.db, page.who, page.org_id, email, role)
        except (Invalid, Conflict) as exc:
            errors["email"] = _domain_problem(exc)
        else:
            return page.redirect(f"/members/invite-link?email={quote(email, safe='')}")
    values = {"email": email, "role": role}
    return await _members_page(page, 400, errors=errors, values=values)


@router.get("/members/invite-link")
async def invite_link(page: kit.Page, email: str = "") -> Response:
    page.require("manage")
    async with page.db.begin() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.password_hash)
                .join(memberships, memberships.c.user_id == users.c.id)
                .where(users.c.email == email.strip().lower(), memberships.c.org_id == page.org_id)
            )
        ).first()
    if row is None:
        return page.render("error.html", 404, title="Not found", message="There is nothing here.")
    token = invite_token(page.hasher, int(row.id), page.org_id, str(row.password_hash))
    base = str(page.request.base_url).rstrip("/")
    return page.render(
        "members/invite_link.html",
        title="Invitation",
        email=email.strip().lower(),
        link=f"{base}/invite/{token}",
        days=int(INVITE_LIFETIME // 86400),
    )


async def _member_email(page: kit.PageContext, user_id: str) -> str | None:
    for m in await accounts.list_members(page.db, page.who, page.org_id):
        if str(m["id"]) == user_id:
            return str(m["email"])
    return None


@router.post("/members/{user_id}/role")
async def change_role(page: kit.Page, user_id: str) -> Response:
    page.require("manage")
    email = await _member_email(page, user_id)
    if email is None:
        return page.render("error.html", 404, title="Not found", message="There is nothing here.")
    form = await page.form()
    role = form.get("role", "")
    if role not in ROLES:
        return await _members_page(page, 400, problem=f"{email}: choose a role.")
    try:
        await accounts.set_member(page.db, page.who, page.org_id, email, role)
    except (Forbidden, Conflict, Invalid) as exc:
        return await _members_page(page, exc.status, problem=f"{email}: {_domain_problem(exc)}")
    return page.redirect("/members?done=role")


@router.get("/members/{user_id}/remove")
async def remove_page(page: kit.Page, user_id: str) -> Response:
    page.require("manage")
    email = await _member_email(page, user_id)
    if email is None:
        return page.render("error.html", 404, title="Not found", message="There is nothing here.")
    return page.render("members/remove.html", title=f"Remove {email}", email=email, user_id=user_id)


@router.post("/members/{user_id}/remove")
async def remove(page: kit.Page, user_id: str) -> Response:
    page.require("manage")
    email = await _member_email(page, user_id)
    if email is None:
        return page.render("error.html", 404, title="Not found", message="There is nothing here.")
    try:
        await accounts.remove_member(page.db, page.who, page.org_id, email)
    except Conflict as exc:
        return await _members_page(page, 409, problem=f"{email}: {_domain_problem(exc)}")
    if int(user_id) == page.who.user_id:  # removed themselves: that session has ended
        return page.redirect(f"{kit.SIGN_IN}?signed_out=1")
    return page.redirect("/members?done=removed")


@router.post("/members/organization")
async def organization(page: kit.Page) -> Response:
    page.require("manage")
    form = await page.form()
    name = form.get("name", "").strip()
    prefix = form.get("hotspot_prefix", "")
    errors: dict[str, str] = {}
    if not name or len(name) > NAME_LENGTH or any(ord(c) < 32 or c == "\x7f" for c in name):
        errors["name"] = f"Name the organization: 1 to {NAME_LENGTH} characters on one line."
    try:
        accounts.check_prefix(prefix)
    except CloudError:
        errors["hotspot_prefix"] = "1 to 20 letters, digits and inner spaces (like Blynk)."
    if errors:
        return await _members_page(
            page, 400, org_errors=errors, org_values={"name": name, "hotspot_prefix": prefix}
        )
    await accounts.update_org(page.db, page.who, page.org_id, name=name, hotspot_prefix=prefix)
    return page.redirect("/members?done=org#organization")
