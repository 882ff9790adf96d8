"""The cloud's write-behind (cloud/ingest.py): flush() is a barrier that many callers share."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from tests.conftest import RunningCloud
from tests.integration.support import online_device
from wifiprov.cloud.db.schema import pin_values


async def test_callers_of_flush_at_once_share_writes_and_each_sees_its_data(
    cloud: RunningCloud,
) -> None:
    device_id, _, dev = await online_device(cloud)
    writer = cloud.cloud.writer
    await writer.flush()
    writes: list[int] = []
    real = writer._flush

    async def counted() -> None:
        writes.append(len(writer.values))
        await asyncio.sleep(0.05)  # a slow database: callers pile up behind the write
        await real()

    writer._flush = counted  # type: ignore[method-assign]
    try:

        async def caller(pin: int) -> None:
            writer.pin(device_id, pin, [str(pin)], 1.0)
            await writer.flush()
            async with cloud.cloud.db.begin() as conn:  # its own value is stored on return
                row = (
                    await conn.execute(
                        select(pin_values.c.value).where(
                            pin_values.c.device_id == device_id, pin_values.c.pin == pin
                        )
                    )
                ).first()
            assert row is not None, f"V{pin} not written when flush() returned"

        await asyncio.gather(*(caller(pin) for pin in range(50)))
    finally:
        writer._flush = real  # type: ignore[method-assign]
    assert 1 <= len(writes) <= 3, writes  # not fifty writes one after another
    dev.close()
