"""A node's lease on the presence it writes: devices of a node that stopped renewing go offline.

A device's ``online_node`` says which node holds its connection. A node that exits cleanly
clears its own (``Cloud.close``) and one restarted under the same name clears what an earlier
run left; a node that is killed or cut off from the database clears nothing. So every node
holds a lease, a row in ``nodes`` renewed every third of ``lease`` seconds, and every node sweeps
every second: a node whose lease ran out has its devices marked offline (and said so on the bus,
for the console's live pages) and its row removed, within ``lease`` + 1 s of its last renewal. The
database's clock is not used: nodes compare their own wall clocks, which NTP keeps within far
less than a lease.

A node that was cut off and comes back finds its row gone (or lapsed): the devices it still
holds (``held``) were marked offline by another node, so it marks them online again — those no
other node has taken meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from sqlalchemy import bindparam, delete, or_, select, update

from wifiprov.cloud.bus import DEVICE_PRESENCE, Bus
from wifiprov.cloud.db import Database, DatabaseUnavailable
from wifiprov.cloud.db.schema import devices, nodes

log = logging.getLogger("wifiprov.cloud.leases")

DEFAULT_LEASE = 10.0


class NodeLease:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        node: str,
        lease: float = DEFAULT_LEASE,
        held: Callable[[], list[tuple[int, float]]] | None = None,
    ) -> None:
        if not 0.5 <= lease <= 3600:
            raise ValueError("a lease is 0.5 to 3600 seconds")
        self.db, self.bus, self.node, self.lease = db, bus, node, lease
        self.held = held or list  # (device id, connected at) of the connections this node holds
        self._task: asyncio.Task[None] | None = None
        self._renewed = False  # renewed before: finding its lease lapsed then means it was cut off

    async def start(self) -> None:
        """Take the lease (a database error here stops the start-up), then renew and sweep."""
        await self.renew()
        self._task = asyncio.create_task(self._run(), name=f"lease {self.node}")

    async def stop(self) -> None:
        """Stop renewing and give the lease back (the caller has cleared its presence)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with self.db.begin() as conn:
                await conn.execute(delete(nodes).where(nodes.c.node_id == self.node))
        except DatabaseUnavailable as exc:
            log.warning("could not give back this node's lease: %s (it lapses by itself)", exc)

    async def renew(self) -> None:
        """Extend this node's lease; when it had lapsed, say its devices are online again.
        Raises DatabaseUnavailable."""
        now = time.time()
        async with self.db.begin() as conn:
            until = (
                await conn.execute(select(nodes.c.lease_until).where(nodes.c.node_id == self.node))
            ).scalar_one_or_none()
            if until is None:
                await conn.execute(
                    nodes.insert().values(
                        node_id=self.node, lease_until=now + self.lease, renewed_at=now
                    )
                )
            else:
                await conn.execute(
                    update(nodes)
                    .where(nodes.c.node_id == self.node)
                    .values(lease_until=now + self.lease, renewed_at=now)
                )
            lapsed = until is None or until < now
            back = []
            if lapsed and self._renewed:
                back = [{"d": d, "c": c} for d, c in self.held()]
                if back:
                    mine = or_(devices.c.online_node.is_(None), devices.c.online_node == self.node)
                    await conn.execute(
                        update(devices)
                        .where(devices.c.id == bindparam("d"), mine)
                        .values(online_node=self.node, connected_at=bindparam("c")),
                        back,
                    )
        if lapsed and self._renewed:
            log.warning(
                "this node's lease had lapsed (the database was out of reach): the %d device(s) "
                "it still holds are online again, unless another node holds them now",
                len(back),
            )
        self._renewed = True

    async def sweep(self) -> list[int]:
        """Mark offline the devices of nodes whose lease ran out, and forget those nodes; the
        ids of the devices. Raises DatabaseUnavailable."""
        now = time.time()
        async with self.db.begin() as conn:
            lapsed = list(
                (
                    await conn.execute(
                        select(nodes.c.node_id).where(
                            nodes.c.lease_until < now, nodes.c.node_id != self.node
                        )
                    )
                ).scalars()
            )
            if not lapsed:
                return []
            gone = (
                await conn.execute(
                    update(devices)
                    .where(devices.c.online_node.in_(lapsed))
                    .values(online_node=None, last_seen=now)
                    .returning(devices.c.id, devices.c.org_id, devices.c.online_node)
                )
            ).all()
            await conn.execute(
                delete(nodes).where(nodes.c.node_id.in_(lapsed), nodes.c.lease_until < now)
            )
        for node in lapsed:
            log.warning(
                "node %s stopped renewing its lease: %d of its device(s) now offline",
                node,
                sum(1 for row in gone if row.online_node == node),
            )
        for row in gone:
            message = {
                "device_id": row.id,
                "org_id": row.org_id,
                "online": False,
                "node": self.node,
                "at": now,
            }
            try:
                await self.bus.publish(DEVICE_PRESENCE, message)
            except Exception as exc:  # the bus is only for live pages: the database is right
                log.warning("could not announce device %d offline on the bus: %s", row.id, exc)
                break
        return [row.id for row in gone]

    async def _run(self) -> None:
        # Renew every third of the lease; sweep every second (or third of a shorter lease), so
        # a lapsed node's devices are offline within lease + 1 s of its last renewal.
        renew_every = self.lease / 3
        tick = min(1.0, renew_every)
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            try:
                if time.monotonic() - renewed >= renew_every - tick / 2:
                    await self.renew()
                    renewed = time.monotonic()
                await self.sweep()
            except DatabaseUnavailable as exc:
                log.warning("cannot renew this node's lease or sweep: %s", exc)
            except Exception:  # never let presence keeping die with one bad round
                log.exception("lease round failed; trying again in %.1f s", tick)
