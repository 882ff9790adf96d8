"""The HTTP API: accounts, templates, provisioning, devices, and who may do what."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.conftest import RunningCloud
from tests.integration.support import RawDevice, online_device, provisioning_token, template, until
from wifiprov.cloud.db.schema import NAME_LENGTH
from wifiprov.wire.blynk import Command, Status


async def test_sign_in_me_and_sign_out(cloud: RunningCloud) -> None:
    async with cloud.client() as api:
        bad = await api.post(
            "/api/auth/sign-in", json={"email": "owner@example.com", "password": "wrong password"}
        )
        assert bad.status_code == 401 and bad.json()["message"] == "wrong e-mail or password"
        good = await api.post(
            "/api/auth/sign-in",
            json={"email": "owner@example.com", "password": "correct horse battery"},
        )
        token = good.json()["token"]
    async with cloud.client(token) as api:
        me = (await api.get("/api/me")).json()
        assert me["email"] == "owner@example.com"
        assert me["organizations"][0]["hotspot_prefix"] == "Acme"
        assert (await api.post("/api/auth/sign-out")).status_code == 204
        again = await api.get("/api/me")
        assert again.status_code == 401 and "sign in" in again.json()["message"]


async def test_tokens_are_stored_as_keyed_hashes(cloud: RunningCloud) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    from sqlalchemy import text

    dump = ""
    async with cloud.cloud.db.begin() as conn:
        for table in ("sessions", "provisioning_requests", "devices"):
            dump += " ".join(str(r) for r in await conn.execute(text(f"SELECT * FROM {table}")))
    assert request["token"] not in dump and cloud.owner_token not in dump
    assert request["token"][-4:] in dump  # only the last four characters


async def test_every_route_refuses_anonymous_callers(cloud: RunningCloud) -> None:
    open_routes = {
        "/api/health",
        "/api/auth/sign-in",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
    checked = 0
    async with cloud.client() as api:
        for route in cloud.cloud.app.routes:
            path = getattr(route, "path", "")
            if path in open_routes or not path.startswith("/api/"):
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            for method in route.methods:  # type: ignore[attr-defined]
                reply = await api.request(method, url, json={})
                assert reply.status_code == 401, (method, path, reply.text)
                checked += 1
    assert checked >= 20


async def test_other_organizations_see_nothing(cloud: RunningCloud) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    device_id, _, dev = await online_device(cloud)
    stranger = await cloud.user("stranger@example.com")
    o = cloud.org_id
    denied = [
        ("GET", f"/api/orgs/{o}"),
        ("PATCH", f"/api/orgs/{o}"),
        ("GET", f"/api/orgs/{o}/members"),
        ("PUT", f"/api/orgs/{o}/members"),
        ("GET", f"/api/orgs/{o}/templates"),
        ("POST", f"/api/orgs/{o}/templates"),
        ("GET", f"/api/templates/{template_id}"),
        ("GET", f"/api/templates/{template_id}/firmware-config"),
        ("POST", f"/api/templates/{template_id}/provisioning"),
        ("GET", f"/api/provisioning/{request['id']}"),
        ("GET", f"/api/devices/{device_id}"),
        ("PATCH", f"/api/devices/{device_id}"),
        ("DELETE", f"/api/devices/{device_id}"),
        ("POST", f"/api/devices/{device_id}/reconfigure"),
        ("POST", f"/api/devices/{device_id}/erase"),
        ("POST", f"/api/devices/{device_id}/redirect"),
        ("GET", f"/api/devices/{device_id}/pins"),
        ("PUT", f"/api/devices/{device_id}/pins/1"),
    ]
    bodies = {
        "PATCH": {"name": "x"},
        "PUT": {"email": "stranger@example.com", "role": "owner", "value": "1"},
        "POST": {"name": "x", "host": "h", "port": 1},
    }
    async with cloud.client(stranger) as api:
        for method, url in denied:
            reply = await api.request(method, url, json=bodies.get(method, {}))
            assert reply.status_code in (404, 422), (method, url, reply.text)
            assert reply.status_code == 404 or method == "PUT", (method, url, reply.text)
        assert (await api.get("/api/devices")).json() == []
        assert (await api.get(f"/api/devices?org_id={o}")).status_code == 404
    async with cloud.client(cloud.owner_token) as api:  # nothing changed
        assert (await api.get(f"/api/devices/{device_id}")).json()["online"] is True
    dev.close()


@pytest.mark.parametrize(
    "role,allowed", [("installer", True), ("operator", False), ("viewer", False)]
)
async def test_only_roles_with_the_provisioning_right_get_tokens(
    cloud: RunningCloud, role: str, allowed: bool
) -> None:
    template_id = await template(cloud)
    member = await cloud.user(f"{role}@example.com", role=role)
    async with cloud.client(member) as api:
        reply = await api.post(f"/api/templates/{template_id}/provisioning")
    if allowed:
        assert reply.status_code == 201
    else:
        assert reply.status_code == 403
        assert f"'{role}'" in reply.json()["message"] and "provision" in reply.json()["message"]


async def test_template_and_firmware_config(cloud: RunningCloud) -> None:
    async with cloud.client(cloud.owner_token) as api:
        created = await api.post(
            f"/api/orgs/{cloud.org_id}/templates",
            json={"name": "Garden Pump", "firmware_type": "pump-fw"},
        )
        assert created.status_code == 201
        template_id = created.json()["id"]
        assert re.fullmatch(r"TMPL[A-Za-z0-9]{8}", template_id)
        config = (await api.get(f"/api/templates/{template_id}/firmware-config")).json()
        assert config == {
            "template_id": template_id,
            "template_name": "Garden Pump",
            "firmware_type": "pump-fw",
            "hotspot_prefix": "Acme",
            "host": "cloud.test",
            "port": cloud.gateway[1],
            "port_ssl": None,
        }
        bad = await api.post(f"/api/orgs/{cloud.org_id}/templates", json={"name": ""})
        assert bad.status_code == 422 and "name" in bad.json()["message"]
        bad = await api.patch(
            f"/api/orgs/{cloud.org_id}", json={"hotspot_prefix": "Way too long a prefix!"}
        )
        assert bad.status_code == 422 and "20" in bad.json()["message"]
        good = await api.patch(f"/api/orgs/{cloud.org_id}", json={"hotspot_prefix": "My Farm 2"})
        assert good.json()["hotspot_prefix"] == "My Farm 2"
        renamed = await api.patch(f"/api/templates/{template_id}", json={"name": "Well Pump"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Well Pump"
        assert renamed.json()["id"] == template_id  # the id firmware carries never changes
        bad = await api.patch(
            f"/api/templates/{template_id}", json={"name": "x" * (NAME_LENGTH + 1)}
        )
        assert bad.status_code == 422
        described = await api.patch(
            f"/api/templates/{template_id}", json={"description": "Pumps water <b>up</b> 💧"}
        )
        assert described.json()["description"] == "Pumps water <b>up</b> 💧"
        assert described.json()["name"] == "Well Pump"  # untouched
        too_long = await api.patch(f"/api/templates/{template_id}", json={"description": "x" * 501})
        assert too_long.status_code == 422
        made = await api.post(
            f"/api/orgs/{cloud.org_id}/templates", json={"name": "Fan", "description": "Cools"}
        )
        assert made.json()["description"] == "Cools"
    viewer = await cloud.user("viewer@example.com", role="viewer")
    async with cloud.client(viewer) as api:
        refused = await api.patch(f"/api/templates/{template_id}", json={"name": "Mine"})
        assert refused.status_code == 403


async def test_provisioning_long_poll_wakes_on_claim(cloud: RunningCloud) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    assert len(request["token"]) == 32 and re.fullmatch(r"[A-Za-z0-9_-]{32}", request["token"])
    assert request["host"] == "cloud.test" and request["port"] == cloud.gateway[1]
    assert request["port_ssl"] is None
    assert f"token={request['token']}" in request["setup_link"]
    async with cloud.client(cloud.owner_token) as api:
        poll = asyncio.create_task(api.get(f"/api/provisioning/{request['id']}?wait=30"))
        await asyncio.sleep(0.2)
        assert not poll.done()
        loop = asyncio.get_running_loop()
        started = loop.time()
        dev = await RawDevice.connect(cloud.gateway)
        assert await dev.login(request["token"]) == Status.OK
        status = (await poll).json()
        assert loop.time() - started < 5
        assert status["status"] == "claimed" and status["device_id"]
        assert "token" not in status and status["token_last4"] == request["token"][-4:]
        renamed = await api.patch(f"/api/devices/{status['device_id']}", json={"name": "Kitchen"})
        assert renamed.json()["name"] == "Kitchen"
    dev.close()


async def test_pins_both_ways_and_buffer_limit(cloud: RunningCloud) -> None:
    device_id, token, dev = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        reply = await api.put(f"/api/devices/{device_id}/pins/5", json={"value": "on"})
        written = reply.json()  # plus how it was delivered (devices.write_pin_of says)
        assert (written["pin"], written["value"], written["delivered"]) == ("V5", ["on"], True)
        frame = await dev.recv()
        assert frame is not None and frame.command == Command.HARDWARE
        assert frame.body == b"vw\x005\x00on"
        await dev.send(Command.HARDWARE, 3, "vw", "7", "21.5", "C")

        async def stored() -> bool:
            return (await api.get(f"/api/devices/{device_id}/pins")).json().get("V7") == [
                "21.5",
                "C",
            ]

        await until(stored)
        big = await api.put(f"/api/devices/{device_id}/pins/5", json={"value": "x" * 300})
        assert big.status_code == 413 and "256" in big.json()["message"]
        assert (
            await api.put(f"/api/devices/{device_id}/pins/999", json={"value": "1"})
        ).status_code == 422
        # Blynk's HTTP device API, authenticated by the device token
        assert (await api.get(f"/external/api/get?token={token}&V7")).json() == ["21.5", "C"]
        assert (await api.get(f"/external/api/update?token={token}&V9=hello")).status_code == 200
        frame = await dev.recv()
        assert frame is not None and frame.body == b"vw\x009\x00hello"
        assert (await api.get(f"/external/api/get?token={token}&V9")).text == "hello"
        assert (await api.get(f"/external/api/isHardwareConnected?token={token}")).text == "true"
        assert (await api.get("/external/api/get?token=" + "x" * 32 + "&V1")).status_code == 404


async def test_reconfigure_sends_the_edgent_console_command(cloud: RunningCloud) -> None:
    device_id, _, dev = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        assert (await api.post(f"/api/devices/{device_id}/reconfigure")).status_code == 202
    frame = await dev.recv()
    assert frame is not None and frame.command == Command.INTERNAL
    assert frame.body == b"dbg\x00config start"
    dev.close()


async def test_erase_keeps_the_device_and_delete_revokes_its_token(cloud: RunningCloud) -> None:
    device_id, token, dev = await online_device(cloud)
    await dev.send(Command.HARDWARE, 3, "vw", "1", "42")
    async with cloud.client(cloud.owner_token) as api:

        async def stored() -> bool:
            return bool((await api.get(f"/api/devices/{device_id}/pins")).json())

        await until(stored)
        assert (await api.post(f"/api/devices/{device_id}/erase")).status_code == 204
        assert (await api.get(f"/api/devices/{device_id}/pins")).json() == {}
        after = (await api.get(f"/api/devices/{device_id}")).json()
        assert after["info"] == {} and after["online"] is True
        assert (await api.delete(f"/api/devices/{device_id}")).status_code == 204
        assert await dev.wait_closed()
        assert (await api.get(f"/api/devices/{device_id}")).status_code == 404
    again = await RawDevice.connect(cloud.gateway)
    assert await again.login(token) == Status.INVALID_TOKEN


async def test_offline_device_cannot_be_reconfigured(cloud: RunningCloud) -> None:
    device_id, _, dev = await online_device(cloud)
    dev.close()
    async with cloud.client(cloud.owner_token) as api:

        async def offline() -> bool:
            return not (await api.get(f"/api/devices/{device_id}")).json()["online"]

        await until(offline)
        reply = await api.post(f"/api/devices/{device_id}/reconfigure")
        assert reply.status_code == 409 and "offline" in reply.json()["message"]


async def test_openapi_schema_lists_the_routes(cloud: RunningCloud) -> None:
    async with cloud.client() as api:
        schema = (await api.get("/openapi.json")).json()
    assert "/api/templates/{template_id}/provisioning" in schema["paths"]
    assert "/external/api/update" in schema["paths"]


async def test_docs_page_needs_no_internet(cloud: RunningCloud) -> None:
    """/docs loads Swagger UI from the package (a phone on a device's AP has no internet)."""
    async with cloud.client() as api:
        page = await api.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        assert "http://" not in page.text and "https://" not in page.text
        assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        assert len(assets) >= 3, assets
        for url in assets:
            assert url.startswith("/docs-assets/"), url
            asset = await api.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100, url
        assert (await api.get("/openapi.json")).status_code == 200
        assert (await api.get("/redoc")).status_code == 404  # left out (see docs/cloud.md)
