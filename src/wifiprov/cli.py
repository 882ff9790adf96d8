"""The one ``wifiprov`` command."""

from __future__ import annotations

import asyncio
import errno
import functools
import getpass
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wifiprov import session

app = typer.Typer(
    help="Open WiFi provisioning, wire-compatible with Blynk.Edgent.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish)
)
cloud_app = typer.Typer(
    help="Run the cloud (HTTP API + device gateway), or set it up.", invoke_without_command=True
)
app.add_typer(cloud_app, name="cloud")


def _print_version(value: bool) -> None:
    if value:
        from wifiprov import __version__

        print(f"wifiprov {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Open WiFi provisioning, wire-compatible with Blynk.Edgent."""


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


def _read_password(password_file: Path | None, confirm: bool, min_length: int = 0) -> str:
    if password_file is not None:
        try:
            password = password_file.read_text().rstrip("\n")
        except OSError as exc:
            fail(f"cannot read the password file: {exc}")
            raise
    elif not sys.stdin.isatty():
        fail("no password given", "pass --password-file FILE when not running interactively")
        raise typer.Exit(1)
    else:
        password = getpass.getpass("Password: ")
    if len(password) < min_length:  # said before asking for it twice
        fail(f"the password must have at least {min_length} characters")
    if confirm and password_file is None and getpass.getpass("Again: ") != password:
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
    mqtt: Annotated[
        str | None,
        typer.Option(help="Blynk's MQTT device API (3.1.1 and 5), plain TCP, HOST:PORT (1883)"),
    ] = None,
    mqtt_tls: Annotated[
        str | None, typer.Option(help="Blynk's MQTT device API over TLS, HOST:PORT (8883)")
    ] = None,
    mqtt_ws: Annotated[
        str | None, typer.Option(help="the MQTT API over WebSocket at /mqtt, HOST:PORT (8080)")
    ] = None,
    mqtt_wss: Annotated[
        str | None,
        typer.Option(help="the MQTT API over WebSocket with TLS at /mqtt, HOST:PORT (443)"),
    ] = None,
    mqtt_max_packet: Annotated[
        int, typer.Option(help="largest MQTT packet accepted (remaining length, bytes)")
    ] = 64 * 1024,
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
    lease: Annotated[
        float,
        typer.Option(
            help="seconds this node's lease on its devices' presence lasts: when a node stops "
            "renewing (killed, cut off), the others mark its devices offline after this"
        ),
    ] = 10,
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
    for flag, value in (("--mqtt-tls", mqtt_tls), ("--mqtt-wss", mqtt_wss)):
        if value is not None and not (cert and key):
            fail(f"{flag} needs --cert and --key", "give the certificate chain and key in PEM")
    if not 0.5 <= lease <= 3600:
        fail("--lease is out of range", "give 0.5 to 3600 seconds (default 10)")
    if not 128 <= mqtt_max_packet <= 16 * 1024 * 1024:
        fail("--mqtt-max-packet is out of range", "give 128 to 16777216 bytes")
    settings = CloudSettings(
        http=_address(http, 8080, "--http") or ("127.0.0.1", 8080),
        gateway=_address(gateway, 8442, "--gateway"),
        gateway_tls=_address(gateway_tls, 8441, "--gateway-tls"),
        mqtt=_address(mqtt, 1883, "--mqtt"),
        mqtt_tls=_address(mqtt_tls, 8883, "--mqtt-tls"),
        mqtt_ws=_address(mqtt_ws, 8080, "--mqtt-ws"),
        mqtt_wss=_address(mqtt_wss, 443, "--mqtt-wss"),
        mqtt_max_packet=mqtt_max_packet,
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
        lease=lease,
    )
    if db:
        settings.db_url = db
    if public_host:
        settings.public_host = public_host
    settings.node_id = node_id or stable_node_id(settings)

    problem = _db_problem(settings.db_url)
    if problem:
        fail(problem, "give --db a file in a folder you can write, or a postgresql:// URL")

    async def main() -> None:
        try:
            cloud = await Cloud.open(settings)
        except OSError as exc:
            fail(
                f"cannot open the database {_safe_url(settings.db_url)}: {exc}",
                "give --db a file in a folder you can write, or a postgresql:// URL",
            )
            return
        ready = asyncio.Event()
        # SIGTERM and SIGINT close the gateway, write its devices offline, and exit 0.
        serving = asyncio.create_task(cloud.serve(ready, handle_signals=True))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if ready.is_set():
            await _say_where(cloud)
        await serving

    try:
        # uvloop: the gateway's accept/read/write path costs about 40% less CPU than on asyncio's
        # default loop (docs/benchmarks.md).
        import uvloop

        uvloop.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot start the cloud: {exc}", _bind_hint(exc, settings))
    except Exception as exc:  # DatabaseUnavailable and friends: say it in words
        from wifiprov.cloud.db import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable):
            fail(f"cannot reach the database: {exc}", "check --db and that the server is running")
        raise


