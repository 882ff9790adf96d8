"""``wifiprov device``: run the agent from a TOML config file, flags, or both (flags win)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wifiprov.device.machine import Settings

if TYPE_CHECKING:
    from wifiprov.device.agent import AgentConfig

log = logging.getLogger("wifiprov.device")

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
    "led_pwm",
    "button_pin",
    "allow_host_reboot",
    "ap_and_station",
    "interface",
    "wired",
    "wired_interface",
    "takeover",
    "country",
    "dnsmasq_dir",
    "ap_passphrase",
    "captive",
    "ble",
    "ble_adapter",
    "ble_code",
    "link",
    "mqtt_port",
    "mqtt_port_ssl",
)
DEFAULTS: dict[str, Any] = {
    "vendor": "Blynk",
    "firmware_version": "0.1.0",
    "board": "Linux",
    "radio": "sim",
    # No "device_id": a sim device started without one takes the first free "device",
    # "device-2" ... of its air, so two of them never share a name, a MAC or an AP name.
    "store": "wifiprov-device.json",
    # No "host": without one, /config (or the setup link) must name the cloud. Edgent's default,
    # blynk.cloud, would send a token typed by hand to Blynk's commercial cloud.
    "port": 80,
    "port_ssl": 443,
    "allow_host_reboot": False,
    "led_pwm": True,
    "ap_and_station": True,
    "takeover": False,
    "captive": True,
    "link": "blynk",
    "mqtt_port": 1883,
    "mqtt_port_ssl": 8883,
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wifiprov device",
        description="Run the device agent: AP mode until provisioned, then WiFi and the cloud. "
        "Every key of the config file can also be given as a flag; flags win.",
    )
    p.add_argument("--config", type=Path, help="TOML file with the keys below")
    p.add_argument("--template-id", help="TMPL… id from the cloud")
    p.add_argument("--template-name")
    p.add_argument("--vendor", help="hotspot prefix (default Blynk)")
    p.add_argument("--firmware-version")
    p.add_argument("--firmware-type")
    p.add_argument("--board")
    p.add_argument("--radio", choices=["sim", "nm"], help="radio backend (default sim)")
    p.add_argument(
        "--link",
        choices=["blynk", "mqtt"],
        help="cloud link: the Blynk protocol (default) or Blynk's MQTT API (docs/device.md)",
    )
    p.add_argument("--mqtt-port", type=int, help="mqtt link: plain TCP port (default 1883)")
    p.add_argument(
        "--mqtt-port-ssl", type=int, help="mqtt link: TLS port (default 8883; 0: plain only)"
    )
    p.add_argument("--air", type=Path, help="sim: the air's folder")
    p.add_argument(
        "--device-id",
        help="sim: this device's name in the air (default: the first free of device, device-2 ...)",
    )
    p.add_argument("--mac", help="sim: the station MAC (it names the AP)")
    p.add_argument("--portal", help="sim: portal HOST:PORT (default: any free port)")
    p.add_argument("--interface", help="nm: the WiFi interface (default: the first one NM manages)")
    p.add_argument(
        "--wired-interface",
        help="nm: the Ethernet interface for if=eth (default: the first one NM manages)",
    )
    p.add_argument(
        "--wired",
        action="store_true",
        default=None,
        help="sim: the device also has an Ethernet port (cable plugged in)",
    )
    p.add_argument(
        "--takeover",
        action="store_true",
        default=None,
        help="nm: allow the AP on the interface that carries this machine's default route",
    )
    p.add_argument("--country", help="nm: WiFi country code, such as GB")
    p.add_argument(
        "--dnsmasq-dir",
        type=Path,
        help="nm: NetworkManager's dnsmasq-shared.d (default /etc/NetworkManager/dnsmasq-shared.d)",
    )
    p.add_argument("--store", type=Path, help="where the configuration is kept")
    p.add_argument(
        "--host",
        help="the cloud's host name, used when /config leaves it empty (default: none, so "
        "/config, or the setup link, must name it)",
    )
    p.add_argument("--port", type=int, help="default cloud port (plain TCP)")
    p.add_argument("--port-ssl", type=int, help="default cloud port (TLS); 0: none, plain TCP")
    p.add_argument("--ca-file", type=Path, help="CA bundle that verifies the cloud")
    p.add_argument("--led-pin", type=int, help="GPIO of the status LED")
    p.add_argument(
        "--no-led-pwm",
        dest="led_pwm",
        action="store_const",
        const=False,
        help="the LED only turns on and off: blink where Edgent breathes (default: dim it with "
        "PWM where the GPIO library can)",
    )
    p.add_argument("--button-pin", type=int, help="GPIO of the reset button")
    p.add_argument("--classic", action="store_true", help="drop the AP while connecting")
    p.add_argument(
        "--ap-passphrase",
        help="WPA2 passphrase of the device's AP, 8-63 characters (default: an open AP); "
        "better in the config file, where other users cannot see it",
    )
    p.add_argument(
        "--no-captive",
        dest="captive",
        action="store_const",
        const=False,
        help="the AP's DNS answers only blynk.setup (default: every name, so that phones "
        "open the setup page by themselves)",
    )
    p.add_argument(
        "--ble",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also provision over Bluetooth LE (Blynk.Inject, through BlueZ); default: on with "
        "the nm radio when a Bluetooth adapter is present",
    )
    p.add_argument("--ble-adapter", help="the BlueZ adapter (default hci0)")
    p.add_argument(
        "--ble-code",
        help="a code printed on the device's label that a BLE provisioner must send "
        "(4-32 characters; better in the config file); default: none, as Blynk's app expects",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str]) -> int:
    """``wifiprov device``. Plain argparse, not typer: a device idles in <= 35 MB, and typer's
    imports (pydantic, rich) would take a third of that."""
    args = parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k in KEYS}
    if args.classic:
        flags["ap_and_station"] = False
    try:
        values = load_settings(args.config, flags)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    try:
        asyncio.run(_run(values))
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError, NotImplementedError) as exc:
        print(f"error: cannot start the device agent: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _is_nm_error(exc):  # NetworkManager missing, WiFi blocked, takeover refused ...
            print(f"error: cannot start the device agent: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


def _is_nm_error(exc: Exception) -> bool:
    if "wifiprov.linux.networkmanager" not in sys.modules:  # not imported: not one of its errors
        return False
    from wifiprov.linux.networkmanager import NmError

    return isinstance(exc, NmError)


def agent_config(values: dict[str, Any]) -> AgentConfig:
    """The agent's settings from ``load_settings``'s values."""
    from wifiprov.device.agent import AgentConfig

    return AgentConfig(
        template_id=values["template_id"],
        template_name=values["template_name"],
        vendor=values["vendor"],
        firmware_version=values["firmware_version"],
        firmware_type=values.get("firmware_type") or "",
        board=values["board"],
        host=values.get("host") or "",
        port=values["port"],
        port_ssl=values["port_ssl"] or None,  # 0: plain TCP only
        ca_file=str(values["ca_file"]) if values.get("ca_file") else None,
        allow_host_reboot=values["allow_host_reboot"],
        ap_passphrase=values.get("ap_passphrase") or None,
        captive=bool(values["captive"]),
        ble_code=str(values["ble_code"]) if values.get("ble_code") else None,
        link=str(values["link"]),
        mqtt_port=int(values["mqtt_port"]),
        mqtt_port_ssl=int(values["mqtt_port_ssl"]) or None,  # 0: plain TCP only
        machine=Settings(),
    )


def make_led(pin: int, pwm: bool) -> Any:
    """A gpiozero ``PWMLED`` (it breathes) when ``pwm`` and the pin can dim, else an ``LED``."""
    from gpiozero import LED, PWMLED
    from gpiozero.exc import PinPWMUnsupported

    if pwm:
        try:
            return PWMLED(pin)
        except PinPWMUnsupported:
            log.info("GPIO %d cannot dim the LED (no PWM): it blinks instead of breathing", pin)
    return LED(pin)


def _claim_sim_device(values: dict[str, Any]) -> dict[str, Any]:
    """The first device id free in the sim air (held by a lock for the process's life); a
    default store path takes the id too, so two devices in one folder keep their own."""
    from wifiprov.sim.air import Air, default_directory

    air = Air(values.get("air") or default_directory())
    device_id, _held = air.claim_device("device")  # the descriptor stays open: the claim
    if device_id != "device":
        log.info("device 'device' is running in this air: this one is '%s'", device_id)
    values = {**values, "device_id": device_id}
    if values["store"] == DEFAULTS["store"] and device_id != "device":
        values["store"] = f"wifiprov-{device_id}.json"
    return values


async def _run(values: dict[str, Any]) -> None:
    from wifiprov.device.agent import Agent
    from wifiprov.device.radio import make_radio
    from wifiprov.device.store import ConfigStore
    from wifiprov.sim.air import default_directory

    if values["radio"] == "sim" and not values.get("device_id"):
        values = _claim_sim_device(values)
    # Settings first: a mistake there is reported before any radio is touched.
    store_path = Path(values["store"]).expanduser()
    store_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds secrets
    config = agent_config(values)
    ble = ble_transport(values)
    if not config.host:
        log.info("no cloud host configured: /config (or the setup link) must name it")
    options: dict[str, Any] = {}
    if values["radio"] == "sim":
        options = {
            "air": str(values.get("air") or default_directory()),
            "device_id": values["device_id"],
            "mac": values.get("mac"),
            "ap_and_station": values["ap_and_station"],
            "wired": bool(values.get("wired")),
        }
        if values.get("portal"):
            host, _, port = str(values["portal"]).rpartition(":")
            options["portal"] = (host or "127.0.0.1", int(port))
    elif values["radio"] == "nm":
        options = {
            "interface": values.get("interface"),
            "wired_interface": values.get("wired_interface"),
            "takeover": bool(values["takeover"]),
            "country": values.get("country"),
        }
        if values.get("dnsmasq_dir"):
            options["snippet_dir"] = str(values["dnsmasq_dir"])
    radio = make_radio(values["radio"], **options)
    opener = getattr(radio, "open", None)
    if opener is not None:  # nm: reach NetworkManager and learn the MAC before the agent starts
        try:
            await opener()
        except BaseException:
            await radio.close()
            raise
    agent = Agent(config, radio, ConfigStore(store_path), ble=ble)
    if values.get("led_pin") is not None or values.get("button_pin") is not None:
        from gpiozero import Button

        from wifiprov.device.panel import Panel

        pin = values.get("led_pin")
        led = make_led(pin, bool(values["led_pwm"])) if pin is not None else None
        button = Button(values["button_pin"]) if values.get("button_pin") is not None else None
        agent.panel = Panel(led, button, agent.reset_from_button, clock=agent.clock)
    button = None
    if values["radio"] == "sim":  # `wifiprov air press DEVICE` stands in for the button
        button = asyncio.create_task(_sim_button(options["air"], values["device_id"], agent))
    # `systemctl stop` sends SIGTERM: stop as on Ctrl-C, so that the radio closes its AP (an
    # NM profile and the dnsmasq snippet) instead of leaving them behind.
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, agent.stop)
    try:
        await agent.run()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if button is not None:
            button.cancel()
        await radio.close()


def ble_transport(values: dict[str, Any]) -> Any:
    """The BLE side (None: off), always through BlueZ, whatever the radio: with ``--radio sim``
    the WiFi is simulated and the Bluetooth real (the sim BLE air lives in one process:
    ``wifiprov demo --ble``)."""
    wanted = values.get("ble")
    adapter = str(values.get("ble_adapter") or "hci0")
    if wanted is None:  # default: on where a real adapter is
        wanted = values["radio"] == "nm" and Path("/sys/class/bluetooth", adapter).exists()
    if not wanted:
        return None
    from wifiprov.device.ble import BleProvisioning, BluezGatt

    return BleProvisioning(BluezGatt(adapter))


async def _sim_button(air_dir: str, device_id: str, agent: Any) -> None:
    from wifiprov.device.panel import ButtonHold
    from wifiprov.sim.air import Air

    air = Air(air_dir)
    feed = air.changes(("buttons", device_id))
    try:
        while True:
            held = air.take_button_press(device_id)
            if held is not None:
                hold = ButtonHold()
                hold.press(0.0)
                if hold.release(held):
                    agent.reset_from_button()
                else:
                    logging.getLogger("wifiprov.device").info(
                        "button released after %.1f s: hold it 10 s to reset", held
                    )
            await feed.wait()
    finally:
        feed.close()
        air.close()
