"""Templates: a kind of device (its firmware type) in an organization."""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from sqlalchemy import select, update

from wifiprov.cloud.accounts import Principal
from wifiprov.cloud.db import Database
from wifiprov.cloud.db.schema import NAME_LENGTH, organizations, templates
from wifiprov.cloud.errors import Invalid, NotFound
from wifiprov.cloud.settings import CloudSettings

ID_ALPHABET = string.ascii_letters + string.digits
FIRMWARE_TYPE_CHARS = set(ID_ALPHABET + "-_.")


def new_template_id() -> str:
    return "TMPL" + "".join(secrets.choice(ID_ALPHABET) for _ in range(8))


MAX_DESCRIPTION = 500


def check_description(description: str) -> str:
    description = description.strip()
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"the description must have at most {MAX_DESCRIPTION} characters")
    if "\x00" in description:
        raise Invalid("the description must not contain NUL")
    return description


async def create_template(
    db: Database,
    who: Principal,
    org_id: int,
    name: str,
    firmware_type: str = "",
    description: str = "",
) -> dict[str, Any]:
    who.require(org_id, "manage")
    name = name.strip()
    if not 1 <= len(name) <= NAME_LENGTH:
        raise Invalid(f"the template name must have 1 to {NAME_LENGTH} characters")
    description = check_description(description)
    template_id = new_template_id()
    firmware_type = firmware_type.strip() or template_id
    if len(firmware_type) > 64 or not set(firmware_type) <= FIRMWARE_TYPE_CHARS:
        raise Invalid("firmware type: at most 64 letters, digits, '-', '_' or '.'")
    async with db.begin() as conn:
        await conn.execute(
            templates.insert().values(
                id=template_id,
                org_id=org_id,
                name=name,
                firmware_type=firmware_type,
                description=description,
                created_at=time.time(),
            )
        )
    return await get_template(db, who, template_id)


async def rename_template(
    db: Database, who: Principal, template_id: str, name: str
) -> dict[str, Any]:
    """Rename a template; its id (what firmware carries) never changes."""
    return await update_template(db, who, template_id, name=name)


async def update_template(
    db: Database,
    who: Principal,
    template_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Change a template's name and/or description; its id never changes."""
    await get_template(db, who, template_id, right="manage")
    changes: dict[str, str] = {}
    if name is not None:
        name = name.strip()
        if not 1 <= len(name) <= NAME_LENGTH:
            raise Invalid(f"the template name must have 1 to {NAME_LENGTH} characters")
        changes["name"] = name
    if description is not None:
        changes["description"] = check_description(description)
    if changes:
        async with db.begin() as conn:
            await conn.execute(
                update(templates).where(templates.c.id == template_id).values(**changes)
            )
    return await get_template(db, who, template_id)


async def list_templates(db: Database, who: Principal, org_id: int) -> list[dict[str, Any]]:
    who.require(org_id, "view")
    async with db.begin() as conn:
        rows = await conn.execute(
            select(templates).where(templates.c.org_id == org_id).order_by(templates.c.created_at)
        )
        return [r._asdict() for r in rows]


async def get_template(
    db: Database, who: Principal, template_id: str, right: str = "view"
) -> dict[str, Any]:
    async with db.begin() as conn:
        row = (await conn.execute(select(templates).where(templates.c.id == template_id))).first()
    if row is None or row.org_id not in who.roles:
        raise NotFound(f"no template {template_id} in your organizations")
    who.require(row.org_id, right)
    return row._asdict()


async def firmware_config(
    db: Database, who: Principal, template_id: str, settings: CloudSettings
) -> dict[str, Any]:
    """What a device of this template needs to know (Blynk firmware's BLYNK_TEMPLATE_* etc.)."""
    template = await get_template(db, who, template_id)
    async with db.begin() as conn:
        prefix = await conn.scalar(
            select(organizations.c.hotspot_prefix).where(organizations.c.id == template["org_id"])
        )
    return {
        "template_id": template["id"],
        "template_name": template["name"],
        "firmware_type": template["firmware_type"],
        "hotspot_prefix": prefix,
        "host": settings.public_host,
        "port": settings.device_port,
        "port_ssl": settings.device_port_ssl,
    }
