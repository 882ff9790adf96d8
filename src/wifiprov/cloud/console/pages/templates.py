"""Templates: list, create, rename, and the template page with its firmware configuration.

The template page shows what a device of the template needs: its id and name, the AP name its
devices advertise in setup mode (``wire/naming.py``, with ``XXXX`` for the chip's code), the
``device.toml`` of ``wifiprov device`` (the CLI's own ``device_toml``) and the ``#define`` lines of
an Edgent sketch, each with a copy button (``copy.js``). The hotspot prefix belongs to the
organization (edited on the members page), so the template's edit page only renames it.

The template page also lists the template's datastreams (``cloud/datastreams.py``: a name bound
to a virtual pin, for devices on Blynk's MQTT API); who may edit the template adds, edits and
deletes them, with the API's own checks (``datastreams.problems``) shown next to each field.
A datastream is addressed by its name in the query string (``?name=``), never in the path: a
name may be ``..`` or hold ``%`` and ``?``, which a path would not keep.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import Response

from wifiprov.cloud import datastreams, templates
from wifiprov.cloud.accounts import RIGHTS
from wifiprov.cloud.console import kit
from wifiprov.cloud.db.schema import DATASTREAM_NAME_LENGTH, NAME_LENGTH
from wifiprov.cloud.errors import Conflict, Invalid, NotFound
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
    streams = await datastreams.list_datastreams(page.db, page.who, template_id)
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
        datastreams=[_shown(ds) for ds in streams],
    )


def _rights(page: kit.PageContext, template: dict[str, Any]) -> frozenset[str]:
    role = page.who.roles.get(int(template["org_id"]))
    return RIGHTS[role] if role else frozenset()


# What the template page says after a datastream form: a fixed table, so a link cannot make
# the page say anything else.
DATASTREAM_OUTCOMES = {
    "added": "Datastream added.",
    "saved": "Datastream saved.",
    "deleted": "Datastream deleted.",
}


@router.get("/templates/{template_id}")
async def show(
    page: kit.Page, template_id: str, created: int = 0, renamed: int = 0, ds: str = ""
) -> Response:
    notice = "Template created." if created else "Template saved." if renamed else ""
    return await _show(page, template_id, notice or DATASTREAM_OUTCOMES.get(ds, ""))


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


# --- datastreams ------------------------------------------------------------------------------


def number_text(value: float | None) -> str:
    """A bound as a person writes it: ``0``, ``-40.5``, ``1e+20``; empty when there is none."""
    if value is None:
        return ""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _shown(ds: dict[str, Any]) -> dict[str, Any]:
    return {
        **ds,
        "min_text": number_text(ds["min"]),
        "max_text": number_text(ds["max"]),
        "query": urlencode({"name": ds["name"]}),
    }


def _pin(text: str) -> int:
    """``V12``, ``v12`` or ``12`` as 12; anything else -1, which ``datastreams.problems``
    refuses with the API's words."""
    digits = text.strip().removeprefix("V").removeprefix("v")
    if digits.isascii() and digits.isdigit() and len(digits) <= 3:
        return int(digits)
    return -1


