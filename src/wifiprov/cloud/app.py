"""One cloud process: database, bus, device gateway and HTTP API on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from wifiprov.cloud import accounts, devices
from wifiprov.cloud.api import create_app
from wifiprov.cloud.bus import Bus, make_bus
from wifiprov.cloud.db import Database
from wifiprov.cloud.gateway import Gateway
from wifiprov.cloud.ingest import DeviceDataWriter
from wifiprov.cloud.leases import NodeLease
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.tokens import TokenHasher

log = logging.getLogger("wifiprov.cloud")


def raise_file_limit() -> int:
    """Every device is a socket: lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stable_node_id(settings: CloudSettings) -> str:
    """The node id ``wifiprov cloud`` uses without ``--node-id``: this host's name and the port
    of its first listener (plain gateway, else TLS gateway, else HTTP API), so a node restarted on
    the same host and port recognises the presence left by its earlier runs (and clears it)."""
    for address in (settings.gateway, settings.gateway_tls, settings.http):
        if address is not None:
            return f"{socket.gethostname()}:{address[1]}"
    return socket.gethostname()


class _Server(uvicorn.Server):
    """uvicorn, without its own signal handling: it re-raises SIGTERM/SIGINT once it has served,
    which killed the process before the gateway closed (the cloud handles them in ``serve``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Cloud:
    settings: CloudSettings
    db: Database
    bus: Bus
    hasher: TokenHasher
    writer: DeviceDataWriter
    gateway: Gateway
    app: Any
    lease: NodeLease

    @classmethod
    async def open(cls, settings: CloudSettings) -> Cloud:
        db = Database(settings.db_url)
        accounts.configure(db, settings)  # session lifetimes, the password-hashing pool
        await db.migrate()
        hasher = await TokenHasher.load(db)
        bus = await make_bus(settings.bus_url, namespace=f"wifiprov-{hasher.cloud_id}")
        writer = DeviceDataWriter(db, settings.flush_interval)
        gateway = Gateway(db, bus, hasher, settings, writer)
        app = create_app(db, bus, hasher, settings)
        lease = NodeLease(db, bus, settings.node_id, settings.lease, gateway.held)
        return cls(settings, db, bus, hasher, writer, gateway, app, lease)

    async def serve(self, ready: asyncio.Event | None = None, handle_signals: bool = False) -> None:
        """Run until cancelled, or the HTTP server is told to exit (``stop``), or with
        ``handle_signals`` until SIGTERM or SIGINT; then close the gateway, write its devices
        offline and return (a second signal leaves the process to the default handlers)."""
        raise_file_limit()
        # Presence an earlier run of this node left behind (killed without closing) is stale.
        cleared = await devices.clear_presence(self.db, self.settings.node_id)
        if cleared:
            log.info(
                "%d device(s) left online by an earlier run of this node: now offline", cleared
            )
        await self.lease.start()
        self.writer.start()
        await self.gateway.start()
        host, port = self.settings.http
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,  # long polls would otherwise hold a stop for a minute
        )
        server = _Server(config)
        self.http_server = server
        with self._signals(handle_signals):
            await self._serve_http(server, host, port, ready)

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        loop = asyncio.get_running_loop()
        wanted = (signal.SIGTERM, signal.SIGINT)

        def on_signal(sig: signal.Signals) -> None:
            log.info("%s: closing the gateway and stopping", sig.name)
            self.stop()
            for s in wanted:  # a second signal is not caught: it ends a stuck shutdown
                loop.remove_signal_handler(s)

        for sig in wanted:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            yield
        finally:
            for sig in wanted:
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        """Ask a serving cloud to stop (it closes the gateway and writes presence first)."""
        self.http_server.should_exit = True

    async def _serve_http(
        self, server: uvicorn.Server, host: str, port: int, ready: asyncio.Event | None
    ) -> None:
        try:
            # Bind here, so a taken port is an OSError we can explain, not uvicorn's exit().
            sock = socket.create_server((host, port), reuse_port=False)
            self.http_address = sock.getsockname()[:2]
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            if task.done():
                await task
                raise RuntimeError(f"the HTTP API stopped during start-up on {host}:{port}")
            for gw_host, gw_port in self.gateway.addresses():
                log.info("gateway listening on %s:%d", gw_host, gw_port)
            log.info("HTTP API on http://%s:%d (node %s)", host, port, self.settings.node_id)
            if ready is not None:
                ready.set()
            await task
        finally:
            await self.close()

    async def close(self) -> None:
        await self.gateway.stop()  # its devices' offline presence is queued in the writer
        await self.writer.stop()  # ... and written here
        try:
            await devices.clear_presence(self.db, self.settings.node_id)
        except Exception as exc:  # DatabaseUnavailable: the next start of this node clears it
            log.warning("could not clear this node's presence at shutdown: %s", exc)
        await self.lease.stop()
        await self.bus.close()
        await self.db.close()
