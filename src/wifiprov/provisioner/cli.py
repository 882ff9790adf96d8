"""Terminal front end: ``wifiprov provision`` and the device commands (list, rename, ...)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import sys
import time
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
    def __init__(self, spinner: Spinner | None = None) -> None:
        self.spinner = spinner  # stopped before a question: a prompt under a spinner is garbled

    def choose(self, question: str, options: list[str]) -> str:
        if self.spinner is not None:
            self.spinner.stop()
        for i, option in enumerate(options, 1):
            err.print(f"  {i}. {option}")
        while True:
            answer = Prompt.ask(question, console=err)
            number = answer.isascii() and answer.isdigit() and len(answer) <= 6
            if number and 1 <= int(answer) <= len(options):
                return options[int(answer) - 1]
            if answer in options:
                return answer
            err.print(f"  type a number from 1 to {len(options)}")

    def text(self, question: str, default: str = "", secret: bool = False) -> str:
        if self.spinner is not None:
            self.spinner.stop()
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
        str | None,
        typer.Option(
            help="how this machine reaches the device: nm (NetworkManager joins its WiFi), "
            "joined (you joined the device's WiFi yourself) or sim (the sim air); default: sim "
            "with --air, joined with --portal, else nm when NetworkManager answers, else asked"
        ),
    ] = None,
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
    ble: Annotated[
        bool,
        typer.Option(
            "--ble",
            help="reach the device over Bluetooth LE (Blynk.Inject, bleak) instead of its WiFi; "
            "this machine stays on its own network",
        ),
    ] = False,
    ble_adapter: Annotated[
        str | None, typer.Option(help="--ble: the Bluetooth adapter (default: the system's)")
    ] = None,
    ble_code: Annotated[
        str | None,
        typer.Option(
            envvar="WIFIPROV_BLE_CODE",
            help="--ble: the code on the device's label, for a device that requires one",
        ),
    ] = None,
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
    spinner = Spinner(err) if err.is_terminal and not json_events else None

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
            return
        if spinner is not None and event.step == "waiting":
            spinner.start(event.data["what"], event.data["timeout"])
            return
        if spinner is not None and event.step != "progress":
            spinner.stop()
        err.print(f"[dim]{event.elapsed:6.2f}s[/] {event.message}", highlight=False)

    def failed(what: str, todo: str = "", code: int | None = None) -> None:
        if json_events:
            print(
                json.dumps({"step": "failed", "message": what, "todo": todo, "code": code}),
                flush=True,
            )
        _fail(what, todo)

    state: dict[str, Any] = {}  # the flow and the WiFi backend, for an interrupted run

    async def main_ble() -> dict[str, Any]:
        from wifiprov.provisioner.ble import BleakCentral, BleProvisioner

        show(Event("ble", "reaching the device over Bluetooth LE", 0.0, {"ble": True}))
        async with _cloud(cloud) as client:
            flow = BleProvisioner(
                client,
                BleakCentral(ble_adapter),
                show,
                TerminalPrompts(spinner) if interactive else None,
                online_timeout=timeout,
                code=ble_code,
            )
            state["flow"] = flow
            return await flow.run(choices)

    async def main() -> dict[str, Any]:
        if ble:
            return await main_ble()
        kind, why = await _choose_wifi(wifi, air, portal, interactive)
        show(Event("wifi", f"reaching the device with --wifi {kind}: {why}", 0.0, {"wifi": kind}))
        if kind == "nm":
            await _restore_nm()
        phone = _wifi(kind, air, portal, interface)
        state["wifi"] = phone
        async with _cloud(cloud) as client:
            flow = Provisioner(
                client,
                phone,
                show,
                TerminalPrompts(spinner) if interactive else None,
                online_timeout=timeout,
            )
            state["flow"] = flow
            try:
                while True:
                    try:
                        return await flow.run(choices)
                    except ProvisioningFailed as exc:
                        if not (interactive and exc.code in RETRYABLE):
                            raise
                        if spinner is not None:
                            spinner.stop()
                        err.print(f"[bold red]{exc.what}[/] {exc.todo}")
                        if Prompt.ask("Try again?", choices=["y", "n"], console=err) != "y":
                            raise
                        # Ask again for the network and password only.
                        choices.template = flow.chosen.get("template", choices.template)
                        choices.device = flow.chosen.get("device", choices.device)
                        choices.ssid = choices.password = None
            except (asyncio.CancelledError, KeyboardInterrupt):
                if spinner is not None:
                    spinner.stop()
                state["wifi_back"] = await _leave(phone)
                raise

    previous = signal.getsignal(signal.SIGINT)
    # Ctrl-C raises KeyboardInterrupt wherever it lands (a prompt included, which asyncio's own
    # handler would only cancel after the prompt returns); the flow's clean-up then runs.
    signal.signal(signal.SIGINT, _interrupt)
    try:
        result = asyncio.run(main())
    except KeyboardInterrupt:
        _interrupted(state, json_events)
        return
    except ProvisioningFailed as exc:
        failed(exc.what, exc.todo, exc.code)
        return
    except CloudRequestFailed as exc:
        if isinstance(exc, CloudUnreachable | SessionInvalid):
            failed(str(exc), exc.todo)
        failed(f"the cloud said: {exc}", exc.todo)
        return
    except JoinFailed as exc:  # from the WiFi backend before any join (e.g. not on its network)
        failed(str(exc))
        return
    finally:
        signal.signal(signal.SIGINT, previous)
        if spinner is not None:
            spinner.stop()
    if not json_events:
        state_words = "is online" if result["online"] else "is named, but offline again"
        out.print(f"[bold green]Done:[/] '{result['name']}' (device {result['id']}) {state_words}.")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


async def _leave(phone: Any) -> str:
    """Back to this machine's own network after Ctrl-C; says how it went."""
    try:
        async with asyncio.timeout(15):
            await phone.leave()
    except BaseException as exc:  # noqa: BLE001 - a second Ctrl-C, D-Bus trouble: say so
        return f"could not return to this machine's network ({exc or type(exc).__name__})"
    return ""


