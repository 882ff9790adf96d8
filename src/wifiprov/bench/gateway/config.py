"""What the gateway bench runs and against which targets: scenarios, targets, the devices' info
message and the limits every phase keeps to."""


from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command

SCENARIOS = ("hold", "relogin", "claim", "ingest", "storm")
DEFAULT_SCENARIOS = ("hold", "relogin", "claim", "ingest")  # storm on request: it is heavy
# What each scenario is held against (from the gateway's requirements).
TARGETS = {
    "hold": "10,000 devices held",
    "relogin": ">= 3,000 logins/s",
    "storm": "report: all back, time and peak RSS",
    "claim": ">= 3,000/s PostgreSQL, 1,500/s SQLite; p99 <= 1 s",
    "ingest": ">= 50,000 msgs/s from 1,000 devices",
    "ingest_ratio": ">= 70 % of a bare frame server's, same run",
}
TARGET_HOLD, TARGET_RELOGIN, TARGET_INGEST = 10_000, 3_000.0, 50_000.0
# ingest: the gateway's messages/s as a share of a bare frame-parsing server's (same run)
TARGET_INGEST_RATIO_PCT = 70.0
# claims/s (connect to the info answered: the claim committed) and their p99, per database
TARGET_CLAIMS = {"postgres": 3_000.0, "sqlite": 1_500.0}
TARGET_CLAIM_P99_MS = 1_000.0

HEARTBEAT = 10  # the h-beat the bench devices announce, so the hold period sees real heartbeats
PING_TICK = 0.1  # resolution of the heartbeat timer
TEMPLATE_ID = "TMPLbench001"
INFO_BODY = blynk.join_args([
    "mcu", "0.1.0", "fw-type", TEMPLATE_ID, "build", '"Nov 24 2026 10:00:00"', "blynk", "1.4.0",
    "h-beat", HEARTBEAT, "buff-in", 256, "dev", "bench", "tmpl", TEMPLATE_ID,
])
PINS = 4  # ingest writes V0..V3 in turn
HARDWARE, PING = int(Command.HARDWARE), int(Command.PING)

OP_TIMEOUT = 30.0  # one connect + login (+ info)
STORM_ATTEMPTS = 10  # storm: logins a device tries before it counts as left out
GO_TIMEOUT = 900.0  # a worker waiting for the next step from the bench
DRAIN_TIMEOUT = 60.0  # ingest: from the end of the sending period to the last PING reply
FINAL_PING_TIMEOUT = 20.0
GATEWAY_START_TIMEOUT = 60.0
IP_BIND_ADDRESS_NO_PORT = 24  # <linux/in.h>: pick the port at connect(), not at bind()


class BenchError(Exception):
    """The bench could not go on (gateway died, a worker failed, a phase timed out)."""


@dataclass
class BenchConfig:
    db: str = "sqlite"  # or "postgres"
    pg_url: str = "postgresql://postgres@127.0.0.1:5432"
    devices: int = 10_000
    ingest_devices: int = 1_000
    claims: int = 1_000
    hold_seconds: float = 30.0
    ingest_seconds: float = 10.0
    workers: int = 2
    concurrency: int = 500  # logins in flight per worker
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    ingest_ratio: bool = True  # ingest: also run the load against a bare frame server
    storm_spread: float = 1.0  # storm: every device reconnects at a random moment in this window
    tls: bool = False
    uvloop: bool = False  # generator workers on uvloop (lighter on a machine they share)
    ingest_batch: int = 50  # HARDWARE frames per write (each write ends with a PING)
    ingest_window: int = 2  # batches in flight per connection
    gateway_log: Path | None = None
    profile_dir: Path | None = None
    # gateway processes: more than one are cloud nodes on one PostgreSQL database and NATS,
    # devices spread over them in turn (one process may hold only as many sockets as its file
    # limit allows)
    nodes: int = 1
    nats_url: str = "nats://127.0.0.1:4222"

    @property
    def population(self) -> int:
        n = self.devices if {"hold", "relogin", "storm"} & set(self.scenarios) else 0
        return max(n, self.ingest_devices if "ingest" in self.scenarios else 0)

    @property
    def provisioning(self) -> int:
        return self.claims if "claim" in self.scenarios else 0
