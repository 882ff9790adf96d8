"""Terminal front end: ``wifiprov provision`` and the device commands (list, rename, ...)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.prompt import Prompt
from rich.table import Table

from wifiprov import session
from wifiprov.provisioner.client import (
    CloudClient,
    CloudRequestFailed,
    CloudUnreachable,
    SessionInvalid,
)
from wifiprov.provisioner.flow import Choices, Event, Provisioner, ProvisioningFailed
from wifiprov.provisioner.wifi.base import JoinFailed

out = Console()
err = Console(stderr=True)


class TerminalPrompts:
    def choose(self, question: str, options: list[str]) -> str:
        for i, option in enumerate(options, 1):
            err.print(f"  {i}. {option}")
        while True:
            answer = Prompt.ask(question, console=err)
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return options[int(answer) - 1]
            if answer in options:
                return answer
            err.print(f"  type a number from 1 to {len(options)}")

    def text(self, question: str, default: str = "", secret: bool = False) -> str:
        return Prompt.ask(question, console=err, default=default or None, password=secret) or ""


def _fail(what: str, todo: str = "") -> None:
    err.print(f"[bold red]error:[/] {what}")
    if todo:
        err.print(f"  {todo}")
    raise typer.Exit(1)


def confirm(what: str, yes: bool) -> None:
    """Ask "<what>? [y/N]" on a terminal; without one, only --yes goes ahead."""
    if yes:
        return
    if not sys.stdin.isatty():
        _fail(f"not confirmed: {what}?", "pass --yes to confirm without a terminal")
    if not typer.confirm(f"{what}?", default=False, err=True):
        err.print("Nothing done.")
        raise typer.Exit(1)


def _cloud(cloud: str | None) -> CloudClient:
    saved = session.load()
    if saved is None:
        _fail(
            f"not signed in (no session in {session.session_path()})",
            "run `wifiprov login --cloud URL --email YOU` first",
        )
        raise AssertionError
    return CloudClient(cloud or saved["cloud"], saved["token"])


def cloud_failed(exc: CloudRequestFailed) -> None:
    """Say what went wrong with the cloud, and what to do (sign in again, check the URL)."""
    if isinstance(exc, CloudUnreachable | SessionInvalid):
        _fail(str(exc), exc.todo)
    status = f" (HTTP {exc.status})" if exc.status else ""
    _fail(f"the cloud said: {exc}{status}", exc.todo)


def _wifi(kind: str, air: Path | None, portal: str | None, interface: str | None) -> Any:
    """The phone-side WiFi backend; imported lazily (nm pulls in D-Bus)."""
    if kind == "sim":
        from wifiprov.provisioner.wifi.sim import SimPhoneWifi
        from wifiprov.sim.air import Air, default_directory

        # Each provisioner process is its own phone in the air, so several can work at once.
        return SimPhoneWifi(Air(air or default_directory()), name=f"phone-{os.getpid()}")
    if kind == "joined":
        from wifiprov.provisioner.wifi.joined import DEFAULT_PORTAL, JoinedWifi

        return JoinedWifi(portal or DEFAULT_PORTAL)
    if kind == "nm":
        try:
            from wifiprov.provisioner.wifi.nm import NmPhoneWifi
        except ImportError as exc:
            _fail(f"the NetworkManager WiFi backend is not available: {exc}", "use --wifi joined")
            raise AssertionError from None
        return NmPhoneWifi(interface=interface)
    _fail(f"no phone WiFi backend '{kind}'", "use --wifi sim, joined or nm")
    raise AssertionError


async def _restore_nm() -> None:
    """Put the phone's WiFi back as it was if an earlier `provision --wifi nm` was cut short."""
    try:
        from wifiprov.provisioner.wifi.nm import restore_after_interruption
    except ImportError as exc:
        _fail(f"the NetworkManager WiFi backend is not available: {exc}", "use --wifi joined")
        return
    restored = restore_after_interruption()
    if inspect.isawaitable(restored):
        await restored