def _number(text: str) -> float | None:
    """An optional bound: None when empty, NaN (refused as not finite) when not a number."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return math.nan


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + "."


async def _find(page: kit.PageContext, template_id: str, name: str) -> dict[str, Any]:
    """The datastream ``name`` of a template the user may edit (404 page when there is none)."""
    for ds in await datastreams.list_datastreams(page.db, page.who, template_id):
        if ds["name"] == name:
            return ds
    raise NotFound(f"no datastream {name!r} in template {template_id}")


async def _form(
    page: kit.PageContext,
    template: dict[str, Any],
    values: dict[str, str],
    editing: bool,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    title = f"Edit datastream {values['name']}" if editing else "Add a datastream"
    return page.render(
        "templates/datastream.html",
        status,
        title=title,
        tmpl=template,
        values=values,
        editing=editing,
        errors=errors or {},
        types=datastreams.TYPES,
        ds_name_length=DATASTREAM_NAME_LENGTH,
        max_pin=datastreams.MAX_PIN,
        max_unit=datastreams.MAX_UNIT,
    )


def _values(ds: dict[str, Any]) -> dict[str, str]:
    return {
        "name": ds["name"],
        "pin": ds["pin"].removeprefix("V"),
        "type": ds["type"],
        "min": number_text(ds["min"]),
        "max": number_text(ds["max"]),
        "unit": ds["unit"],
    }


async def _save(
    page: kit.PageContext, template: dict[str, Any], form: dict[str, str], editing: bool
) -> Response:
    """Add or change a datastream from ``form``; the form again, with each field's problem and
    nothing changed, when it cannot be."""
    values = {key: form.get(key, "") for key in ("name", "pin", "type", "min", "max", "unit")}
    pin, lo, hi = _pin(values["pin"]), _number(values["min"]), _number(values["max"])
    errors = {
        key: _sentence(message)
        for key, message in datastreams.problems(
            values["name"], pin, values["type"], lo, hi, values["unit"]
        ).items()
    }
    existing = await datastreams.list_datastreams(page.db, page.who, template["id"])
    known = any(ds["name"] == values["name"] for ds in existing)
    if editing and not known:
        raise NotFound(f"no datastream {values['name']!r} in template {template['id']}")
    if not editing and known and "name" not in errors:
        errors["name"] = "This template has a datastream of this name already: edit that one."
    if not errors:
        try:
            await datastreams.put_datastream(
                page.db, page.who, template["id"], values["name"], pin, values["type"], lo, hi,
                values["unit"], exists=editing,
            )  # fmt: skip
        except datastreams.NameTaken:  # added by someone else since the check above
            errors["name"] = "This template has a datastream of this name already: edit that one."
        except Conflict as exc:  # the pin is another datastream's
            errors["pin"] = _sentence(exc.message)
        else:
            outcome = "saved" if editing else "added"
            return page.redirect(f"/templates/{template['id']}?ds={outcome}#datastreams")
    return await _form(page, template, values, editing, 400, errors)


@router.get("/templates/{template_id}/datastreams/new")
async def new_datastream_page(page: kit.Page, template_id: str) -> Response:
    template = await templates.get_template(page.db, page.who, template_id, right="manage")
    taken = {
        int(ds["pin"][1:])
        for ds in await datastreams.list_datastreams(page.db, page.who, template_id)
    }
    free = next((p for p in range(datastreams.MAX_PIN + 1) if p not in taken), None)
    values = {"name": "", "pin": "" if free is None else str(free), "type": "double"}
    return await _form(page, template, {**values, "min": "", "max": "", "unit": ""}, False)


@router.post("/templates/{template_id}/datastreams/new")
async def new_datastream(page: kit.Page, template_id: str) -> Response:
    template = await templates.get_template(page.db, page.who, template_id, right="manage")
    return await _save(page, template, await page.form(), editing=False)


@router.get("/templates/{template_id}/datastreams/edit")
async def edit_datastream_page(page: kit.Page, template_id: str, name: str = "") -> Response:
    template = await templates.get_template(page.db, page.who, template_id, right="manage")
    ds = await _find(page, template_id, name)
    return await _form(page, template, _values(ds), True)


@router.post("/templates/{template_id}/datastreams/edit")
async def edit_datastream(page: kit.Page, template_id: str) -> Response:
    template = await templates.get_template(page.db, page.who, template_id, right="manage")
    return await _save(page, template, await page.form(), editing=True)


@router.get("/templates/{template_id}/datastreams/delete")
async def delete_datastream_page(page: kit.Page, template_id: str, name: str = "") -> Response:
    template = await templates.get_template(page.db, page.who, template_id, right="manage")
    ds = await _find(page, template_id, name)
    return page.render(
        "templates/datastream_delete.html",
        title=f"Delete datastream {ds['name']}",
        tmpl=template,
        ds=ds,
    )


@router.post("/templates/{template_id}/datastreams/delete")
async def delete_datastream(page: kit.Page, template_id: str) -> Response:
    await templates.get_template(page.db, page.who, template_id, right="manage")
    form = await page.form()
    await datastreams.delete_datastream(page.db, page.who, template_id, form.get("name", ""))
    return page.redirect(f"/templates/{template_id}?ds=deleted#datastreams")
