"""blynk-provisioning 1.3.0's whole public ceremony, its code unchanged: ``get_credentials()``
with ``configure_network=True`` (BLE Inject on hci0, the WiFi join through NetworkManager), then
``Credentials.get_mqtt_client()`` (MQTT 5 over TLS to the server it was given, the ``info/mcu``
check-in). Started early (Python starts slowly under TCG); pairs when ``--go`` appears, the
template's id in it, and stays connected until ``--stop`` appears. The library trusts the
cloud's throw-away CA through ``SSL_CERT_FILE`` alone. Writes KEY=VALUE lines (``full_…``) to
``--out``; never the token.

    python blynk_device.py --go FILE --creds FILE --out FILE --stop FILE
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from blynk_provisioning import get_credentials


def say(out: Path, line: str) -> None:
    with out.open("a") as f:
        f.write(line + "\n")
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--go", type=Path, required=True)
    ap.add_argument("--creds", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--stop", type=Path, required=True)
    args = ap.parse_args()
    for _ in range(6000):  # bounded: 10 minutes
        if args.go.exists() and args.go.read_text().strip():
            break
        time.sleep(0.1)
    else:
        raise SystemExit("no go")
    template_id = args.go.read_text().strip()
    t0 = time.monotonic()
    creds = get_credentials(
        template_id, path=args.creds, vendor_prefix="Blynk", template_name="Lamp",
        fw_version="1.0.0", configure_network=True, debug=True,
    )  # fmt: skip
    say(args.out, f"full_credentials_seconds={time.monotonic() - t0:.1f}")
    say(args.out, f"full_server={creds.server}")
    say(args.out, f"full_token_length={len(creds.auth_token)}")
    t1 = time.monotonic()
    client = creds.get_mqtt_client()
    say(args.out, f"full_mqtt_seconds={time.monotonic() - t1:.2f}")
    say(args.out, f"full_mqtt_connected={int(client.is_connected())}")
    client.loop_start()  # stays online, as a device does, until the script is done with it
    for _ in range(1800):  # bounded: 3 minutes
        if args.stop.exists():
            break
        time.sleep(0.1)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
