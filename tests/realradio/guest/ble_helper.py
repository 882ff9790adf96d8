"""The BLE group's helper, one process (Python starts slowly under TCG):

1. puts the home network in the sim air the device joins (its WiFi is simulated; BLE is real),
   and sets up the cloud's database (owner, organization, template "Lamp") and the provisioner's
   saved session before ``wifiprov cloud`` serves it (guest/cloud_setup.py: what `wifiprov
   cloud init`, `login` and `templates create` do, without their Python starts);
2. registers a second, minimal advertisement on hci0: btvirt's controller only reports
   advertisements when advertising is (re)enabled, and with two the kernel rotates them every
   2 s, so a scan that starts later still sees the device's;
3. provisions wifiprov's own device (on hci0) from hci1 with wifiprov's provisioner session
   and a wrong WiFi password (the `wifiprov provision --ble` run that follows gives the right
   one), writing ``--wrong-done`` when it is over;
4. when ``--go`` appears: runs blynk-provisioning 1.3.0's own device session (its BLE Inject
   code, unchanged, ``configure_network=False``) on hci0 and provisions it from hci1 with
   wifiprov's provisioner session (bleak), then writes KEY=VALUE results to ``--out``;
5. keeps the pulse advertisement until ``--stop`` appears (blynk-provisioning's whole ceremony,
   guest/blynk_device.py, advertises on hci0 meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from cloud_setup import cloud_setup  # beside this file
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from wifiprov.provisioner.ble import BleakCentral, BleDeviceSession, Found
from wifiprov.provisioner.flow import ProvisioningFailed
from wifiprov.sim.air import Air

PULSE_PATH = "/org/wifiprov/test/pulse0"
TOKEN = "BLEtestTOKEN0123456789abcdefABCD"  # 32 characters


class Pulse(ServiceInterface):  # noqa: D101
    def __init__(self) -> None:
        super().__init__("org.bluez.LEAdvertisement1")

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> "s":  # noqa: F821, N802, UP037
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> "a{qv}":  # noqa: F722, N802, UP037
        return {0xFFFF: Variant("ay", b"\x01")}

    @method()
    def Release(self):  # noqa: ANN201, N802
        pass


def say(out: Path, line: str) -> None:
    with out.open("a") as f:
        f.write(line + "\n")
    print(line, flush=True)


async def pulse() -> MessageBus:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    bus.export(PULSE_PATH, Pulse())
    reply = await bus.call(
        Message(
            destination="org.bluez",
            path="/org/bluez/hci0",
            interface="org.bluez.LEAdvertisingManager1",
            member="RegisterAdvertisement",
            signature="oa{sv}",
            body=[PULSE_PATH, {}],
        )
    )
    if reply.message_type == MessageType.ERROR:
        raise SystemExit(f"RegisterAdvertisement failed: {reply.error_name} {reply.body}")
    return bus


class Identity:
    """The shape blynk-provisioning's session uses; records what it was given."""

    vendor_prefix = "Blynk"
    template_id = "TMPLble0test"
    template_name = "Test"
    auth_token = ""
    server = ""
    saved: tuple[str, str] | None = None

    def save(self) -> None:
        self.saved = (self.auth_token, self.server)

    def known_centrals(self) -> set[str]:
        return set()

    def remember_centrals(self, addresses: set[str]) -> None:
        pass


async def find(central: BleakCentral, prefix: str) -> Found | None:
    for _ in range(24):  # bounded: about two minutes of scanning
        seen = await central.find(5.0)
        found = next((f for f in seen if f.name.startswith(prefix)), None)
        if found is not None:
            return found
    return None


async def open_link(central: BleakCentral, found: Found, out: Path, key: str) -> object | None:
    # BlueZ on btvirt: some connections drop right after service discovery, at times several
    # in a row; retry, bounded, waiting a little longer each time
    for attempt in range(1, 9):
        try:
            return await central.open(found.address)
        except Exception as exc:  # noqa: BLE001
            words = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:120]
            say(out, f"{key}_connect_error_{attempt}={words}")
            await asyncio.sleep(min(1.0 * attempt, 4.0))
    return None


