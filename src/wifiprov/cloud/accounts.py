"""Users, organizations, roles and API sessions (bearer tokens).

Sign-in hashes passwords in a thread pool with a bounded queue (passwords.py) and backs off per
account and per client address (throttle.py); an unknown e-mail costs the same work and gets the
same answer as a wrong password. Sessions end when idle or old (``AccountPolicy``). The owner
of an organization is changed only by the owner (a transfer), so there is always one.
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wifiprov.cloud.db import Database, inserted_id
from wifiprov.cloud.db.schema import memberships, organizations, sessions, users
from wifiprov.cloud.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from wifiprov.cloud.passwords import UNUSABLE, PasswordPool
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.throttle import Backoff
from wifiprov.cloud.tokens import TokenHasher, last4, new_token

log = logging.getLogger("wifiprov.cloud.accounts")

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
# A session's last use is written at most this often (not on every request).
TOUCH_INTERVAL = 60.0
EXPIRED = "sign in first: the session token is missing, unknown, expired or revoked"


@dataclass
class AccountPolicy:
    """One cloud's sign-in machinery and session lifetimes (kept per ``Database``)."""

    pool: PasswordPool
    by_account: Backoff
    by_address: Backoff
    session_idle: float
    session_lifetime: float

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> AccountPolicy:
        return cls(
            pool=PasswordPool(settings.hash_workers, settings.hash_queue),
            by_account=Backoff(
                "account",
                free=settings.sign_in_failures_account,
                cap=settings.sign_in_backoff_cap,
            ),
            by_address=Backoff(
                "address",
                free=settings.sign_in_failures_address,
                cap=settings.sign_in_backoff_cap,
            ),
            session_idle=settings.session_idle,
            session_lifetime=settings.session_lifetime,
        )


_policies: weakref.WeakKeyDictionary[Database, AccountPolicy] = weakref.WeakKeyDictionary()


def configure(db: Database, settings: CloudSettings) -> AccountPolicy:
    """Set the policy of the cloud on ``db`` from its settings (call once, at start)."""
    _policies[db] = AccountPolicy.from_settings(settings)
    return _policies[db]


