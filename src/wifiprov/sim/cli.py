"""``wifiprov air``: list and edit the virtual air that sim devices and sim phones share."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wifiprov.sim.air import Air, AirError, Faults, Network, default_directory

air_app = typer.Typer(
    help="List and edit the virtual air: sim networks, the APs sim devices open, who joined what.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)


def _fail(message: str, todo: str = "") -> None:
    err.print(f"[bold red]error:[/] {message}")
    if todo:
        err.print(f"  {todo}")
    raise typer.Exit(1)


def _air(ctx: typer.Context) -> Air:
    air: Air = ctx.obj
    return air


@air_app.callback()
def air(
    ctx: typer.Context,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--air",
            envvar="WIFIPROV_AIR",
            help="the air's folder (default: $XDG_RUNTIME_DIR/wifiprov/air)",
        ),
    ] = None,
) -> None:
    """List and edit the virtual air (sim networks, APs, stations)."""
    ctx.obj = Air(folder or default_directory())


def _masked(password: str, show: bool) -> str:
    if show or not password:
        return password
    return "…" + password[-4:] if len(password) > 8 else "****"


def _faults(faults: Faults) -> str:
    words = [name for name in ("wrong_password", "not_found", "dhcp_fail") if getattr(faults, name)]
    if faults.assoc_delay:
        words.append(f"assoc_delay={faults.assoc_delay:g}s")
    return ", ".join(words) or "-"


@air_app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    show_passwords: Annotated[bool, typer.Option(help="show passwords in full")] = False,
) -> None:
    """Networks, access points and stations in the air."""
    air = _air(ctx)
    networks, aps, stations = air.networks(), air.aps(), air.stations()
    if as_json:
        out: dict[str, Any] = {
            "air": str(air.directory),
            "networks": {n.id: n.to_json() for n in networks},
            "aps": {a.device: a.to_json() for a in aps},
            "stations": {s.name: s.to_json() for s in stations},
        }
        for data in out["networks"].values():
            data["password"] = _masked(data["password"], show_passwords)
        for data in out["aps"].values():
            if data["passphrase"] is not None:
                data["passphrase"] = _masked(data["passphrase"], show_passwords)
        print(json.dumps(out, indent=2))
        return
    console.print(f"air: {air.directory}")
    table = Table("id", "ssid", "security", "password", "rssi", "ch", "hidden", "faults",
                  title="networks")
    for n in networks:
        table.add_row(n.id, _ssid(n.ssid), n.security, _masked(n.password, show_passwords),
                      str(n.rssi), str(n.channel), "yes" if n.hidden else "", _faults(n.faults))
    console.print(table)
    table = Table("device", "ssid", "bssid", "portal", "security", title="access points")
    for a in aps:
        table.add_row(a.device, a.ssid, a.bssid, a.portal_url or "(not listening yet)",
                      "open" if a.open else "WPA2")
    console.print(table)
    table = Table("station", "mac", "on", "ip", title="stations")
    for s in stations:
        on = f"network {s.network}" if s.network else f"AP of {s.ap}"
        table.add_row(s.name, s.mac, on, s.ip)
    console.print(table)


def _ssid(ssid: bytes) -> str:
    try:
        return ssid.decode("utf-8")
    except UnicodeDecodeError:
        return f"hex:{ssid.hex()}"


def _parse_ssid(ssid: str, is_hex: bool) -> bytes:
    if not is_hex:
        return ssid.encode()
    try:
        return bytes.fromhex(ssid)
    except ValueError:
        _fail(f"{ssid!r} is not hex", "give the SSID's bytes as hex digits, e.g. 486f6d65")
        raise


@air_app.command()
def add(
    ctx: typer.Context,
    ssid: Annotated[str, typer.Argument(help="the network's name")],
    password: Annotated[str, typer.Option("--password", "-p", help="empty: an open network")] = "",
    security: Annotated[
        str | None, typer.Option(help="OPEN, WPA2, WPA3, WPA2-EAP, ... (default: WPA2 or OPEN)")
    ] = None,
    rssi: Annotated[int, typer.Option(help="signal, dBm")] = -50,
    channel: Annotated[int, typer.Option()] = 6,
    hidden: Annotated[bool, typer.Option("--hidden", help="does not broadcast its SSID")] = False,
    identity: Annotated[str, typer.Option(help="enterprise: the identity it accepts")] = "",
    network_id: Annotated[str | None, typer.Option("--id", help="default: from the SSID")] = None,
    is_hex: Annotated[bool, typer.Option("--hex", help="SSID given as hex bytes")] = False,
) -> None:
    """Add a network to the air."""
    try:
        network = _air(ctx).add_network(
            _parse_ssid(ssid, is_hex), password, security=security, rssi=rssi, channel=channel,
            hidden=hidden, identity=identity, network_id=network_id,
        )
    except (AirError, ValueError) as exc:
        _fail(str(exc))
        raise
    console.print(f"added network [bold]{network.id}[/] ({_ssid(network.ssid)!r}, "
                  f"{network.security}, bssid {network.bssid})")


@air_app.command("set")
def set_(
    ctx: typer.Context,
    network_id: Annotated[str, typer.Argument(help="the network's id (see `list`)")],
    ssid: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option("--password", "-p")] = None,
    security: Annotated[str | None, typer.Option()] = None,
    rssi: Annotated[int | None, typer.Option()] = None,
    channel: Annotated[int | None, typer.Option()] = None,
    hidden: Annotated[bool | None, typer.Option("--hidden/--visible")] = None,
    is_hex: Annotated[bool, typer.Option("--hex", help="--ssid given as hex bytes")] = False,
) -> None:
    """Change a network's settings."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {"password": password, "security": security, "rssi": rssi,
                     "channel": channel, "hidden": hidden}.items()
        if v is not None
    }
    if ssid is not None:
        changes["ssid"] = _parse_ssid(ssid, is_hex)
    if not changes:
        _fail("nothing to change", "give at least one option, see --help")
    network = _edit(ctx, network_id, changes)
    console.print(f"network [bold]{network.id}[/] updated")