class AlreadyInitialised(Exception):
    """``cloud init`` on a database that has an owner."""


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
    """Create the first user and their organization (the user becomes its owner). Everything
    is checked before anything is created; a cloud that has an owner already is refused (add
    people with `wifiprov members invite`)."""
    from sqlalchemy import select

    from wifiprov.cloud import accounts
    from wifiprov.cloud.db import Database, DatabaseUnavailable
    from wifiprov.cloud.db.schema import NAME_LENGTH, memberships, users
    from wifiprov.cloud.errors import CloudError
    from wifiprov.cloud.settings import default_db_url

    if not accounts.EMAIL.fullmatch(email.strip().lower()):
        fail(f"'{email}' is not an e-mail address")
    if not org.strip() or len(org) > NAME_LENGTH:
        fail(f"the organization needs a name of 1 to {NAME_LENGTH} characters")
    try:
        accounts.check_prefix(hotspot_prefix)
    except CloudError as exc:
        fail(exc.message)
    url = db or default_db_url()
    problem = _db_problem(url)
    if problem:
        fail(problem, "give --db a file in a folder you can write, or a postgresql:// URL")
    password = _read_password(password_file, confirm=True, min_length=accounts.MIN_PASSWORD)

    async def main() -> int:
        database = Database(url)
        try:
            await database.migrate()
            async with database.begin() as conn:
                owner = await conn.scalar(
                    select(users.c.email)
                    .join(memberships, memberships.c.user_id == users.c.id)
                    .where(memberships.c.role == "owner")
                    .limit(1)
                )
            if owner is not None:
                raise AlreadyInitialised(owner)
            user_id = await accounts.create_user(database, email, password)
            return await accounts.create_org(database, org, user_id, hotspot_prefix)
        finally:
            await database.close()

    try:
        org_id = asyncio.run(main())
    except AlreadyInitialised as exc:
        fail(
            f"this cloud has an owner already ({exc.args[0]}): `cloud init` creates only the first",
            "add people with `wifiprov members invite EMAIL` (signed in as the owner or an admin)",
        )
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
    console: Annotated[
        bool,
        typer.Option(
            "--console",
            help="then keep the cloud and the device running and print the web console's URL "
            "with the demo user's e-mail and password, until Ctrl-C",
        ),
    ] = False,
    ble: Annotated[
        bool, typer.Option("--ble", help="provision over (simulated) Bluetooth LE instead")
    ] = False,
    link: Annotated[
        str,
        typer.Option(
            "--link",
            help="the device's cloud link: blynk (the Blynk protocol) or mqtt (Blynk's MQTT API)",
        ),
    ] = "blynk",
) -> None:
    """The whole flow on a laptop: cloud, simulated device and network, provisioner."""
    from wifiprov.demo import FAILURES, LINKS, run_demo

    if failure is not None and failure not in FAILURES:
        fail(f"--fail must be one of {', '.join(FAILURES)}")
    if link not in LINKS:
        fail(f"--link must be one of {', '.join(LINKS)}")
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
                console=console,
                ble=ble,
                link=link,
            )
        )
    except KeyboardInterrupt:  # --console: stopped with Ctrl-C, after the clean-up
        print("demo stopped", flush=True)
        return
    except OSError as exc:
        fail(f"cannot start the demo: {exc}", "choose other ports with --http / --gateway")
        return
    print(f"demo complete: '{result['device']['name']}' is online and answered '{result['V2']}'")


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://…"


