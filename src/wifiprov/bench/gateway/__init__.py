"""Load generator for the device gateway (``wifiprov bench gateway``).

The bench builds a fresh database (a SQLite file in a temporary directory, or a new PostgreSQL
database that it drops again), fills it with devices and provisioning tokens, starts a real
``wifiprov cloud`` process and drives it from ``workers`` generator processes over raw TCP
(optionally TLS). Every connection is bound to its own source address in 127.0.0.0/8, so
ephemeral ports never run out. Scenarios, each bounded in count and time:

- ``hold``: log ``devices`` in (login + info message announcing h-beat 10), each pinging every
  10 s from its login on; keep them for ``hold_seconds`` after the last login, then check that
  every one still answers; gateway RSS before and while holding.
- ``relogin``: a burst of ``devices`` logins of existing devices (the connections stay open until
  the burst is over, as after a gateway restart); logins/s and latency.
- ``claim``: ``claims`` first logins with provisioning tokens; claims/s and latency.
- ``ingest``: ``ingest_devices`` devices pipelining ``HARDWARE vw`` writes for ``ingest_seconds``;
  every batch ends with a PING whose reply proves the batch was consumed (at most ``window``
  batches are in flight per connection), and messages/s counts from the start until the last
  reply. The stored pin values are checked against the last values sent.

For every scenario the CPU time of the gateway, of the generator workers and of PostgreSQL
(every process whose comm starts with "postgres") is read from /proc.

The modules, one idea each: ``config`` (scenarios, targets, limits), ``metrics`` (/proc figures),
``world`` (database, the gateway process, checks), ``load`` (the clients and worker processes),
``scenarios`` (the bench that runs and judges them), ``report`` (fingerprint, headlines,
profiles, JSON).
"""

from wifiprov.bench.gateway.config import SCENARIOS, TARGETS, TEMPLATE_ID, BenchConfig
from wifiprov.bench.gateway.metrics import cpu_seconds, ms, percentile
from wifiprov.bench.gateway.report import write_json
from wifiprov.bench.gateway.scenarios import Bench
from wifiprov.bench.gateway.world import GatewayProcess, _accepts, free_port, populate

__all__ = [
    "SCENARIOS",
    "TARGETS",
    "TEMPLATE_ID",
    "Bench",
    "BenchConfig",
    "GatewayProcess",
    "_accepts",
    "cpu_seconds",
    "free_port",
    "ms",
    "percentile",
    "populate",
    "write_json",
]