@air_app.command()
def fault(
    ctx: typer.Context,
    network_id: Annotated[str, typer.Argument(help="the network's id (see `list`)")],
    wrong_password: Annotated[
        bool | None, typer.Option("--wrong-password/--no-wrong-password",
                                  help="reject every password (722)")
    ] = None,
    not_found: Annotated[
        bool | None, typer.Option("--not-found/--no-not-found",
                                  help="out of range: not in scans, joins fail (720)")
    ] = None,
    dhcp_fail: Annotated[
        bool | None, typer.Option("--dhcp-fail/--no-dhcp-fail", help="no DHCP lease (723)")
    ] = None,
    assoc_delay: Annotated[
        float | None, typer.Option(help="seconds association takes (701 past the timeout)")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove every fault first")] = False,
) -> None:
    """Script faults on a network (the others stay as they are)."""
    given = {
        k: v
        for k, v in {"wrong_password": wrong_password, "not_found": not_found,
                     "dhcp_fail": dhcp_fail, "assoc_delay": assoc_delay}.items()
        if v is not None
    }
    if not given and not clear:
        _fail("no fault given", "e.g. --wrong-password, --not-found, --dhcp-fail, --assoc-delay 3")
    air = _air(ctx)
    try:
        if clear:
            air.update_network(network_id, faults=Faults())
        network = air.set_faults(network_id, **given)
    except (AirError, ValueError) as exc:
        _fail(str(exc))
        raise
    console.print(f"network [bold]{network.id}[/] faults: {_faults(network.faults)}")


def _edit(ctx: typer.Context, network_id: str, changes: dict[str, Any]) -> Network:
    try:
        return _air(ctx).update_network(network_id, **changes)
    except (AirError, ValueError) as exc:
        _fail(str(exc))
        raise


@air_app.command()
def remove(
    ctx: typer.Context,
    network_ids: Annotated[list[str], typer.Argument(help="ids of the networks to remove")],
) -> None:
    """Remove networks from the air (stations on them lose their link)."""
    for network_id in network_ids:
        try:
            _air(ctx).remove_network(network_id)
        except AirError as exc:
            _fail(str(exc))
        console.print(f"removed network [bold]{network_id}[/]")


@air_app.command()
def watch(
    ctx: typer.Context,
    duration: Annotated[float | None, typer.Option(help="stop after SECONDS")] = None,
) -> None:
    """Print the air's networks, APs and stations again each time they change (Ctrl-C stops)."""
    air = _air(ctx)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        end = None if duration is None else loop.time() + duration
        air.watch()
        while True:
            list_(ctx)
            remaining = None if end is None else end - loop.time()
            if remaining is not None and remaining <= 0:
                return
            if await air.wait_for_change(remaining):
                console.rule()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        air.close()


@air_app.command()
def join(
    ctx: typer.Context,
    ap_ssid: Annotated[str, typer.Argument(help="the AP's name, e.g. 'Blynk Demo-W8FH'")],
    passphrase: Annotated[str | None, typer.Option(help="for an AP with a passphrase")] = None,
    name: Annotated[str, typer.Option(help="the phone's name in the air")] = "phone",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the AP and its portal")]
    = 10.0,
) -> None:
    """Join a sim device's AP as a sim phone and print its portal's URL (http://192.168.4.1 on a
    real AP), e.g. curl "$(wifiprov air join 'Blynk Demo-W8FH')/board_info.json"."""
    from wifiprov.sim.phone import JoinError, SimPhone

    air = _air(ctx)
    try:
        url = asyncio.run(SimPhone(air, name).join(ap_ssid, passphrase, timeout=timeout))
    except JoinError as exc:
        _fail(str(exc), "see the access points with `wifiprov air list`")
        raise
    finally:
        air.close()
    print(url)


@air_app.command()
def leave(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="the phone's name in the air")] = "phone",
) -> None:
    """The sim phone leaves the AP it joined."""
    from wifiprov.sim.phone import SimPhone

    SimPhone(_air(ctx), name).leave()


@air_app.command()
def press(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="the sim device's id (its --device-id)")],
    hold: Annotated[float, typer.Option(help="seconds the button is held")] = 10.0,
) -> None:
    """Press a sim device's reset button (held 10 s or more: it erases its configuration)."""
    _air(ctx).press_button(device, hold)
    typer.echo(f"pressed {device}'s button for {hold:g} s")
