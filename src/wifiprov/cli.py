"""The one ``wifiprov`` command."""

from __future__ import annotations

import asyncio
import errno
import functools
import getpass
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wifiprov import session

app = typer.Typer(
    help="Open WiFi provisioning, wire-compatible with Blynk.Edgent.",
    no_args_is_help=True,
    add_completion=False,
)
cloud_app = typer.Typer(
    help="Run the cloud (HTTP API + device gateway), or set it up.", invoke_without_command=True
)
app.add_typer(cloud_app, name="cloud")


@functools.cache
def _console() -> Any:
    """rich's Console for messages, made on first use (commands that print little stay light)."""
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str, todo: str = "") -> None:
    _console().print(f"[bold red]error:[/] {message}")
    if todo:
        _console().print(f"  {todo}")
    raise typer.Exit(1)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _address(value: str | None, default_port: int, what: str) -> tuple[str, int] | None:
    from wifiprov.cloud.settings import parse_address

    if value is None:
        return None
    try:
        return parse_address(value, default_port)
    except ValueError as exc:
        fail(f"{what}: {exc}")
        raise


def _read_password(password_file: Path | None, confirm: bool) -> str:
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n")
        except OSError as exc:
            fail(f"cannot read the password file: {exc}")
    if not sys.stdin.isatty():
        fail("no password given", "pass --password-file FILE when not running interactively")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        fail("the passwords differ")
    return password


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite path or postgresql://user@host/db (default: a SQLite file "
        "in your data directory)",
    ),
]