async def wrong_password(out: Path) -> None:
    """wifiprov's device, a wrong password: net_fail invalid_credentials, code 722."""
    central = BleakCentral("hci1")
    found = await find(central, "Blynk Lamp-")
    say(out, f"wrong_found={found.name if found else ''}")
    if found is None:
        return
    link = await open_link(central, found, out, "wrong")
    if link is None:
        return
    t0 = time.monotonic()
    try:
        s = BleDeviceSession(link)  # type: ignore[arg-type]
        await s.info()
        t0 = time.monotonic()
        await s.configure(ssid="Home WiFi", password="not the password", token=TOKEN)
        say(out, "wrong_result=connected")
    except ProvisioningFailed as exc:
        say(out, f"wrong_result=failed {exc.code}")
        say(out, f"wrong_seconds={time.monotonic() - t0:.2f}")
    finally:
        try:
            await link.disconnect()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            pass


async def blynk(out: Path) -> None:
    from blynk_provisioning import _ble

    identity = Identity()
    session = _ble.ProvisioningSession(identity, fw_version="1.0.0", configure_network=False)
    device = asyncio.create_task(session.run())
    central = BleakCentral("hci1")
    t0 = time.monotonic()
    found = await find(central, "Blynk Test-")
    say(out, f"blynk_found={found.name if found else ''}")
    say(out, f"blynk_scan_seconds={time.monotonic() - t0:.1f}")
    if found is None:
        device.cancel()
        return
    link = await open_link(central, found, out, "blynk")
    if link is None:
        device.cancel()
        return
    steps = []
    try:
        s = BleDeviceSession(link, lambda step, message, **data: steps.append(step))  # type: ignore[arg-type]
        info = await s.info()
        say(out, f"blynk_info_tmpl={info.get('tmpl_id')}")
        ifs = await s.interfaces()
        names = ",".join(f"{i.get('name')}:{i.get('status')}" for i in ifs)
        say(out, f"blynk_ifs={names}")
        t1 = time.monotonic()
        await s.configure(ssid=None, password="", token=TOKEN, host="127.0.0.1")
        say(out, "blynk_result=connected")
        say(out, f"blynk_connect_seconds={time.monotonic() - t1:.2f}")
    except ProvisioningFailed as exc:
        say(out, f"blynk_result=failed {exc.what}")
    finally:
        try:
            await link.disconnect()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            pass
    try:
        ok = await asyncio.wait_for(device, 30)
    except (TimeoutError, Exception) as exc:  # noqa: BLE001
        ok = f"{type(exc).__name__}"
    say(out, f"blynk_session_returned={ok}")
    token, server = identity.saved or ("", "")
    say(out, f"blynk_saved_token_ok={int(token == TOKEN)}")
    say(out, f"blynk_saved_server={server}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--air", type=Path, required=True)
    ap.add_argument("--ready", type=Path, required=True)
    ap.add_argument("--go", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--cloud", required=True)
    ap.add_argument("--wrong-done", type=Path, required=True)
    ap.add_argument("--stop", type=Path, required=True)
    args = ap.parse_args()
    air = Air(args.air)
    air.add_network("Home WiFi", "correct horse", rssi=-45)
    await pulse()
    template_id = await cloud_setup(args.db, args.cloud)
    args.ready.write_text(template_id + "\n")
    await wrong_password(args.out)
    args.wrong_done.write_text("done\n")
    for _ in range(3000):  # bounded: 300 s
        if args.go.exists():
            break
        await asyncio.sleep(0.1)
    else:
        print("no go", file=sys.stderr)
        return
    await blynk(args.out)
    air.close()
    for _ in range(4000):  # the pulse stays for the script's next devices (bounded: 400 s)
        if args.stop.exists():
            break
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
