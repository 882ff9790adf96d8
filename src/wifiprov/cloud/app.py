"""One cloud process: database, bus, device gateway and HTTP API on one event loop."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn

from wifiprov.cloud.api import create_app
from wifiprov.cloud.bus import Bus, make_bus
from wifiprov.cloud.db import Database
from wifiprov.cloud.gateway import Gateway
from wifiprov.cloud.ingest import DeviceDataWriter
from wifiprov.cloud.settings import CloudSettings
from wifiprov.cloud.tokens import TokenHasher

log = logging.getLogger("wifiprov.cloud")


def raise_file_limit() -> int:
    """Every device is a socket: lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Cloud:
    settings: CloudSettings
    db: Database
    bus: Bus
    hasher: TokenHasher
    writer: DeviceDataWriter
    gateway: Gateway
    app: Any

    @classmethod
    async def open(cls, settings: CloudSettings) -> Cloud:
        db = Database(settings.db_url)
        await db.migrate()
        hasher = await TokenHasher.load(db)
        bus = await make_bus(settings.bus_url, namespace=f"wifiprov-{hasher.cloud_id}")
        writer = DeviceDataWriter(db, settings.flush_interval)
        gateway = Gateway(db, bus, hasher, settings, writer)
        app = create_app(db, bus, hasher, settings)
        return cls(settings, db, bus, hasher, writer, gateway, app)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        """Run until cancelled (or the HTTP server is told to exit)."""
        raise_file_limit()
        self.writer.start()
        await self.gateway.start()
        host, port = self.settings.http
        config = uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        self.http_server = server
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
        await self.gateway.stop()
        await self.writer.stop()
        await self.bus.close()
        await self.db.close()