def _interrupted(state: dict[str, Any], json_events: bool) -> None:
    flow: Provisioner | None = state.get("flow")
    words = flow.left_in() if flow is not None else "nothing was sent to the device"
    back = state.get("wifi_back", "")
    if back and state.get("wifi").__class__.__name__ == "NmPhoneWifi":
        back += "; the next `wifiprov provision --wifi nm` restores it"
    if json_events:
        print(
            json.dumps(
                {
                    "step": "interrupted",
                    "message": f"interrupted: {words}",
                    "state": flow.stage if flow is not None else "start",
                    "device_id": flow.device_id if flow is not None else None,
                    "wifi": back or "back on this machine's network",
                }
            ),
            flush=True,
        )
    err.print(f"\n[bold yellow]interrupted:[/] {words}", highlight=False)
    if back:
        err.print(f"  {back}", highlight=False)
    raise typer.Exit(130)


class Spinner:
    """What a long step waits for, with the time passed and its timeout, on a terminal."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live
        from rich.spinner import Spinner as RichSpinner

        self.console = console
        self.spinner = RichSpinner("dots")
        self.what, self.timeout, self.since = "", 0.0, 0.0
        self.live = Live(
            console=console, get_renderable=self._render, refresh_per_second=8, transient=True
        )
        self.running = False

    def _render(self) -> Any:
        passed = time.monotonic() - self.since
        self.spinner.update(
            text=f"waiting for {self.what}: {passed:.0f} s (timeout {self.timeout:.0f} s)"
        )
        return self.spinner

    def start(self, what: str, timeout: float) -> None:
        self.what, self.timeout, self.since = what, timeout, time.monotonic()
        if not self.running:
            self.live.start()
            self.running = True

    def stop(self) -> None:
        if self.running:
            self.live.stop()
            self.running = False


async def _choose_wifi(
    wifi: str | None, air: Path | None, portal: str | None, interactive: bool
) -> tuple[str, str]:
    """The phone WiFi backend, and why it is that one (said before anything else)."""
    if wifi is not None:
        return wifi, "as given (--wifi)"
    if air is not None:
        return "sim", "--air given: the simulated air"
    if portal is not None:
        return "joined", "--portal given: you joined the device's WiFi yourself"
    from wifiprov.provisioner.wifi.choose import networkmanager_missing

    missing = await networkmanager_missing()
    if missing is None:
        return "nm", "NetworkManager answers on the system D-Bus and manages a WiFi device"
    if interactive:
        err.print(f"NetworkManager cannot join the device's WiFi here: {missing}")
        options = [
            "joined: I join the device's WiFi myself (named '<prefix> <template>-XXXX')",
            "sim: the simulated air of `wifiprov air` (demo, tests)",
        ]
        picked = TerminalPrompts().choose("How do you reach the device?", options)
        return picked.split(":")[0], "as chosen"
    raise ProvisioningFailed(
        f"cannot choose how to reach the device: NetworkManager is not usable ({missing})",
        "join the device's WiFi yourself (it is named '<prefix> <template>-XXXX'; a phone or any "
        "OS can) and run again with --wifi joined; --wifi sim --air DIR for the simulated air",
    )


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


async def _find(client: CloudClient, wanted: str) -> dict[str, Any]:
    """A device by id (digits) or by its exact name."""
    if wanted.isascii() and wanted.isdigit():
        return await client.device(int(wanted))
    found = [d for d in await client.devices() if d["name"] == wanted]
    if not found:
        _fail(f"no device named {wanted!r}", "see `wifiprov devices` for ids and names")
    if len(found) > 1:
        ids = ", ".join(str(d["id"]) for d in found)
        _fail(f"several devices are named {wanted!r}", f"give its id instead: one of {ids}")
    return found[0]


DeviceRef = Annotated[str, typer.Argument(help="device id or name (see `wifiprov devices`)")]


def ping(
    device: DeviceRef,
    timeout: Annotated[
        float, typer.Option(help="seconds to wait for each acknowledgement (at most 30)")
    ] = 5.0,
    count: Annotated[int, typer.Option(min=1, max=1000, help="pings, one after another")] = 1,
    cloud: Annotated[str | None, typer.Option(help="cloud URL")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per ping")] = False,
) -> None:
    """Ping an online device through the cloud (Blynk's "Ping": MQTT devices acknowledge
    downlink/ping), like ping(8): each round trip, then with --count a summary; exit status 1
    when no ping was acknowledged."""

    async def main() -> int:
        acked: list[float] = []
        async with _cloud(cloud) as client:
            found = await _find(client, device)
            who = f"device {found['id']} '{found['name']}'"
            path = f"/api/devices/{found['id']}/ping"
            for _ in range(count):
                started = time.monotonic()
                reply = dict(await client.call("POST", path, params={"timeout": timeout}))
                api_ms = (time.monotonic() - started) * 1000
                if json_out:
                    print(json.dumps({**reply, "api_ms": round(api_ms, 3)}), flush=True)
                node = f", node {reply['node']}" if reply.get("node") else ""
                if reply["acked"]:
                    acked.append(float(reply["rtt_ms"]))
                    if not json_out:
                        out.print(
                            f"{who} acknowledged the ping in {reply['rtt_ms']:.1f} ms "
                            f"({api_ms:.1f} ms through the cloud's API{node})",
                            highlight=False,
                        )
                elif not json_out:
                    err.print(f"{who}: {reply['message']}{node}", highlight=False)
        if count > 1 and not json_out:
            ordered = sorted(acked)
            line = f"{count} pings, {len(acked)} acknowledged"
            if ordered:
                median = ordered[len(ordered) // 2]
                line += f"; device round trip min/median/max {ordered[0]:.2f}/{median:.2f}/"
                line += f"{ordered[-1]:.2f} ms"
            out.print(line, highlight=False)
        return len(acked)

    if not _run(main()):
        raise typer.Exit(1)


def reboot(
    device: DeviceRef,
    cloud: Annotated[str | None, typer.Option(help="cloud URL")] = None,
) -> None:
    """Tell an online device to reboot (Blynk's "Reboot": downlink/reboot over MQTT, INTERNAL
    dbg reboot over the Blynk protocol); a wifiprov agent restarts and keeps its configuration."""

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with _cloud(cloud) as client:
            found = await _find(client, device)
            return found, dict(await client.call("POST", f"/api/devices/{found['id']}/reboot"))

    found, reply = _run(main())
    out.print(
        f"reboot: sent {reply.get('sent') or 'the reboot'} to device {found['id']} "
        f"'{found['name']}'",
        highlight=False,
    )


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
    app.command(name="ping")(ping)
    app.command(name="reboot")(reboot)
    app.command(name="erase")(erase)
    app.command(name="delete")(delete)
    app.command()(rename)
