"""How one cloud process is configured: addresses, database, bus, and what devices are told."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_data_dir

from wifiprov.cloud import reach


def default_db_url() -> str:
    return str(Path(user_data_dir("wifiprov")) / "cloud.sqlite3")


def parse_address(value: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` or ``:PORT`` into a (host, port) pair, with a clear error."""
    if "://" in value or "/" in value:
        raise ValueError(
            f"'{value}' is a URL, not HOST:PORT: give the address to listen on, "
            "e.g. 127.0.0.1:8080 or 0.0.0.0:8080"
        )
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, str(default_port)
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"'{value}' is not HOST:PORT (the port must be a number)") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} in '{value}' is outside 0..65535")
    return host.strip("[]") or "0.0.0.0", number


@dataclass
class CloudSettings:
    db_url: str = field(default_factory=default_db_url)
    http: tuple[str, int] = ("127.0.0.1", 8080)
    gateway: tuple[str, int] | None = ("0.0.0.0", 8442)
    gateway_tls: tuple[str, int] | None = None
    # Blynk's MQTT device API: plain, TLS (same --cert/--key); None = not served.
    mqtt: tuple[str, int] | None = None
    mqtt_tls: tuple[str, int] | None = None
    mqtt_ws: tuple[str, int] | None = None  # MQTT over WebSocket at /mqtt
    mqtt_wss: tuple[str, int] | None = None  # ... over TLS
    mqtt_max_packet: int = 64 * 1024  # an MQTT packet's remaining length past this closes it
    cert: Path | None = None
    key: Path | None = None
    # What devices are told to reach (a name they resolve, or the LAN address): see reach.py.
    public_host: str = field(default_factory=lambda: reach.default_public_host())
    # What devices are told to use; by default the ports the gateway listens on.
    public_port: int | None = None
    public_port_ssl: int | None = None
    bus_url: str | None = None  # nats://host:port; None = in-process
    node_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    provisioning_ttl: float = 15 * 60
    login_timeout: float = 5.0
    # Failed logins allowed per address within throttle_window seconds before it is throttled.
    throttle_failures: int = 10
    throttle_window: float = 60.0
    flush_interval: float = 0.2
    # Seconds a node's lease on its devices' presence lasts unrenewed (cloud/leases.py).
    lease: float = 10.0
    # API sessions end after session_idle seconds unused, and session_lifetime after sign-in.
    session_idle: float = 7 * 24 * 3600
    session_lifetime: float = 30 * 24 * 3600
    # Password hashing: threads (argon2 releases the GIL) and how many more may wait (then 429).
    hash_workers: int = 1
    hash_queue: int = 8
    # Failed sign-ins allowed per account / per client address before exponential backoff
    # (1 s, 2 s, 4 s ... up to sign_in_backoff_cap seconds per further failure).
    sign_in_failures_account: int = 5
    sign_in_failures_address: int = 20
    sign_in_backoff_cap: float = 900.0

    @property
    def device_port(self) -> int | None:
        if self.public_port is not None:
            return self.public_port
        return self.gateway[1] if self.gateway else None

    @property
    def device_port_ssl(self) -> int | None:
        if self.public_port_ssl is not None:
            return self.public_port_ssl
        return self.gateway_tls[1] if self.gateway_tls else None