@cloud_app.callback()
def cloud(
    ctx: typer.Context,
    db: DbOption = None,
    http: Annotated[str, typer.Option(help="HTTP API address HOST:PORT")] = "127.0.0.1:8080",
    gateway: Annotated[
        str, typer.Option(help="device gateway, plain TCP, HOST:PORT")
    ] = "0.0.0.0:8442",
    gateway_tls: Annotated[
        str | None, typer.Option(help="device gateway over TLS, HOST:PORT (default port 8441)")
    ] = None,
    cert: Annotated[Path | None, typer.Option(help="TLS certificate chain (PEM)")] = None,
    key: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
    public_host: Annotated[
        str | None, typer.Option(help="host name devices are told to use (default: this host)")
    ] = None,
    public_port: Annotated[
        int | None, typer.Option(help="plain port devices are told (default: the gateway's)")
    ] = None,
    public_port_ssl: Annotated[
        int | None, typer.Option(help="TLS port devices are told (default: the TLS gateway's)")
    ] = None,
    bus: Annotated[
        str | None, typer.Option(help="nats://HOST:PORT to join other cloud nodes")
    ] = None,
    node_id: Annotated[
        str | None,
        typer.Option(
            help="this node's name: presence is kept under it, and a node clears at start the "
            "presence left by earlier runs with the same name (default: HOST:PORT of this "
            "host's name and the gateway's port)"
        ),
    ] = None,
    provisioning_ttl: Annotated[
        float, typer.Option(help="seconds a provisioning token may claim a device")
    ] = 900,
    login_timeout: Annotated[float, typer.Option(help="seconds a connection has to log in")] = 5,
    session_idle: Annotated[
        float, typer.Option(help="seconds an API session may go unused before it ends")
    ] = 7 * 24 * 3600,
    session_lifetime: Annotated[
        float, typer.Option(help="seconds an API session lasts after sign-in, used or not")
    ] = 30 * 24 * 3600,
    hash_workers: Annotated[
        int, typer.Option(help="threads that check passwords (argon2), off the event loop")
    ] = 1,
    hash_queue: Annotated[
        int, typer.Option(help="sign-ins that may wait for a password check; more get 429")
    ] = 8,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the HTTP API and the device gateway (SQLite by default, created on first start)."""
    if ctx.invoked_subcommand is not None:
        return
    from wifiprov.cloud.app import Cloud, stable_node_id
    from wifiprov.cloud.settings import CloudSettings

    _logging(verbose)
    if gateway_tls is not None and not (cert and key):
        fail("--gateway-tls needs --cert and --key", "give the certificate chain and key in PEM")
    settings = CloudSettings(
        http=_address(http, 8080, "--http") or ("127.0.0.1", 8080),
        gateway=_address(gateway, 8442, "--gateway"),
        gateway_tls=_address(gateway_tls, 8441, "--gateway-tls"),
        cert=cert,
        key=key,
        bus_url=bus,
        provisioning_ttl=provisioning_ttl,
        login_timeout=login_timeout,
        public_port=public_port,
        public_port_ssl=public_port_ssl,
        session_idle=session_idle,
        session_lifetime=session_lifetime,
        hash_workers=hash_workers,
        hash_queue=hash_queue,
    )
    if db:
        settings.db_url = db
    if public_host:
        settings.public_host = public_host
    settings.node_id = node_id or stable_node_id(settings)

    async def main() -> None:
        cloud = await Cloud.open(settings)
        # SIGTERM and SIGINT close the gateway, write its devices offline, and exit 0.
        await cloud.serve(handle_signals=True)

    try:
        # uvloop: the gateway's accept/read/write path costs about 40% less CPU than on asyncio's
        # default loop (docs/benchmarks.md).
        import uvloop

        uvloop.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot start the cloud: {exc}", _bind_hint(exc))
    except Exception as exc:  # DatabaseUnavailable and friends: say it in words
        from wifiprov.cloud.db import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable):
            fail(f"cannot reach the database: {exc}", "check --db and that the server is running")
        raise


@cloud_app.command("init")
def cloud_init(
    email: Annotated[str, typer.Option(help="the first user's e-mail")],
    org: Annotated[str, typer.Option(help="the organization's name")] = "My organization",
    hotspot_prefix: Annotated[str, typer.Option(help="AP name prefix of its devices")] = "Blynk",
    password_file: Annotated[
        Path | None, typer.Option(help="read the password from a file")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create the first user and their organization (the user becomes its owner)."""
    from wifiprov.cloud import accounts
    from wifiprov.cloud.db import Database, DatabaseUnavailable
    from wifiprov.cloud.errors import CloudError
    from wifiprov.cloud.settings import default_db_url

    password = _read_password(password_file, confirm=True)

    async def main() -> int:
        database = Database(db or default_db_url())
        try:
            await database.migrate()
            user_id = await accounts.create_user(database, email, password)
            return await accounts.create_org(database, org, user_id, hotspot_prefix)
        finally:
            await database.close()

    try:
        org_id = asyncio.run(main())
    except CloudError as exc:
        fail(exc.message)
    except DatabaseUnavailable as exc:
        fail(f"cannot reach the database: {exc}")
    _console().print(f"Created user [bold]{email}[/] and organization '{org}' (id {org_id}).")
    _console().print("Start the cloud with [bold]wifiprov cloud[/], then [bold]wifiprov login[/].")


@app.command()
def login(
    email: Annotated[str, typer.Option(help="your e-mail")],
    cloud: Annotated[str, typer.Option(help="the cloud's HTTP API")] = "http://127.0.0.1:8080",
    password_file: Annotated[
        Path | None, typer.Option(help="read the password from a file")
    ] = None,
) -> None:
    """Sign in to a cloud and keep the session (mode 0600) for the other commands."""
    password = _read_password(password_file, confirm=False)
    reply = _request(
        "POST", cloud, "/api/auth/sign-in", json={"email": email, "password": password}
    )
    path = session.save(cloud.rstrip("/"), reply["token"], email)
    _console().print(f"Signed in to {cloud} as {email}; session saved in {path}.")


@app.command()
def logout() -> None:
    """Revoke the saved session and forget it."""
    saved = session.load()
    if saved is None:
        _console().print("Not signed in.")
        return
    try:
        _request("POST", saved["cloud"], "/api/auth/sign-out", token=saved["token"])
    except typer.Exit:
        _console().print("(could not reach the cloud to revoke the session; forgetting it anyway)")
    session.clear()
    _console().print("Signed out.")


@app.command()
def demo(
    failure: Annotated[
        str | None,
        typer.Option("--fail", help="show a failure first: wrong-password, not-found or no-dhcp"),
    ] = None,
    http: Annotated[str, typer.Option(help="HTTP API address (port 0: any free)")] = (
        "127.0.0.1:0"
    ),
    gateway: Annotated[str, typer.Option(help="device gateway address")] = "127.0.0.1:0",
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="keep the demo's temporary folder (the cloud's database, the air, the device's "
            "store: it holds a token and a WiFi password); removed by default",
        ),
    ] = False,
) -> None:
    """The whole flow on a laptop: cloud, simulated device and network, provisioner."""
    from wifiprov.demo import FAILURES, run_demo

    if failure is not None and failure not in FAILURES:
        fail(f"--fail must be one of {', '.join(FAILURES)}")
    logging.basicConfig(level=logging.WARNING)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        result = asyncio.run(
            run_demo(
                say,
                _address(http, 0, "--http") or ("127.0.0.1", 0),
                _address(gateway, 0, "--gateway") or ("127.0.0.1", 0),
                failure,
                keep=keep,
            )
        )
    except OSError as exc:
        fail(f"cannot start the demo: {exc}", "choose other ports with --http / --gateway")
        return
    print(f"demo complete: '{result['device']['name']}' is online and answered '{result['V2']}'")


