"""Every cloud object from the terminal: ``wifiprov whoami``, ``templates``, ``tokens``,
``members``, ``pins`` and ``device show``. Each listing takes ``--json`` (stdout, nothing else
there); messages and tables for people go to the terminal. A thin layer over ``CloudClient``."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from wifiprov import session
from wifiprov.provisioner.cli import _cloud, _fail, _run, confirm, err, out
from wifiprov.provisioner.client import CloudClient
from wifiprov.wire.errors import explain
from wifiprov.wire.naming import ap_name

CloudOption = Annotated[str | None, typer.Option(help="cloud URL (default: the saved session's)")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON on stdout")]
OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="organization id or name (default: your only one)"),
]
ROLES = ("owner", "admin", "installer", "operator", "viewer")

templates_app = typer.Typer(help="List, create, show and rename templates.", no_args_is_help=True)
tokens_app = typer.Typer(help="Provisioning tokens (with a setup link and its QR code).")
members_app = typer.Typer(help="An organization's members and their roles.", no_args_is_help=True)
pins_app = typer.Typer(help="Read and write a device's virtual pins.", no_args_is_help=True)
device_app = typer.Typer(help="One device in the cloud.", no_args_is_help=True)


@tokens_app.callback()
def _tokens() -> None:
    """Provisioning tokens: one claims one device of a template."""


@device_app.callback()
def _device() -> None:
    """One device in the cloud (the agent itself is `wifiprov device` with its own flags)."""


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=None), flush=True)


def _when(epoch: float | None) -> str:
    if not epoch:
        return "never"
    ago = max(0.0, time.time() - float(epoch))
    if ago < 120:
        rel = f"{ago:.0f} s ago"
    elif ago < 7200:
        rel = f"{ago / 60:.0f} min ago"
    elif ago < 172800:
        rel = f"{ago / 3600:.0f} h ago"
    else:
        rel = f"{ago / 86400:.0f} days ago"
    stamp = dt.datetime.fromtimestamp(float(epoch)).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{stamp} ({rel})"


# --- organizations and templates, resolved from what a person types ---


async def _org(client: CloudClient, wanted: str | None) -> dict[str, Any]:
    orgs = await client.organizations()
    if not orgs:
        _fail("you are not a member of any organization", "ask an owner to `members invite` you")
    if wanted is None:
        if len(orgs) == 1:
            return orgs[0]
        names = ", ".join(f"{o['name']} ({o['id']})" for o in orgs)
        _fail("you are in several organizations: which one?", f"pass --org with one of: {names}")
    match = [o for o in orgs if wanted in (str(o["id"]), o["name"])]
    if not match:
        names = ", ".join(f"{o['name']} ({o['id']})" for o in orgs)
        _fail(f"no organization '{wanted}' among yours", f"choose one of: {names}")
    return match[0]


async def _all_templates(client: CloudClient) -> list[dict[str, Any]]:
    found = []
    for org in await client.organizations():
        for t in await client.templates(org["id"]):
            found.append({**t, "org_name": org["name"], "hotspot_prefix": org["hotspot_prefix"]})
    return found


async def _template(client: CloudClient, wanted: str) -> dict[str, Any]:
    found = await _all_templates(client)
    match = [t for t in found if wanted in (t["id"], t["name"])]
    if not match:
        names = ", ".join(f"{t['name']} ({t['id']})" for t in found) or "none yet"
        _fail(f"no template '{wanted}' in your organizations", f"choose one of: {names}")
    if len(match) > 1:
        ids = ", ".join(f"{t['id']} ({t['org_name']})" for t in match)
        _fail(f"several templates are named '{wanted}'", f"give its id: {ids}")
    return match[0]


def _c_string(text: str) -> str:
    """A C string literal of ``text`` (quotes and backslashes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _firmware_lines(config: dict[str, Any]) -> list[str]:
    example = ap_name(config["hotspot_prefix"] or "Blynk", config["template_name"], "XXXX")
    return [
        f"#define BLYNK_TEMPLATE_ID   {_c_string(config['template_id'])}",
        f"#define BLYNK_TEMPLATE_NAME {_c_string(config['template_name'])}",
        f"its devices in setup mode call their WiFi '{example}'",
    ]


def device_toml(config: dict[str, Any]) -> str:
    """The ``device.toml`` of a ``wifiprov device`` of this template (``--config``)."""
    lines = [
        "[device]",
        f"template_id = {json.dumps(config['template_id'])}",
        f"template_name = {json.dumps(config['template_name'])}",
        f"vendor = {json.dumps(config['hotspot_prefix'] or 'Blynk')}",
        f"host = {json.dumps(config['host'])}",
    ]
    if config.get("port"):
        lines.append(f"port = {int(config['port'])}")
    if config.get("port_ssl"):
        lines.append(f"port_ssl = {int(config['port_ssl'])}")
    return "\n".join(lines) + "\n"


@templates_app.command("list")
def templates_list(cloud: CloudOption = None, json_out: JsonOption = False) -> None:
    """Templates of all your organizations."""

    async def main() -> list[dict[str, Any]]:
        async with _cloud(cloud) as client:
            return await _all_templates(client)

    rows = _run(main())
    if json_out:
        _print_json(rows)
        return
    if not rows:
        err.print("No templates yet: `wifiprov templates create NAME`.")
        return
    table = Table("id", "name", "firmware type", "organization", "created")
    for t in rows:
        table.add_row(t["id"], t["name"], t["firmware_type"], t["org_name"], _when(t["created_at"]))
    out.print(table)


@templates_app.command("create")
def templates_create(
    name: Annotated[str, typer.Argument(help="the template's name (BLYNK_TEMPLATE_NAME)")],
    firmware_type: Annotated[
        str, typer.Option(help="firmware type (default: the template id)")
    ] = "",
    description: Annotated[str, typer.Option(help="what the product is, for people")] = "",
    org: OrgOption = None,
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create a template, and print what its firmware needs."""

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            chosen = await _org(client, org)
            template = await client.create_template(chosen["id"], name, firmware_type, description)
            return {**template, "firmware_config": await client.firmware_config(template["id"])}

    template = _run(main())
    if json_out:
        _print_json(template)
        return
    out.print(f"Created template [bold]{template['name']}[/] ({template['id']}).")
    for line in _firmware_lines(template["firmware_config"]):
        out.print(f"  {line}", markup=False, highlight=False)


@templates_app.command("show")
def templates_show(
    template: Annotated[str, typer.Argument(help="template id or name")],
    cloud: CloudOption = None,
    json_out: JsonOption = False,
    toml: Annotated[
        bool,
        typer.Option(
            "--device-toml",
            help="print only the device.toml of a `wifiprov device` of this template "
            "(wifiprov device --config device.toml)",
        ),
    ] = False,
) -> None:
    """A template and what its firmware needs (template id and name, AP name, host, ports)."""

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            found = await _template(client, template)
            config = await client.firmware_config(found["id"])
            return {**found, "firmware_config": config}

    t = _run(main())
    if toml:
        sys.stdout.write(device_toml(t["firmware_config"]))
        return
    if json_out:
        _print_json(t)
        return
    c = t["firmware_config"]
    out.print(f"[bold]{t['name']}[/] ({t['id']}), organization {t['org_name']}")
    out.print(f"  firmware type: {t['firmware_type']}", highlight=False)
    out.print(f"  created:       {_when(t['created_at'])}", highlight=False)
    ports = ", ".join(
        f"{what} {port}" for what, port in (("plain", c["port"]), ("TLS", c["port_ssl"])) if port
    )
    out.print(f"  devices use:   {c['host']} ({ports or 'no gateway port'})", highlight=False)
    for line in _firmware_lines(c):
        out.print(f"  {line}", markup=False, highlight=False)
    out.print(
        f"  for `wifiprov device`: wifiprov templates show {t['id']} --device-toml > device.toml",
        markup=False,
        highlight=False,
    )


@templates_app.command("edit")
def templates_edit(
    template: Annotated[str, typer.Argument(help="template id or name")],
    name: Annotated[str | None, typer.Option(help="the new name")] = None,
    description: Annotated[
        str | None, typer.Option(help="what the product is, for people ('' clears it)")
    ] = None,
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """Rename a template or change its description. Devices already flashed keep the old name
    in their AP name."""
    if name is None and description is None:
        _fail("nothing to change", "give --name NEW and/or --description TEXT")

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            found = await _template(client, template)
            return await client.update_template(found["id"], name=name, description=description)

    t = _run(main())
    if json_out:
        _print_json(t)
        return
    out.print(f"template {t['id']} is now '{t['name']}'")
    if description is not None:
        out.print(f"  description: {t.get('description') or '(none)'}", markup=False)
    if name is not None:
        err.print(
            "  firmware flashed with the old BLYNK_TEMPLATE_NAME keeps it in its AP name: "
            f"`wifiprov provision --template {t['id']}` still finds those devices with --device"
        )


# --- datastreams (a template's names for virtual pins, for MQTT devices) ---
datastreams_app = typer.Typer(
    help="A template's datastreams: names bound to virtual pins (Blynk's MQTT API uses names).",
    no_args_is_help=True,
)
templates_app.add_typer(datastreams_app, name="datastreams")


def _quoted(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@datastreams_app.command("list")
def datastreams_list(
    template: Annotated[str, typer.Argument(help="template id or name")],
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """The template's datastreams, by pin."""

    async def main() -> list[dict[str, Any]]:
        async with _cloud(cloud) as client:
            found = await _template(client, template)
            return list(await client.call("GET", f"/api/templates/{found['id']}/datastreams"))

    streams = _run(main())
    if json_out:
        _print_json(streams)
        return
    if not streams:
        out.print("no datastreams yet: `wifiprov templates datastreams set TEMPLATE NAME V1`")
        return
    table = Table("pin", "name", "type", "min", "max", "unit")
    for d in streams:
        table.add_row(
            d["pin"],
            d["name"],
            d["type"],
            "" if d["min"] is None else str(d["min"]),
            "" if d["max"] is None else str(d["max"]),
            d["unit"],
        )
    out.print(table)


@datastreams_app.command("set")
def datastreams_set(
    template: Annotated[str, typer.Argument(help="template id or name")],
    name: Annotated[str, typer.Argument(help="the datastream's name (MQTT topic ds/NAME)")],
    pin: Annotated[str, typer.Argument(help="its virtual pin, V0..V255")],
    kind: Annotated[str, typer.Option("--type", help="integer, double or string")] = "string",
    low: Annotated[float | None, typer.Option("--min", help="smallest value")] = None,
    high: Annotated[float | None, typer.Option("--max", help="largest value")] = None,
    unit: Annotated[str, typer.Option(help="unit shown with the value")] = "",
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create or replace a datastream (a name for a virtual pin)."""
    number = _pin_number(pin)
    if not name or any(c in name for c in "/+#") or any(ord(c) < 32 for c in name):
        _fail(
            f"'{name}' cannot be a datastream name (one MQTT topic level)",
            "give 1 to 64 characters without '/', '+', '#' or control characters",
        )

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            found = await _template(client, template)
            body = {"pin": number, "type": kind, "min": low, "max": high, "unit": unit}
            path = f"/api/templates/{found['id']}/datastreams/{_quoted(name)}"
            return dict(await client.call("PUT", path, json=body))

    d = _run(main())
    if json_out:
        _print_json(d)
        return
    out.print(f"datastream '{d['name']}' is {d['pin']} ({d['type']})", highlight=False)


@datastreams_app.command("remove")
def datastreams_remove(
    template: Annotated[str, typer.Argument(help="template id or name")],
    name: Annotated[str, typer.Argument(help="the datastream's name")],
    cloud: CloudOption = None,
) -> None:
    """Remove a datastream (the pin's stored value stays)."""

    async def main() -> None:
        async with _cloud(cloud) as client:
            found = await _template(client, template)
            path = f"/api/templates/{found['id']}/datastreams/{_quoted(name)}"
            await client.call("DELETE", path)

    _run(main())
    out.print(f"datastream '{name}' removed", highlight=False)


# --- provisioning tokens ---


def qr_text(data: str) -> str:
    """``data`` as a QR code in text, two modules a character (Unicode half blocks, no colours):
    it renders in any terminal with a Unicode font, light or dark."""
    import io

    import segno

    buffer = io.StringIO()
    segno.make(data, error="l", micro=False).terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue()


@tokens_app.command("create")
def tokens_create(
    template: Annotated[str, typer.Option(help="template id or name")],
    qr: Annotated[bool, typer.Option(help="draw the setup link as a QR code")] = True,
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """A provisioning token for one device of TEMPLATE: the token, its expiry, the setup link
    (a phone on the device's WiFi opens it) and that link as a QR code."""

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            found = await _template(client, template)
            return {**await client.provisioning_token(found["id"]), "template_name": found["name"]}

    t = _run(main())
    if json_out:
        _print_json(t)
        return
    left = max(0.0, t["expires_at"] - time.time())
    expiry = dt.datetime.fromtimestamp(t["expires_at"]).astimezone().strftime("%H:%M:%S %Z")
    out.print(f"Provisioning token for one '{t['template_name']}' ({t['template_id']}) device:")
    out.print(f"  token:      {t['token']}", markup=False, highlight=False)
    out.print(f"  expires:    {expiry} (in {left / 60:.0f} min) unless a device claims it first")
    ports = ", ".join(
        f"{what} {port}" for what, port in (("port", t["port"]), ("TLS", t["port_ssl"])) if port
    )
    out.print(f"  device use: {t['host']} {ports}", highlight=False)
    out.print(f"  setup link: {t['setup_link']}", markup=False, highlight=False, soft_wrap=True)
    if qr:
        out.print("Join the device's WiFi with a phone, then scan this to open its setup page:")
        out.print(qr_text(t["setup_link"]), markup=False, highlight=False, end="")
    err.print(f"  follow it: `wifiprov provision` or GET /api/provisioning/{t['id']}?wait=30")


# --- members ---


async def _member(client: CloudClient, org_id: int, email: str) -> dict[str, Any] | None:
    wanted = email.strip().lower()
    for m in await client.members(org_id):
        if str(m["email"]).lower() == wanted:
            return m
    return None


@members_app.command("list")
def members_list(
    org: OrgOption = None, cloud: CloudOption = None, json_out: JsonOption = False
) -> None:
    """Members of an organization and their roles."""

    async def main() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with _cloud(cloud) as client:
            chosen = await _org(client, org)
            return chosen, await client.members(chosen["id"])

    chosen, rows = _run(main())
    if json_out:
        _print_json(rows)
        return
    table = Table("email", "role", title=f"{chosen['name']} ({chosen['id']})")
    for m in rows:
        table.add_row(m["email"], m["role"])
    out.print(table)


@members_app.command("invite")
def members_invite(
    email: Annotated[str, typer.Argument(help="their e-mail")],
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES[1:])}")] = "installer",
    org: OrgOption = None,
    cloud: CloudOption = None,
) -> None:
    """Add someone (an e-mail without an account is invited: `wifiprov cloud init` with that
    e-mail sets their password)."""
    _set_role(email, role, org, cloud, "invited")


@members_app.command("role")
def members_role(
    email: Annotated[str, typer.Argument(help="the member's e-mail")],
    role: Annotated[str, typer.Argument(help=f"one of {', '.join(ROLES)}")],
    org: OrgOption = None,
    cloud: CloudOption = None,
) -> None:
    """Change a member's role (`owner` transfers ownership; only the owner may)."""
    _set_role(email, role, org, cloud, "role")


def _set_role(email: str, role: str, org: str | None, cloud: str | None, verb: str) -> None:
    if role not in ROLES:
        _fail(f"no role '{role}'", f"choose one of {', '.join(ROLES)}")

    async def main() -> tuple[dict[str, Any], dict[str, Any] | None]:
        async with _cloud(cloud) as client:
            chosen = await _org(client, org)
            if verb == "role" and await _member(client, chosen["id"], email) is None:
                _fail(
                    f"{email} is not a member of {chosen['name']}",
                    f"add them with `wifiprov members invite {email} --role {role}`",
                )
            before = await _member(client, chosen["id"], email)
            await client.set_member(chosen["id"], email, role)
            return chosen, before

    chosen, before = _run(main())
    if before is None:
        out.print(f"{email} is now a member of {chosen['name']} as {role}")
    else:
        out.print(f"{email}: {before['role']} → {role} in {chosen['name']}")


@members_app.command("remove")
def members_remove(
    email: Annotated[str, typer.Argument(help="the member's e-mail")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    org: OrgOption = None,
    cloud: CloudOption = None,
) -> None:
    """Remove a member from an organization (their sessions end at once)."""

    async def find() -> tuple[dict[str, Any], dict[str, Any] | None]:
        async with _cloud(cloud) as client:
            chosen = await _org(client, org)
            return chosen, await _member(client, chosen["id"], email)

    chosen, member = _run(find())
    if member is None:
        _fail(f"{email} is not a member of {chosen['name']}", "see `wifiprov members list`")
        return
    confirm(f"Remove {member['email']} ({member['role']}) from {chosen['name']}", yes)

    async def main() -> None:
        async with _cloud(cloud) as client:
            await client.remove_member(chosen["id"], member["email"])

    _run(main())
    out.print(f"removed {member['email']} from {chosen['name']}")


# --- whoami ---


def whoami(cloud: CloudOption = None, json_out: JsonOption = False) -> None:
    """Who the saved session signs in as, on which cloud, in which organizations."""

    async def main() -> tuple[str, dict[str, Any]]:
        async with _cloud(cloud) as client:
            return client.url, await client.me()

    url, me = _run(main())
    if json_out:
        _print_json({**me, "cloud": url, "session": str(session.session_path())})
        return
    out.print(f"{me['email']} on {url}", highlight=False)
    for o in me["organizations"]:
        out.print(
            f"  {o['name']} ({o['id']}): {o['role']}, devices' WiFi named "
            f"'{o['hotspot_prefix']} <template>-XXXX'",
            highlight=False,
        )
    if not me["organizations"]:
        out.print("  no organization yet")


# --- a device: show, pins ---


def _pin_number(pin: str) -> int:
    digits = pin[1:] if pin[:1] in ("V", "v") else pin
    if not (digits.isascii() and digits.isdigit()) or int(digits) > 255:
        _fail(f"'{pin}' is not a virtual pin", "give V0 .. V255 (or 0 .. 255)")
    return int(digits)


def _last_error(device: dict[str, Any]) -> str:
    code = device.get("last_error") or device["info"].get("last_error")
    if not code:
        return "none reported"
    try:
        words = explain(int(code))
    except (TypeError, ValueError):
        return str(code)
    return f"{words.what} (error {code}); {words.todo}"


@device_app.command("show")
def device_show(
    device_id: Annotated[int, typer.Argument(help="device id (see `wifiprov devices`)")],
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """A device: template, reported template, firmware, last IP, last seen, last error, pins."""

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            device = await client.device(device_id)
            template = await client.template(device["template_id"])
            return {
                **device,
                "template_name": template["name"],
                "pins": await client.pins(device_id),
            }

    d = _run(main())
    if json_out:
        _print_json(d)
        return
    info = d["info"]
    reported = d.get("reported_template") or "not reported"
    if d.get("template_mismatch"):
        reported = f"[bold red]{reported}: not this device's template[/]"
    state = "[green]online[/]" if d["online"] else "offline"
    firmware = " ".join(
        x for x in (info.get("firmware_version"), info.get("build") and f"({info['build']})") if x
    )
    last_ip = d.get("last_ip") or info.get("ip") or d["meta"].get("ip") or "not recorded"
    rows = [
        ("template", f"{d['template_name']} ({d['template_id']})"),
        ("reported template", reported),
        ("state", state),
        ("firmware", firmware or "not reported"),
        ("board", info.get("board") or "not reported"),
        ("last IP", str(last_ip)),
        ("last seen", "now" if d["online"] else _when(d.get("last_seen"))),
        ("connected", _when(d.get("connected_at")) if d["online"] else "-"),
        ("last error", _last_error(d)),
        ("token", "…" + d["token_last4"]),
    ]
    out.print(f"[bold]{d['name']}[/] (device {d['id']})")
    for label, value in rows:
        out.print(f"  {label + ':':<18} {value}", highlight=False)
    if d["pins"]:
        out.print("  pins:")
        for pin, values in d["pins"].items():
            out.print(f"    {pin:<5} {_values(values)}", highlight=False, markup=False)
    else:
        out.print("  pins:              none stored")


def _values(values: list[str]) -> str:
    return values[0] if len(values) == 1 else json.dumps(values)


@pins_app.command("get")
def pins_get(
    device_id: Annotated[int, typer.Argument(help="device id")],
    pin: Annotated[str | None, typer.Argument(help="V0..V255 (default: every stored pin)")] = None,
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """Stored virtual pin values of a device (what it last sent, or was last sent)."""
    number = _pin_number(pin) if pin is not None else None

    async def main() -> dict[str, list[str]]:
        async with _cloud(cloud) as client:
            return await client.pins(device_id)

    pins = _run(main())
    if number is not None:
        key = f"V{number}"
        if key not in pins:
            if json_out:
                _print_json(None)
            _fail(f"device {device_id} has no value stored for {key}")
        pins = {key: pins[key]}
    if json_out:
        _print_json(pins if number is None else pins[f"V{number}"])
        return
    if number is not None:
        print(_values(pins[f"V{number}"]), flush=True)
        return
    if not pins:
        err.print(f"device {device_id} has no stored pin values")
    for key, values in pins.items():
        print(f"{key}\t{_values(values)}", flush=True)


@pins_app.command("set")
def pins_set(
    device_id: Annotated[int, typer.Argument(help="device id")],
    pin: Annotated[str, typer.Argument(help="V0..V255")],
    value: Annotated[list[str], typer.Argument(help="the value (several: a multi-value write)")],
    cloud: CloudOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write a virtual pin: stored, and sent to the device when it is online."""
    number = _pin_number(pin)

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            body: str | list[str] = value[0] if len(value) == 1 else value
            reply = await client.call(
                "PUT", f"/api/devices/{device_id}/pins/{number}", json={"value": body}
            )
            return dict(reply)

    reply = _run(main())
    if json_out:
        _print_json(reply)
        return
    if reply.get("delivered"):
        out.print(f"V{number} = {_values(value)}: delivered to device {device_id}")
    else:
        why = reply.get("message") or reply.get("delivery") or "not delivered"
        out.print(f"V{number} = {_values(value)}: stored; {why}", highlight=False)


def device_show_main(argv: list[str]) -> int:
    """``wifiprov device show …`` (``wifiprov device`` is otherwise the agent's argparse CLI)."""
    try:
        device_app(["show", *argv], prog_name="wifiprov device")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


NAMES = ("whoami", "templates", "tokens", "members", "pins")


def register(app: typer.Typer) -> None:
    app.command()(whoami)
    app.add_typer(templates_app, name="templates")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(members_app, name="members")
    app.add_typer(pins_app, name="pins")


if __name__ == "__main__":  # pragma: no cover - `python -m wifiprov.provisioner.objects show 3`
    sys.exit(device_show_main(sys.argv[2:] if sys.argv[1:2] == ["show"] else sys.argv[1:]))
