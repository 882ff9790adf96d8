"""Templates: list, create, rename, and the template page with its firmware configuration.

The template page shows what a device of the template needs: its id and name, the AP name its
devices advertise in setup mode (``wire/naming.py``, with ``XXXX`` for the chip's code), the
``device.toml`` of ``wifiprov device`` (the CLI's own ``device_toml``) and the ``#define`` lines of
an Edgent sketch, each with a copy button (``copy.js``). The hotspot prefix belongs to the
organization (edited on the members page), so the template's edit page only renames it.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from wifiprov.cloud import templates
from wifiprov.cloud.accounts import RIGHTS
from wifiprov.cloud.console import kit
from wifiprov.cloud.db.schema import NAME_LENGTH
from wifiprov.cloud.errors import Invalid
from wifiprov.provisioner.objects import device_toml
from wifiprov.wire.naming import AP_NAME_LIMIT, BLE_NAME_LIMIT, DEFAULT_PREFIX, ap_name, ble_name

router = kit.router()
kit.nav("/templates", "Templates", right="view", order=10)

CODE = "XXXX"  # stands for the 4 characters each chip's id gives
NAME_RULE = f"1 to {NAME_LENGTH} characters on one line."


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a template, or None."""
    name = name.strip()
    if not 1 <= len(name) <= NAME_LENGTH or any(ord(c) < 32 or c == "\x7f" for c in name):
        return f"Name the template: {NAME_RULE}"
    return None


def c_string(text: str) -> str:
    """``text`` as a C string literal (UTF-8 left as is; quotes, backslashes, controls escaped)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 32 or c == "\x7f":
            out.append(f"\\{ord(c):03o}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def naming(prefix: str | None, name: str) -> dict[str, Any]:
    """The AP names devices of a template advertise, and whether the name had to be cut."""
    prefix = prefix or DEFAULT_PREFIX
    full = f"{prefix} {name}-{CODE}"
    try:
        classic = ap_name(prefix, name, CODE)
    except ValueError:
        classic = full
    newer = ble_name(prefix, name, CODE)
    return {
        "prefix": prefix,
        "full": full,
        "full_bytes": _size(full),
        "ap_name": classic,
        "newer": newer,
        "cut": classic != full,
        "newer_cut": newer != full,
        "limit": AP_NAME_LIMIT,
        "newer_limit": BLE_NAME_LIMIT,
    }


def firmware_defines(config: dict[str, Any]) -> str:
    return (
        f"#define BLYNK_TEMPLATE_ID {c_string(config['template_id'])}\n"
        f"#define BLYNK_TEMPLATE_NAME {c_string(config['template_name'])}\n"
    )


async def _list(page: kit.PageContext, status: int = 200, **values: Any) -> Response:
    rows = await templates.list_templates(page.db, page.who, page.org_id)
    values.setdefault("errors", {})
    values.setdefault("values", {"name": ""})
    return page.render(
        "templates/list.html",
        status,
        title="Templates",
        rows=rows,
        can_manage=page.can("manage"),
        prefix=(page.org or {}).get("hotspot_prefix") or DEFAULT_PREFIX,
        **values,
    )


@router.get("/templates")
async def list_page(page: kit.Page) -> Response:
    return await _list(page)


@router.post("/templates")
async def create(page: kit.Page) -> Response:
    page.require("manage")
    form = await page.form()
    name = form.get("name", "")
    problem = check_name(name)
    if problem is None:
        try:
            made = await templates.create_template(page.db, page.who, page.org_id, name)
        except Invalid as exc:
            problem = exc.message
        else:
            return page.redirect(f"/templates/{made['id']}?created=1")
    return await _list(page, 400, errors={"name": problem}, values={"name": name})


async def _show(page: kit.PageContext, template_id: str, notice: str = "") -> Response:
    config = await templates.firmware_config(page.db, page.who, template_id, page.settings)
    template = await templates.get_template(page.db, page.who, template_id)
    return page.render(
        "templates/show.html",
        title=template["name"],
        tmpl=template,
        config=config,
        names=naming(config["hotspot_prefix"], template["name"]),
        toml=device_toml(config),
        defines=firmware_defines(config),
        can_manage="manage" in _rights(page, template),
        notice=notice,
    )


def _rights(page: kit.PageContext, template: dict[str, Any]) -> frozenset[str]:
    role = page.who.roles.get(int(template["org_id"]))
    return RIGHTS[role] if role else frozenset()


@router.get("/templates/{template_id}")
async def show(page: kit.Page, template_id: str, created: int = 0, renamed: int = 0) -> Response:
    notice = "Template created." if created else "Template saved." if renamed else ""
    return await _show(page, template_id, notice)


async def _edit(
    page: kit.PageContext, template: dict[str, Any], status: int = 200, **values: Any
) -> Response:
    config = await templates.firmware_config(page.db, page.who, template["id"], page.settings)
    values.setdefault("errors", {})
    values.setdefault("name", template["name"])
    values.setdefault("description", template.get("description", ""))
    return page.render(
        "templates/edit.html",
        status,
        title=f"Edit {template['name']}",
        tmpl=template,
        prefix=config["hotspot_prefix"] or DEFAULT_PREFIX,
        can_edit_org="manage" in _rights(page, template),
        **values,
    )


@router.get("/templates/{template_id}/edit")
async def edit_page(page: kit.Page, template_id: str) -> Response:
    template = await templates.get_template(page.db, page.who, template_id, right="manage")
    return await _edit(page, template)


@router.post("/templates/{template_id}/edit")
async def edit(page: kit.Page, template_id: str) -> Response:
    template = await templates.get_template(page.db, page.who, template_id, right="manage")
    form = await page.form()
    name = form.get("name", "")
    description = form.get("description", "")
    errors: dict[str, str] = {}
    problem = check_name(name)
    if problem is not None:
        errors["name"] = problem
    try:
        templates.check_description(description)
    except Invalid as exc:
        errors["description"] = exc.message
    if not errors:
        try:
            await templates.update_template(
                page.db, page.who, template_id, name=name, description=description
            )
        except Invalid as exc:
            errors["name"] = exc.message
        else:
            return page.redirect(f"/templates/{template_id}?renamed=1")
    return await _edit(page, template, 400, errors=errors, name=name, description=description)