def _bind_hint(exc: OSError) -> str:
    """What to do about an address the cloud could not take."""
    if exc.errno == errno.EACCES:
        return (
            "ports below 1024 need CAP_NET_BIND_SERVICE: give it to the service "
            "(AmbientCapabilities=CAP_NET_BIND_SERVICE, see docs/provisioning.md) or use a port "
            "from 1024 up, e.g. --gateway-tls 0.0.0.0:9443"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            "another process uses that address: choose another with "
            "--http / --gateway / --gateway-tls"
        )
    return "check the addresses given with --http / --gateway / --gateway-tls"


def _request(method: str, cloud: str, path: str, token: str | None = None, **kw: Any) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        reply = httpx.request(method, cloud.rstrip("/") + path, headers=headers, timeout=70, **kw)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the cloud at {cloud}: {exc}", "check the URL and that it is running")
        raise
    if reply.status_code >= 400:
        try:
            message = reply.json().get("message", reply.text)
        except ValueError:
            message = reply.text
        fail(f"the cloud said: {message} (HTTP {reply.status_code})")
    return reply.json() if reply.content else None


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def device(ctx: typer.Context) -> None:
    """Run the device agent (see `wifiprov device --help`)."""
    from wifiprov.device.cli import main as device_main

    raise typer.Exit(device_main(ctx.args))


def _add_air() -> None:
    from wifiprov.sim.cli import air_app

    app.add_typer(air_app, name="air", help="List and edit the simulated WiFi air.")


def _add_bench() -> None:
    from wifiprov.bench.cli import bench_app

    app.add_typer(bench_app, name="bench", help="Load generators; results in docs/benchmarks.md.")


# Commands whose modules load only when they run, so each command imports only what it uses.
def _add_provisioner() -> None:
    from wifiprov.provisioner.cli import register

    register(app)


LAZY = {"air": _add_air, "bench": _add_bench}
PROVISIONER = ("provision", "devices", "reconfigure", "erase", "delete", "rename")


def main() -> None:
    """The console script. ``wifiprov device`` skips typer altogether (see device/cli.py)."""
    wanted = sys.argv[1] if len(sys.argv) > 1 else ""
    everything = wanted not in LAZY and wanted not in PROVISIONER
    for name, add in LAZY.items():
        if everything or wanted == name:
            add()
    if everything or wanted in PROVISIONER:
        _add_provisioner()
    app()


if __name__ == "__main__":
    main()
