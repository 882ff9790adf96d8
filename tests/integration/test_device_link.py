"""The device's cloud link against the real cloud: login, codes for each failure, commands."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from tests.conftest import RunningCloud
from tests.integration.support import free_port, provisioning_token, template, until
from wifiprov.device.link import CloudLink, LinkCallbacks, LinkError, LinkSettings

INFO = {
    "mcu": "1.2.3",
    "fw-type": "TMPLtest",
    "build": "Nov 24 2026 10:00:00",
    "blynk": "1.4.0",
    "dev": "Raspberry Pi",
    "tmpl": "TMPLtest",
}


def settings(token: str, port: int | None, **kw: object) -> LinkSettings:
    return LinkSettings(token=token, host="127.0.0.1", port=port, info=INFO, **kw)  # type: ignore[arg-type]


async def test_link_logs_in_reports_info_and_obeys_the_cloud(cloud: RunningCloud) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    writes: list[tuple[int, list[str]]] = []
    console: list[str] = []
    link = CloudLink(
        settings(request["token"], cloud.gateway[1]),
        LinkCallbacks(on_write=lambda p, v: writes.append((p, v)), on_console=console.append),
    )
    await link.open(timeout=5)
    serving = asyncio.create_task(link.run())
    link.virtual_write(2, 21.5)
    async with cloud.client(cloud.owner_token) as api:

        async def stored() -> bool:
            devices = (await api.get("/api/devices")).json()
            return bool(devices) and (
                await api.get(f"/api/devices/{devices[0]['id']}/pins")
            ).json().get("V2") == ["21.5"]

        await until(stored)
        device = (await api.get("/api/devices")).json()[0]
        assert device["info"]["firmware_version"] == "1.2.3"
        assert device["info"]["heartbeat"] == "40"
        await api.put(f"/api/devices/{device['id']}/pins/1", json={"value": "on"})
        await api.post(f"/api/devices/{device['id']}/reconfigure")

        async def received() -> bool:
            return bool(writes and console)

        await until(received)
        assert writes == [(1, ["on"])] and console == ["config start"]
        await api.delete(f"/api/devices/{device['id']}")
    reason = await asyncio.wait_for(serving, 5)
    assert "closed" in reason
    again = CloudLink(settings(request["token"], cloud.gateway[1]))
    with pytest.raises(LinkError) as failure:
        await again.open(timeout=5)
    assert failure.value.code == 703


async def test_link_failures_carry_the_right_codes(cloud: RunningCloud, tmp_path: Path) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    cases = [
        (LinkSettings(token=request["token"], host="nonexistent.invalid", port=80), 710),
        (settings(request["token"], free_port()), 702),  # nothing listens there
        (settings("A" * 32, cloud.gateway[1]), 703),
    ]
    for link_settings, code in cases:
        with pytest.raises(LinkError) as failure:
            await CloudLink(link_settings).open(timeout=5)
        assert failure.value.code == code, (code, str(failure.value))


async def test_link_rejects_an_untrusted_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")  # chained to a CA the link does not trust by default
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        link = CloudLink(LinkSettings(token="A" * 32, host="127.0.0.1", port=None, port_ssl=port))
        with pytest.raises(LinkError) as failure:
            await link.open(timeout=5)
        assert failure.value.code == 711
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        trusting = CloudLink(
            LinkSettings(
                token="A" * 32,
                host="127.0.0.1",
                port=None,
                port_ssl=port,
                ca_file=str(tmp_path / "ca.pem"),
            )
        )
        with pytest.raises(LinkError) as failure:
            await trusting.open(timeout=1)
        assert failure.value.code == 702  # TLS accepted; the silent server never answers login
    finally:
        server.close()


async def test_link_follows_a_redirect(cloud: RunningCloud) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    link = CloudLink(settings(request["token"], cloud.gateway[1]))
    await link.open(timeout=5)
    serving = asyncio.create_task(link.run())
    async with cloud.client(cloud.owner_token) as api:
        device_id = (await api.get(f"/api/provisioning/{request['id']}")).json()["device_id"]

        async def online() -> bool:
            return bool((await api.get(f"/api/devices/{device_id}")).json()["online"])

        await until(online)
        # Send it to the same gateway under another address: it must log in again there.
        reply = await api.post(
            f"/api/devices/{device_id}/redirect",
            json={"host": "localhost", "port": cloud.gateway[1]},
        )
        assert reply.status_code == 202
        async with asyncio.timeout(5):
            while link.host != "localhost":
                await asyncio.sleep(0.01)
        await until(online)
    assert not serving.done()
    link.virtual_write(9, "after redirect")
    async with cloud.client(cloud.owner_token) as api:

        async def stored() -> bool:
            pins = (await api.get(f"/api/devices/{device_id}/pins")).json()
            return bool(pins.get("V9") == ["after redirect"])

        await until(stored)
    await link.close()
    await asyncio.wait_for(serving, 5)
