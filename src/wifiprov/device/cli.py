"""``wifiprov device``: run the agent from a TOML config file, flags, or both (flags win)."""

from __future__ import annotations

import asyncio
import logging
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from wifiprov.device.machine import Settings

# Keys of the config file (the flags have the same names with dashes).
KEYS = (
    "template_id",
    "template_name",
    "vendor",
    "firmware_version",
    "firmware_type",
    "board",
    "radio",
    "air",
    "device_id",
    "mac",
    "portal",
    "store",
    "host",
    "port",
    "port_ssl",
    "ca_file",
    "led_pin",
    "button_pin",
    "allow_host_reboot",
    "ap_and_station",
)
DEFAULTS: dict[str, Any] = {
    "vendor": "Blynk",
    "firmware_version": "0.1.0",
    "board": "Linux",
    "radio": "sim",
    "device_id": "device",
    "store": "wifiprov-device.json",
    "host": "blynk.cloud",
    "port": 80,
    "port_ssl": 443,
    "allow_host_reboot": False,
    "ap_and_station": True,
}


def load_settings(config: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the config file, then the flags that were given."""
    values = dict(DEFAULTS)
    if config is not None:
        try:
            data = tomllib.loads(config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read {config}: {exc}") from None
        section = data.get("device", data)
        unknown = sorted(set(section) - set(KEYS))
        if unknown:
            raise ValueError(f"{config}: unknown keys {', '.join(unknown)}")
        values.update(section)
    values.update({k: v for k, v in flags.items() if v is not None})
    for key in ("template_id", "template_name"):
        if not values.get(key):
            raise ValueError(
                f"missing {key}: give --{key.replace('_', '-')} or put it in the config file"
            )
    return values


def device(
    config: Annotated[Path | None, typer.Option(help="TOML file with the keys below")] = None,
    template_id: Annotated[str | None, typer.Option(help="TMPL… id from the cloud")] = None,
    template_name: Annotated[str | None, typer.Option()] = None,
    vendor: Annotated[str | None, typer.Option(help="hotspot prefix (default Blynk)")] = None,
    firmware_version: Annotated[str | None, typer.Option()] = None,
    board: Annotated[str | None, typer.Option()] = None,
    radio: Annotated[str | None, typer.Option(help="sim (NetworkManager later)")] = None,
    air: Annotated[Path | None, typer.Option(help="the sim air's folder")] = None,
    device_id: Annotated[str | None, typer.Option(help="this device's name in the sim air")] = None,
    mac: Annotated[str | None, typer.Option(help="sim: the station MAC (names the AP)")] = None,
    portal: Annotated[
        str | None, typer.Option(help="sim: portal HOST:PORT (default: free)")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="where the configuration is kept")] = None,
    host: Annotated[str | None, typer.Option(help="default cloud host")] = None,
    port: Annotated[int | None, typer.Option(help="default cloud port (plain)")] = None,
    port_ssl: Annotated[int | None, typer.Option(help="default cloud port (TLS)")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle to verify the cloud")] = None,
    led_pin: Annotated[int | None, typer.Option(help="GPIO of the status LED")] = None,
    button_pin: Annotated[int | None, typer.Option(help="GPIO of the reset button")] = None,
    classic: Annotated[bool, typer.Option(help="drop the AP while connecting")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the device agent: AP mode until provisioned, then WiFi and the cloud."""
    from wifiprov.cli import fail

    flags = {k: v for k, v in locals().items() if k in KEYS}
    if classic:
        flags["ap_and_station"] = False
    try:
        values = load_settings(config, flags)
    except ValueError as exc:
        fail(str(exc))
        return
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        asyncio.run(_run(values))
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError, NotImplementedError) as exc:
        fail(f"cannot start the device agent: {exc}")


async def _run(values: dict[str, Any]) -> None:
    from wifiprov.device.agent import Agent, AgentConfig
    from wifiprov.device.radio.base import make_radio
    from wifiprov.device.store import ConfigStore
    from wifiprov.sim.air import default_directory

    options: dict[str, Any] = {}
    if values["radio"] == "sim":
        options = {
            "air": str(values.get("air") or default_directory()),
            "device_id": values["device_id"],
            "mac": values.get("mac"),
            "ap_and_station": values["ap_and_station"],
        }
        if values.get("portal"):
            host, _, port = str(values["portal"]).rpartition(":")
            options["portal"] = (host or "127.0.0.1", int(port))
    radio = make_radio(values["radio"], **options)
    store_path = Path(values["store"]).expanduser()
    store_path.parent.mkdir(parents=True, exist_ok=True)
    config = AgentConfig(
        template_id=values["template_id"],
        template_name=values["template_name"],
        vendor=values["vendor"],
        firmware_version=values["firmware_version"],
        firmware_type=values.get("firmware_type") or "",
        board=values["board"],
        host=values["host"],
        port=values["port"],
        port_ssl=values["port_ssl"],
        ca_file=str(values["ca_file"]) if values.get("ca_file") else None,
        allow_host_reboot=values["allow_host_reboot"],
        machine=Settings(),
    )
    agent = Agent(config, radio, ConfigStore(store_path))
    if values.get("led_pin") is not None or values.get("button_pin") is not None:
        from gpiozero import LED, Button

        from wifiprov.device.panel import Panel

        led = LED(values["led_pin"]) if values.get("led_pin") is not None else None
        button = Button(values["button_pin"]) if values.get("button_pin") is not None else None
        agent.panel = Panel(led, button, agent.reset_from_button, clock=time.monotonic)
    try:
        await agent.run()
    finally:
        await radio.close()