def provision(
    template: Annotated[str | None, typer.Option(help="template id or name")] = None,
    device: Annotated[str | None, typer.Option(help="the device's access point name")] = None,
    ssid: Annotated[str | None, typer.Option(help="the network the device should join")] = None,
    hidden: Annotated[bool, typer.Option(help="the network hides its name")] = False,
    password_file: Annotated[
        Path | None, typer.Option(help="file holding the network's password")
    ] = None,
    name: Annotated[str | None, typer.Option(help="name for the device")] = None,
    ap_passphrase: Annotated[
        str | None,
        typer.Option(
            envvar="WIFIPROV_AP_PASSPHRASE",
            help="the device's WiFi passphrase, when its access point is secured",
        ),
    ] = None,
    save: Annotated[bool, typer.Option(help="ask the device to save at once (Edgent save=1)")] = (
        False
    ),
    wifi: Annotated[
        str,
        typer.Option(
            help="phone WiFi backend: sim (the sim air), joined (you already joined the "
            "device's WiFi) or nm (NetworkManager joins it)"
        ),
    ] = "sim",
    air: Annotated[Path | None, typer.Option(help="sim: the air's folder")] = None,
    portal: Annotated[
        str | None, typer.Option(help="joined: the device's portal URL (http://blynk.setup)")
    ] = None,
    interface: Annotated[
        str | None, typer.Option(help="nm: the WiFi interface to use (default: the first)")
    ] = None,
    cloud: Annotated[str | None, typer.Option(help="cloud URL (default: the saved session)")] = (
        None
    ),
    timeout: Annotated[float, typer.Option(help="seconds to wait for the device")] = 90.0,
    json_events: Annotated[bool, typer.Option("--json", help="JSON lines, one per event")] = (
        False
    ),
) -> None:
    """Provision a device in setup mode: network, password and a cloud token, then name it."""
    password = None
    if password_file is not None:
        try:
            password = password_file.read_text().rstrip("\n")
        except OSError as exc:
            _fail(f"cannot read the password file: {exc}")
    interactive = sys.stdin.isatty() and not json_events
    choices = Choices(
        template=template,
        device=device,
        ssid=ssid,
        password=password,
        hidden=hidden,
        name=name,
        save=save,
        ap_passphrase=ap_passphrase,
    )

    def show(event: Event) -> None:
        if json_events:
            print(
                json.dumps(
                    {
                        "step": event.step,
                        "message": event.message,
                        "elapsed": event.elapsed,
                        **_public(event.data),
                    }
                ),
                flush=True,
            )
        else:
            err.print(f"[dim]{event.elapsed:6.2f}s[/] {event.message}")

    async def main() -> dict[str, Any]:
        if wifi == "nm":
            await _restore_nm()
        async with _cloud(cloud) as client:
            flow = Provisioner(
                client,
                _wifi(wifi, air, portal, interface),
                show,
                TerminalPrompts() if interactive else None,
                online_timeout=timeout,
            )
            while True:
                try:
                    return await flow.run(choices)
                except ProvisioningFailed as exc:
                    if not (interactive and exc.code in RETRYABLE):
                        raise
                    err.print(f"[bold red]{exc.what}[/] {exc.todo}")
                    if Prompt.ask("Try again?", choices=["y", "n"], console=err) != "y":
                        raise
                    # Ask again for the network and password only.
                    choices.template = flow.chosen.get("template", choices.template)
                    choices.device = flow.chosen.get("device", choices.device)
                    choices.ssid = choices.password = None

    try:
        result = asyncio.run(main())
    except ProvisioningFailed as exc:
        if json_events:
            print(
                json.dumps(
                    {"step": "failed", "message": exc.what, "todo": exc.todo, "code": exc.code}
                ),
                flush=True,
            )
        _fail(exc.what, exc.todo)
        return
    except CloudRequestFailed as exc:
        _fail(f"the cloud said: {exc}")
        return
    except JoinFailed as exc:  # from the WiFi backend before any join (e.g. not on its network)
        if json_events:
            print(json.dumps({"step": "failed", "message": str(exc), "todo": ""}), flush=True)
        _fail(str(exc))
        return
    if not json_events:
        state = "is online" if result["online"] else "is named, but offline again"
        out.print(f"[bold green]Done:[/] '{result['name']}' (device {result['id']}) {state}.")