def policy(db: Database) -> AccountPolicy:
    """The policy of the cloud on ``db``; the settings' defaults until ``configure`` is called."""
    found = _policies.get(db)
    if found is None:
        found = _policies[db] = AccountPolicy.from_settings(CloudSettings())
    return found


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
    password_hash = await policy(db).pool.hash(password)
    values = {"name": name or email.split("@")[0], "password_hash": password_hash}
    try:
        async with db.begin() as conn:
            # An invited e-mail (added as a member before it had an account) becomes this user.
            invited = await conn.scalar(
                select(users.c.id).where(users.c.email == email, users.c.password_hash == UNUSABLE)
            )
            if invited is not None:
                await conn.execute(update(users).where(users.c.id == invited).values(**values))
                return int(invited)
            result = await conn.execute(
                users.insert().values(email=email, created_at=time.time(), **values)
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


async def _lock_org(conn: AsyncConnection, org_id: int) -> None:
    """Serialize membership changes of one organization (PostgreSQL; SQLite has one writer)."""
    await conn.execute(
        select(organizations.c.id).where(organizations.c.id == org_id).with_for_update()
    )


async def _role_of(conn: AsyncConnection, org_id: int, user_id: int) -> str | None:
    role = await conn.scalar(
        select(memberships.c.role).where(
            memberships.c.org_id == org_id, memberships.c.user_id == user_id
        )
    )
    return None if role is None else str(role)


async def _user_id(conn: AsyncConnection, email: str, *, invite: bool) -> int | None:
    """The user with this e-mail; with ``invite``, one made now (no password) if there is none.

    Inviting an unknown e-mail gives the caller the same answer and the same members list as
    adding a known one, so the members route does not tell who has an account.
    """
    email = email.strip().lower()
    user_id = await conn.scalar(select(users.c.id).where(users.c.email == email))
    if user_id is None and invite:
        if not EMAIL.fullmatch(email):
            raise Invalid(f"'{email}' is not an e-mail address")
        result = await conn.execute(
            users.insert().values(
                email=email,
                name=email.split("@")[0],
                password_hash=UNUSABLE,
                created_at=time.time(),
            )
        )
        user_id = inserted_id(result)
    return None if user_id is None else int(user_id)


async def _revoke_all(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )


async def set_member(db: Database, who: Principal, org_id: int, email: str, role: str) -> None:
    """Add a user to the organization (inviting an e-mail without an account), or change a role.

    Only the owner changes who is owner: setting another member's role to ``owner`` transfers
    ownership (the old owner becomes admin). Nothing may leave the organization without owner.
    """
    who.require(org_id, "manage")
    if role not in RIGHTS:
        raise Invalid(f"role must be one of {', '.join(RIGHTS)}")
    try:
        async with db.begin() as conn:
            await _lock_org(conn, org_id)
            caller_role = await _role_of(conn, org_id, who.user_id)
            if caller_role is None or "manage" not in RIGHTS[caller_role]:
                raise NotFound("not found")
            user_id = await _user_id(conn, email, invite=True)
            assert user_id is not None
            current = await _role_of(conn, org_id, user_id)
            if current == role:
                return
            if "owner" in (role, current):
                if caller_role != "owner":
                    raise Forbidden(
                        "only the owner can change who owns the organization "
                        "(the owner transfers it by giving another member the role owner)"
                    )
                if current == "owner":  # the owner stepping down: leaves no owner
                    raise Conflict(
                        "an organization must keep its owner: transfer ownership first "
                        "(give another member the role owner)"
                    )
                # A transfer: the caller hands ownership over and stays as admin.
                await conn.execute(
                    update(memberships)
                    .where(memberships.c.org_id == org_id, memberships.c.user_id == who.user_id)
                    .values(role="admin")
                )
            if current is None:
                await conn.execute(
                    memberships.insert().values(org_id=org_id, user_id=user_id, role=role)
                )
            else:
                await conn.execute(
                    update(memberships)
                    .where(memberships.c.org_id == org_id, memberships.c.user_id == user_id)
                    .values(role=role)
                )
    except IntegrityError as exc:  # a concurrent invite of the same e-mail
        raise Conflict("the members changed at the same time; try again") from exc


async def remove_member(db: Database, who: Principal, org_id: int, email: str) -> None:
    """Take a user out of the organization and end all their sessions at once.

    The owner cannot be removed (transfer ownership first). An e-mail that is not a member gets
    the same answer as one that is (nothing to do).
    """
    who.require(org_id, "manage")
    async with db.begin() as conn:
        await _lock_org(conn, org_id)
        user_id = await _user_id(conn, email, invite=False)
        if user_id is None:
            return
        current = await _role_of(conn, org_id, user_id)
        if current is None:
            return
        if current == "owner":
            raise Conflict(
                "the owner cannot be removed: the owner transfers ownership first "
                "(gives another member the role owner)"
            )
        await conn.execute(
            memberships.delete().where(
                memberships.c.org_id == org_id, memberships.c.user_id == user_id
            )
        )
        await _revoke_all(conn, user_id)


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


async def sign_in(
    db: Database, hasher: TokenHasher, email: str, password: str, *, address: str | None = None
) -> str:
    """A new bearer token for the user, or Unauthorized (same message whatever was wrong).

    ``address`` is the client's address, for the per-address backoff. Refused with
    TooManyRequests while the account or the address is backing off, or when the hashing queue
    is full. A known and an unknown e-mail take the same time and get the same answers.
    """
    rules = policy(db)
    account = email.strip().lower()
    wait = max(
        rules.by_account.blocked(account),
        rules.by_address.blocked(address) if address is not None else 0.0,
    )
    if wait > 0:
        raise TooManyRequests("too many failed sign-ins; try again later", retry_after=wait)
    async with db.begin() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.password_hash).where(users.c.email == account)
            )
        ).first()
    rules.by_account.attempt(account)
    if address is not None:
        rules.by_address.attempt(address)
    try:
        ok = await rules.pool.verify(None if row is None else str(row.password_hash), password)
    except TooManyRequests:  # not hashed at all: not a failure of this account or address
        rules.by_account.succeeded(account, forget=False)
        if address is not None:
            rules.by_address.succeeded(address, forget=False)
        raise
    if not ok or row is None:
        raise Unauthorized("wrong e-mail or password")
    rules.by_account.succeeded(account, forget=True)
    if address is not None:
        rules.by_address.succeeded(address, forget=False)
    token = new_token()
    now = time.time()
    async with db.begin() as conn:
        await conn.execute(
            sessions.insert().values(
                user_id=row.id,
                token_hash=hasher(token),
                token_last4=last4(token),
                created_at=now,
                last_used_at=now,
            )
        )
    return token


async def sign_out(
    db: Database, hasher: TokenHasher, token: str, *, everywhere: bool = False
) -> None:
    """End this session; with ``everywhere``, every session of its user."""
    async with db.begin() as conn:
        if everywhere:
            user_id = await conn.scalar(
                select(sessions.c.user_id).where(sessions.c.token_hash == hasher(token))
            )
            if user_id is not None:
                await _revoke_all(conn, int(user_id))
            return
        await conn.execute(
            update(sessions)
            .where(sessions.c.token_hash == hasher(token), sessions.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )


async def sign_out_everywhere(db: Database, hasher: TokenHasher, token: str) -> None:
    """End every session of the user behind ``token`` (this one included)."""
    await sign_out(db, hasher, token, everywhere=True)


async def authenticate(db: Database, hasher: TokenHasher, token: str) -> Principal:
    """The principal behind a bearer token; Unauthorized if unknown, revoked, idle or too old."""
    rules = policy(db)
    now = time.time()
    last_used = func.coalesce(sessions.c.last_used_at, sessions.c.created_at)
    async with db.begin() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.email, sessions.c.id.label("sid"), last_used)
                .join(sessions, sessions.c.user_id == users.c.id)
                .where(
                    sessions.c.token_hash == hasher(token),
                    sessions.c.revoked_at.is_(None),
                    sessions.c.created_at > now - rules.session_lifetime,
                    last_used > now - rules.session_idle,
                )
            )
        ).first()
        if row is None:
            raise Unauthorized(EXPIRED)
        if now - float(row[3]) > min(TOUCH_INTERVAL, rules.session_idle / 10):
            await conn.execute(
                update(sessions).where(sessions.c.id == row.sid).values(last_used_at=now)
            )
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