def _db_problem(url: str) -> str | None:
    """Why a SQLite path cannot hold the database, before anything starts."""
    if "://" in url and not url.startswith("sqlite"):
        return None
    path = Path(url.split(":///", 1)[1] if "://" in url else url).expanduser()
    if path.exists() and not path.is_file():
        return f"--db {path} is not a file"
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"--db {path}: {folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"--db {path}: cannot write there (permission denied)"
    return None


async def _say_where(cloud: Any) -> None:
    """Where the cloud is, and what devices are told, once it serves."""
    from sqlalchemy import func, select

    from wifiprov.cloud import reach
    from wifiprov.cloud.db.schema import users

    s = cloud.settings
    host, port = cloud.http_address
    lines = [
        f"database: {_safe_url(s.db_url)}",
        f"HTTP API: http://{host}:{port}/",
    ]
    listeners = cloud.gateway.addresses()
    lines.append("device gateway: " + ", ".join(f"{h}:{p}" for h, p in listeners))
    for kind, (h, p) in cloud.gateway.mqtt_addresses().items():
        what = {"mqtt": "plain", "mqtt_tls": "TLS", "mqtt_ws": "WebSocket /mqtt"}
        lines.append(f"MQTT device API ({what.get(kind, 'WebSocket + TLS /mqtt')}): {h}:{p}")
    lines.append(
        f"devices are told: host {s.public_host}, port {s.device_port}, "
        f"TLS port {s.device_port_ssl} (change with --public-host / --public-port / "
        "--public-port-ssl)"
    )
    warning = reach.warning(s.public_host)
    if warning:
        lines.append(f"warning: {warning}")
    async with cloud.db.begin() as conn:
        count = (await conn.execute(select(func.count()).select_from(users))).scalar_one()
    if not count:
        lines.append("no user yet: run `wifiprov cloud init --email YOU` (then `wifiprov login`)")
    for line in lines:
        print(line, flush=True)


def _bind_hint(exc: OSError, settings: Any = None) -> str:
    """What to do about an address the cloud could not take."""
    if exc.errno == errno.EADDRINUSE and settings is not None:
        from wifiprov.linux.ports import port_in_use_message

        for flag, address in (
            ("--http", settings.http),
            ("--gateway", settings.gateway),
            ("--gateway-tls", settings.gateway_tls),
            ("--mqtt", settings.mqtt),
            ("--mqtt-tls", settings.mqtt_tls),
            ("--mqtt-ws", settings.mqtt_ws),
            ("--mqtt-wss", settings.mqtt_wss),
        ):
            if address is None or not address[1]:
                continue
            try:
                socket.create_server(address).close()
            except OSError as taken:
                if taken.errno == errno.EADDRINUSE:
                    return f"{flag}: " + port_in_use_message(address[0], address[1], "tcp")
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
    """Run the device agent (see `wifiprov device --help`); `device show ID`: a cloud device."""
    if ctx.args[:1] == ["show"]:
        from wifiprov.provisioner.objects import device_show_main

        raise typer.Exit(device_show_main(ctx.args[1:]))
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
PROVISIONER = (
    "provision",
    "devices",
    "reconfigure",
    "ping",
    "reboot",
    "erase",
    "delete",
    "rename",
    "whoami",
    "templates",
    "tokens",
    "members",
    "pins",
)


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
