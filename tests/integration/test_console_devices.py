"""The console's Devices pages over plain HTTP (httpx) against an in-process cloud with real
Blynk-protocol devices, on SQLite and PostgreSQL: the list and its presence stream, the device
page, every action's outcome, pin writes both ways, roles, other organizations, and presence
across two nodes over NATS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningCloud, start_cloud, stop_cloud, with_owner
from tests.integration.support import (
    CPP_INFO,
    RawDevice,
    online_device,
    provisioning_token,
    template,
    until,
    with_template,
)
from tests.integration.test_console_sessions import browser, csrf_of, sign_in
from wifiprov.cloud.settings import CloudSettings
from wifiprov.wire.blynk import Command

WEIRD = "<b>\"Tom's</b> 🚀 " + "x" * 184  # the longest name a device may have
WEIRD_HTML = "&lt;b&gt;&#34;Tom&#39;s&lt;/b&gt; 🚀 " + "x" * 184
NATS = os.environ.get("WIFIPROV_TEST_NATS", "nats://127.0.0.1:4222")


class Events:
    """A Server-Sent Events stream of a console page, read event by event (a reader task keeps
    reading, so waiting for an event may time out and the stream still goes on)."""

    def __init__(self, response: httpx.Response) -> None:
        self.queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        self.reader = asyncio.get_running_loop().create_task(self._read(response))

    async def _read(self, response: httpx.Response) -> None:
        event, data = "", ""
        try:
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "":
                    if event:
                        self.queue.put_nowait((event, data))
                    event, data = "", ""
        except (httpx.HTTPError, httpx.StreamError):
            pass  # the test closed the stream
        finally:
            self.queue.put_nowait(None)

    async def next(self, kind: str, timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                got = await self.queue.get()
                if got is None:
                    raise AssertionError("the stream ended")
                if got[0] == kind:
                    return json.loads(got[1])


@contextlib.asynccontextmanager
async def signed_in(
    cloud: RunningCloud, email: str = "owner@example.com"
) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(cloud) as client:
        reply = await sign_in(client, email)
        assert reply.status_code == 303, reply.text
        yield client


async def post(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    csrf = csrf_of(await client.get("/"))
    return await client.post(path, data={"csrf": csrf, **fields})


async def test_the_list_is_live_paged_filtered_and_escaped(cloud: RunningCloud) -> None:
    device_id, token, device = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        assert (await api.patch(f"/api/devices/{device_id}", json={"name": WEIRD})).is_success
        template_id = (await api.get(f"/api/devices/{device_id}")).json()["template_id"]
    async with signed_in(cloud) as client:
        page = await client.get("/devices")
        assert page.status_code == 200
        main = page.text.split("<main", 1)[1]
        assert WEIRD_HTML in main and "<b>" not in main
        assert f'data-device-id="{device_id}"' in main and ">Online<" in main
        assert "/console-static/devices.js" in page.text
        online = await client.get("/devices", params={"status": "online"})
        assert f'data-device-id="{device_id}"' in online.text
        offline = await client.get("/devices", params={"status": "offline"})
        assert f'data-device-id="{device_id}"' not in offline.text
        assert "No devices match these filters" in offline.text
        other = await template(cloud, name="Other")
        assert "No devices match" in (await client.get(f"/devices?template={other}")).text
        mine = await client.get(f"/devices?template={template_id}")
        assert f'data-device-id="{device_id}"' in mine.text

        async with client.stream("GET", "/devices/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = Events(stream)
            device.close()
            gone = await events.next("presence")
            assert gone["id"] == device_id and gone["online"] is False
            again = await RawDevice.connect(cloud.gateway)
            assert await again.login(token) == 200
            back = await events.next("presence")
            assert back == {"id": device_id, "online": True, "at": back["at"]}
            again.close()
            assert (await events.next("presence"))["online"] is False

        # a stranger's devices never appear on this organization's stream
        stranger = await cloud.user("stranger@example.com")
        async with signed_in(cloud, "stranger@example.com") as theirs:
            async with theirs.stream("GET", "/devices/events") as stream:
                events = Events(stream)
                again = await RawDevice.connect(cloud.gateway)
                assert await again.login(token) == 200
                with pytest.raises(TimeoutError):
                    await events.next("presence", timeout=1.0)
                again.close()
        assert stranger


async def test_paging(cloud: RunningCloud) -> None:
    from wifiprov.cloud.console.pages import devices as page_module

    template_id = await template(cloud)
    db = cloud.cloud.db
    from sqlalchemy import insert

    from wifiprov.cloud.db.schema import devices as table

    async with db.begin() as conn:
        await conn.execute(
            insert(table),
            [
                {
                    "org_id": cloud.org_id,
                    "template_id": template_id,
                    "name": f"Unit {i:03}",
                    "token_hash": f"h{i}",
                    "token_last4": "abcd",
                    "created_at": 0.0,
                    "info": "{}",
                }
                for i in range(page_module.PER_PAGE + 5)
            ],
        )
    async with signed_in(cloud) as client:
        first = await client.get("/devices")
        assert "1–100 of 105 devices" in first.text and "Unit 099" in first.text
        assert "Unit 100" not in first.text and 'href="/devices?p=2"' in first.text
        second = await client.get("/devices?p=2")
        assert "101–105 of 105 devices" in second.text and "Unit 104" in second.text


async def test_device_page_actions_and_pins(cloud: RunningCloud) -> None:
    device_id, token, device = await online_device(cloud)
    base = f"/devices/{device_id}"
    async with signed_in(cloud) as client:

        async def reported() -> bool:  # the info message is stored behind
            return "ESP32" in (await client.get(base)).text

        await until(reported)
        page = await client.get(base)
        assert page.status_code == 200
        for fact in ("ESP32", "0.1.0", "127.0.0.1", "Online", "Reconfigure", "Write"):
            assert fact in page.text, fact

        # a pin write reaches the device
        wrote = await post(client, f"{base}/pin", pin="V3", value="<on>")
        assert wrote.status_code == 303 and wrote.headers["location"].endswith("pin-delivered")
        frame = await device.recv()
        assert frame is not None and frame.command == Command.HARDWARE
        assert frame.body == b"vw\x003\x00<on>"
        shown = await client.get(wrote.headers["location"])
        assert "delivered on the device" in shown.text and "&lt;on&gt;" in shown.text
        bad = await post(client, f"{base}/pin", pin="300", value="")
        assert bad.status_code == 400
        assert 'id="f-pin-error"' in bad.text and 'id="f-value-error"' in bad.text
        for pin in ("²", "V٣", "9" * 5000):  # digits to str.isdigit, not to int() or a pin
            bad = await post(client, f"{base}/pin", pin=pin, value="x")
            assert bad.status_code == 400 and 'id="f-pin-error"' in bad.text, pin

        # the device's own write appears on the open page's stream
        async with client.stream("GET", f"{base}/events") as stream:
            events = Events(stream)
            await device.send(Command.HARDWARE, 7, "vw", 2, "21.5")
            pins = await events.next("pins")
            while "V2" not in pins:  # (the first event is the values as they were)
                pins = await events.next("pins")
            assert pins == {"V2": ["21.5"], "V3": ["<on>"]}

        # reconfigure while online: the device gets Edgent's "config start"
        sent = await post(client, f"{base}/reconfigure")
        assert sent.headers["location"].endswith("reconfigure-delivered")
        frame = await device.recv()
        assert frame is not None and frame.command == Command.INTERNAL
        assert frame.body == b"dbg\x00config start"
        assert "back in setup mode" in (await client.get(sent.headers["location"])).text

        # rename: bad, then good
        empty = await post(client, f"{base}/rename", name="  ")
        assert empty.status_code == 400 and 'id="f-name-error"' in empty.text
        renamed = await post(client, f"{base}/rename", name=WEIRD)
        assert renamed.headers["location"].endswith("renamed")
        assert WEIRD_HTML in (await client.get(base)).text

        # offline: the outcomes say so
        device.close()
        await until(lambda: _offline(client, base))
        late = await post(client, f"{base}/reconfigure")
        assert late.headers["location"].endswith("reconfigure-offline")
        assert "Device offline" in (await client.get(late.headers["location"])).text
        stored = await post(client, f"{base}/pin", pin="4", value="later")
        assert stored.headers["location"].endswith("pin-offline")

        # erase, with a confirmation naming the device
        confirm = await client.get(f"{base}/erase")
        assert f"Erase all data of “{WEIRD_HTML}”?" in confirm.text
        erased = await post(client, f"{base}/erase")
        assert erased.headers["location"].endswith("erased")
        after = await client.get(erased.headers["location"])
        assert "No values yet." in after.text and "All device data erased" in after.text

        # delete, with a confirmation naming the device
        confirm = await client.get(f"{base}/delete")
        assert f"Delete “{WEIRD_HTML}”?" in confirm.text
        gone = await post(client, f"{base}/delete")
        assert gone.headers["location"] == "/devices?outcome=deleted"
        assert "Device deleted" in (await client.get("/devices?outcome=deleted")).text
        assert (await client.get(base)).status_code == 404
        again = await RawDevice.connect(cloud.gateway)
        assert await again.login(token) == 9  # its token no longer works
        again.close()


async def _offline(client: httpx.AsyncClient, base: str) -> bool:
    return ">Offline<" in (await client.get(base)).text


ROUTES_GET = ["", "/events", "/erase", "/delete"]
ROUTES_POST = [
    ("/rename", {"name": "mine now"}),
    ("/reconfigure", {}),
    ("/erase", {}),
    ("/delete", {}),
    ("/pin", {"pin": "1", "value": "x"}),
]


async def test_roles_and_other_organizations(cloud: RunningCloud) -> None:
    device_id, _, device = await online_device(cloud)
    base = f"/devices/{device_id}"
    await cloud.user("viewer@example.com", "viewer")
    await cloud.user("operator@example.com", "operator")
    await cloud.user("stranger@example.com")
    async with signed_in(cloud, "viewer@example.com") as viewer:
        page = await viewer.get(base)
        assert page.status_code == 200 and "Online" in page.text
        for button in ("Write", "Rename", "Reconfigure", "Erase all device data", "Delete device"):
            assert f">{button}<" not in page.text, button
        for path in ("/erase", "/delete"):
            assert (await viewer.get(base + path)).status_code == 403
        for path, fields in ROUTES_POST:
            refused = await post(viewer, base + path, **fields)
            assert refused.status_code == 403, path
    async with signed_in(cloud, "operator@example.com") as operator:
        page = await operator.get(base)
        assert ">Write<" in page.text and ">Rename<" in page.text
        assert ">Reconfigure<" not in page.text and "Delete device" not in page.text
        assert (await post(operator, base + "/delete")).status_code == 403
    async with signed_in(cloud, "stranger@example.com") as stranger:
        for path in ROUTES_GET:
            assert (await stranger.get(base + path)).status_code == 404, path
        for path, fields in ROUTES_POST:
            assert (await post(stranger, base + path, **fields)).status_code == 404, path
        assert f'data-device-id="{device_id}"' not in (await stranger.get("/devices")).text
    async with cloud.client(cloud.owner_token) as api:
        kept = (await api.get(f"/api/devices/{device_id}")).json()
        assert kept["name"] != "mine now" and kept["online"]
    device.close()


def nats_up() -> bool:
    host, port = NATS.removeprefix("nats://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


async def test_presence_reaches_a_console_on_another_node(pg_db: str) -> None:
    if not nats_up():
        pytest.fail(f"no NATS at {NATS}: this test needs the NATS server the tiers run against")
    clouds = []
    try:
        for node in ("a", "b"):
            settings = CloudSettings(
                db_url=pg_db,
                http=("127.0.0.1", 0),
                gateway=("127.0.0.1", 0),
                public_host="cloud.test",
                bus_url=NATS,
                node_id=f"node-{node}",
                flush_interval=0.05,
            )
            clouds.append(await start_cloud(settings))
        a = await with_owner(clouds[0][0])
        b_cloud = clouds[1][0]
        template_id = await template(a)
        request = await provisioning_token(a, template_id)
        async with signed_in(a) as client:
            async with client.stream("GET", "/devices/events") as stream:
                events = Events(stream)
                device = await RawDevice.connect(b_cloud.gateway.addresses()[0])
                assert await device.login(request["token"]) == 200
                await device.send(Command.INTERNAL, 2, *with_template(CPP_INFO, template_id))
                came = await events.next("presence")
                assert came["online"] is True
                # the device moves to node A: node B's replaced connection says nothing
                moved = await RawDevice.connect(a.gateway)
                assert await moved.login(request["token"]) == 200
                assert (await events.next("presence"))["online"] is True
                assert await device.wait_closed()
                with pytest.raises(TimeoutError):
                    await events.next("presence", timeout=1.0)
                moved.close()
                went = await events.next("presence")
                assert went["id"] == came["id"] and went["online"] is False
    finally:
        for running, task in reversed(clouds):
            await stop_cloud(running, task)