RETRYABLE = {700, 701, 720, 722, 723}


def _public(data: dict[str, Any]) -> dict[str, Any]:
    """Event data for --json, without anything secret."""
    return {k: v for k, v in data.items() if k not in ("token", "password")}


# --- device commands ---


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except CloudRequestFailed as exc:
        cloud_failed(exc)


def devices(
    cloud: Annotated[str | None, typer.Option(help="cloud URL (default: the saved session)")] = (
        None
    ),
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List your devices with their online state."""

    async def main() -> list[dict[str, Any]]:
        async with _cloud(cloud) as client:
            return await client.devices()

    rows = _run(main())
    if json_out:
        print(json.dumps(rows))
        return
    table = Table("id", "name", "template", "online", "firmware", "token")
    for d in rows:
        table.add_row(
            str(d["id"]),
            d["name"],
            d["template_id"],
            "[green]online[/]" if d["online"] else "offline",
            d["info"].get("firmware_version", ""),
            "…" + d["token_last4"],
        )
    out.print(table)


def reconfigure(
    device_id: Annotated[int, typer.Argument(help="device id (see `wifiprov devices`)")],
    cloud: Annotated[str | None, typer.Option(help="cloud URL")] = None,
) -> None:
    """Tell an online device to go back to setup mode (keeps its configuration)."""

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            return dict(await client.call("POST", f"/api/devices/{device_id}/reconfigure"))

    reply = _run(main())
    out.print(f"reconfigure: {reply.get('message') or 'done'} (device {device_id})")


def _destructive(verb: str, question: str, done: str, doc: str) -> Any:
    def command(
        device_id: Annotated[int, typer.Argument(help="device id (see `wifiprov devices`)")],
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="do not ask for confirmation")
        ] = False,
        cloud: Annotated[str | None, typer.Option(help="cloud URL")] = None,
    ) -> None:
        async def look() -> dict[str, Any]:
            async with _cloud(cloud) as client:
                return await client.device(device_id)

        device = _run(look())
        confirm(question.format(id=device_id, name=device["name"]), yes)

        async def main() -> None:
            async with _cloud(cloud) as client:
                await getattr(client, verb)(device_id)

        _run(main())
        out.print(done.format(id=device_id, name=device["name"]))

    command.__doc__ = doc
    return command


erase = _destructive(
    "erase",
    "Erase all data of device {id} '{name}' (pin values, events, reported info)",
    "erased the data of device {id} '{name}'",
    "Erase all device data (values, events, reported info); asks first, or --yes.",
)
delete = _destructive(
    "delete",
    "Delete device {id} '{name}' (its token stops working at once)",
    "deleted device {id} '{name}'",
    "Delete a device: its token stops working at once; asks first, or --yes.",
)


def rename(
    device_id: Annotated[int, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    cloud: Annotated[str | None, typer.Option(help="cloud URL")] = None,
) -> None:
    """Rename a device."""

    async def main() -> dict[str, Any]:
        async with _cloud(cloud) as client:
            return await client.rename(device_id, name)

    device = _run(main())
    out.print(f"device {device_id} is now '{device['name']}'")


def register(app: typer.Typer) -> None:
    from wifiprov.provisioner import objects

    objects.register(app)
    app.command()(provision)
    app.command()(devices)
    app.command(name="reconfigure")(reconfigure)
    app.command(name="erase")(erase)
    app.command(name="delete")(delete)
    app.command()(rename)
