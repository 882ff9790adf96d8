"""Users, organizations, roles and API sessions (bearer tokens)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from wifiprov.cloud.db import Database, inserted_id
from wifiprov.cloud.db.schema import memberships, organizations, sessions, users
from wifiprov.cloud.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from wifiprov.cloud.tokens import TokenHasher, last4, new_token

# What each role may do. "provision" is the right to request provisioning tokens.
RIGHTS: dict[str, frozenset[str]] = {
    "owner": frozenset({"view", "operate", "provision", "manage"}),
    "admin": frozenset({"view", "operate", "provision", "manage"}),
    "installer": frozenset({"view", "operate", "provision"}),
    "operator": frozenset({"view", "operate"}),
    "viewer": frozenset({"view"}),
}
HOTSPOT_PREFIX = re.compile(r"[A-Za-z0-9 ]{1,20}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
MIN_PASSWORD = 8

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """A signed-in user and their role in each organization."""

    user_id: int
    email: str
    roles: dict[int, str] = field(default_factory=dict)

    def require(self, org_id: int, right: str) -> None:
        role = self.roles.get(org_id)
        if role is None:
            # Same answer as for a missing object: do not reveal what other organizations hold.
            raise NotFound("not found")
        if right not in RIGHTS[role]:
            raise Forbidden(f"your role '{role}' in this organization does not allow '{right}'")


def check_prefix(prefix: str) -> str:
    if not HOTSPOT_PREFIX.fullmatch(prefix) or prefix.strip() != prefix:
        raise Invalid("hotspot prefix: 1 to 20 letters, digits and inner spaces")
    return prefix


async def create_user(db: Database, email: str, password: str, name: str = "") -> int:
    email = email.strip().lower()
    if not EMAIL.fullmatch(email):
        raise Invalid(f"'{email}' is not an e-mail address")
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"the password must have at least {MIN_PASSWORD} characters")
    try:
        async with db.begin() as conn:
            result = await conn.execute(
                users.insert().values(
                    email=email,
                    name=name or email.split("@")[0],
                    password_hash=_hasher.hash(password),
                    created_at=time.time(),
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"a user with e-mail {email} already exists") from exc
    return inserted_id(result)


async def create_org(db: Database, name: str, owner_id: int, hotspot_prefix: str = "Blynk") -> int:
    if not name.strip():
        raise Invalid("the organization needs a name")
    check_prefix(hotspot_prefix)
    async with db.begin() as conn:
        result = await conn.execute(
            organizations.insert().values(
                name=name.strip(), hotspot_prefix=hotspot_prefix, created_at=time.time()
            )
        )
        org_id = inserted_id(result)
        await conn.execute(
            memberships.insert().values(org_id=org_id, user_id=owner_id, role="owner")
        )
    return org_id


async def get_org(db: Database, who: Principal, org_id: int) -> dict[str, object]:
    who.require(org_id, "view")
    async with db.begin() as conn:
        row = (await conn.execute(select(organizations).where(organizations.c.id == org_id))).one()
    return {**row._asdict(), "role": who.roles[org_id]}


async def update_org(
    db: Database, who: Principal, org_id: int, *, name: str | None, hotspot_prefix: str | None
) -> dict[str, object]:
    who.require(org_id, "manage")
    values: dict[str, str] = {}
    if name is not None:
        if not name.strip():
            raise Invalid("the organization needs a name")
        values["name"] = name.strip()
    if hotspot_prefix is not None:
        values["hotspot_prefix"] = check_prefix(hotspot_prefix)
    if values:
        async with db.begin() as conn:
            await conn.execute(
                update(organizations).where(organizations.c.id == org_id).values(**values)
            )
    return await get_org(db, who, org_id)


async def set_member(db: Database, who: Principal, org_id: int, email: str, role: str) -> None:
    """Add a user to the organization, or change their role."""
    who.require(org_id, "manage")
    if role not in RIGHTS:
        raise Invalid(f"role must be one of {', '.join(RIGHTS)}")
    async with db.begin() as conn:
        user_id = await conn.scalar(select(users.c.id).where(users.c.email == email.lower()))
        if user_id is None:
            raise NotFound(f"no user with e-mail {email}; they must sign up first")
        updated = await conn.execute(
            update(memberships)
            .where(memberships.c.org_id == org_id, memberships.c.user_id == user_id)
            .values(role=role)
        )
        if updated.rowcount == 0:
            await conn.execute(
                memberships.insert().values(org_id=org_id, user_id=user_id, role=role)
            )


async def list_members(db: Database, who: Principal, org_id: int) -> list[dict[str, object]]:
    who.require(org_id, "view")
    query = (
        select(users.c.id, users.c.email, users.c.name, memberships.c.role)
        .join(memberships, memberships.c.user_id == users.c.id)
        .where(memberships.c.org_id == org_id)
        .order_by(users.c.id)
    )
    async with db.begin() as conn:
        return [r._asdict() for r in await conn.execute(query)]


async def sign_in(db: Database, hasher: TokenHasher, email: str, password: str) -> str:
    """A new bearer token for the user, or Unauthorized (same message whatever was wrong)."""
    async with db.begin() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.password_hash).where(
                    users.c.email == email.strip().lower()
                )
            )
        ).first()
    try:
        if row is None:
            raise VerificationError()
        _hasher.verify(row.password_hash, password)
    except VerificationError as exc:
        raise Unauthorized("wrong e-mail or password") from exc
    token = new_token()
    async with db.begin() as conn:
        await conn.execute(
            sessions.insert().values(
                user_id=row.id,
                token_hash=hasher(token),
                token_last4=last4(token),
                created_at=time.time(),
            )
        )
    return token


async def sign_out(db: Database, hasher: TokenHasher, token: str) -> None:
    async with db.begin() as conn:
        await conn.execute(
            update(sessions)
            .where(sessions.c.token_hash == hasher(token), sessions.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )


async def authenticate(db: Database, hasher: TokenHasher, token: str) -> Principal:
    """The principal behind a bearer token; Unauthorized if unknown or revoked."""
    async with db.begin() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.email)
                .join(sessions, sessions.c.user_id == users.c.id)
                .where(sessions.c.token_hash == hasher(token), sessions.c.revoked_at.is_(None))
            )
        ).first()
        if row is None:
            raise Unauthorized("sign in first: the session token is missing, unknown or revoked")
        roles = {
            int(m.org_id): str(m.role)
            for m in await conn.execute(
                select(memberships.c.org_id, memberships.c.role).where(
                    memberships.c.user_id == row.id
                )
            )
        }
    return Principal(user_id=int(row.id), email=str(row.email), roles=roles)


async def list_orgs(db: Database, who: Principal) -> list[dict[str, object]]:
    if not who.roles:
        return []
    async with db.begin() as conn:
        rows = await conn.execute(
            select(organizations)
            .where(organizations.c.id.in_(list(who.roles)))
            .order_by(organizations.c.id)
        )
        return [{**r._asdict(), "role": who.roles[r.id]} for r in rows]
