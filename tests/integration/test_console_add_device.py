"""The console's "Add device" pages over plain HTTP (httpx), on SQLite and on PostgreSQL: the
template choice, the setup link page (AP name, link with next=, copy field, inline QR code), the
long-poll status, the result page for a claimed, refused and expired request (with a new link of
the same template), naming the device, and who may see what."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import update

from tests.conftest import RunningCloud
from tests.integration.test_console_sessions import browser, csrf_of, sign_in
from wifiprov.cloud import logins
from wifiprov.cloud.db.schema import provisioning_requests
from wifiprov.cloud.tokens import last4

LINK = re.compile(r'id="setup-link" href="([^"]+)"')


async def template(cloud: RunningCloud, name: str = "Thermostat") -> str:
    async with cloud.client(cloud.owner_token) as api:
        made = await api.post(f"/api/orgs/{cloud.org_id}/templates", json={"name": name})
        return str(made.json()["id"])


async def new_link(client: httpx.AsyncClient, template_id: str) -> tuple[httpx.Response, str]:
    page = await client.get("/add-device")
    reply = await client.post(
        "/add-device", data={"csrf": csrf_of(page), "template_id": template_id}
    )
    assert reply.status_code == 200, reply.text
    found = LINK.search(reply.text)
    assert found
    return reply, found.group(1).replace("&amp;", "&")


def request_id(reply: httpx.Response) -> int:
    found = re.search(r'data-result-url="/add-device/(\d+)"', reply.text)
    assert found
    return int(found.group(1))


async def claim(cloud: RunningCloud, token: str) -> None:
    pending = await logins.pending_claim(cloud.cloud.db, cloud.cloud.hasher(token))
    assert pending is not None
    assert await logins.commit_claim(cloud.cloud.db, pending, None) is not None


async def test_the_link_page_then_the_claim_and_the_name(cloud: RunningCloud) -> None:
    tid = await template(cloud, "Thermostat <b>")
    async with browser(cloud) as client:
        await sign_in(client)
        home = await client.get("/")
        assert 'href="/add-device"' in home.text
        pick = await client.get("/add-device")
        assert pick.status_code == 200
        assert "Thermostat &lt;b&gt;" in pick.text and "Acme Thermostat &lt;b&gt;-XXXX" in pick.text
        empty = await client.post("/add-device", data={"csrf": csrf_of(pick), "template_id": ""})
        assert empty.status_code == 400 and "Choose the kind of device" in empty.text

        reply, link = await new_link(client, tid)
        assert "Acme Thermostat &lt;b&gt;-XXXX" in reply.text and "Settings → WiFi" in reply.text
        assert '<svg role="img" aria-label="QR code of the setup link"' in reply.text
        assert reply.headers["cache-control"] == "no-store"
        parts = urlsplit(link)
        assert (parts.scheme, parts.netloc, parts.path) == ("http", "192.168.4.1", "/")
        query = parse_qs(parts.query)
        rid = request_id(reply)
        assert query["host"] == [cloud.cloud.settings.public_host] and len(query["token"][0]) == 32
        assert query["next"] == [f"{cloud.http_url}/add-device/{rid}"]
        assert f'value="{link}"'.replace("&", "&amp;") in reply.text  # the copy field

        status = await client.get(f"/add-device/{rid}/status")
        assert (
            status.json()["status"] == "pending" and status.headers["cache-control"] == "no-store"
        )
        waiting = await client.get(f"/add-device/{rid}")
        assert "Waiting for the device" in waiting.text

        await claim(cloud, query["token"][0])
        status = await client.get(f"/add-device/{rid}/status", params={"wait": 5})
        assert status.json()["status"] == "claimed"
        named = await client.get(f"/add-device/{rid}")
        assert "is online" in named.text and 'name="name"' in named.text
        default = f"Thermostat &lt;b&gt; {last4(query['token'][0])}"
        assert f'value="{default}"' in named.text
        blank = await client.post(
            f"/add-device/{rid}/name", data={"csrf": csrf_of(named), "name": "  "}
        )
        assert blank.status_code == 400 and 'id="f-name-error"' in blank.text
        done = await client.post(
            f"/add-device/{rid}/name", data={"csrf": csrf_of(named), "name": "Kitchen 🔥 <i>"}
        )
        assert done.status_code == 200 and "Kitchen 🔥 &lt;i&gt;" in done.text
    async with cloud.client(cloud.owner_token) as api:
        assert [d["name"] for d in (await api.get("/api/devices")).json()] == ["Kitchen 🔥 <i>"]


async def test_refused_and_expired_say_what_to_do_and_offer_a_new_link(cloud: RunningCloud) -> None:
    tid = await template(cloud)
    async with browser(cloud) as client:
        await sign_in(client)
        reply, link = await new_link(client, tid)
        rid = request_id(reply)
        token = parse_qs(urlsplit(link).query)["token"][0]
        pending = await logins.pending_claim(cloud.cloud.db, cloud.cloud.hasher(token))
        assert pending is not None
        await logins.refuse_claim(cloud.cloud.db, pending, "the device's firmware reports TMPLX")
        status = (await client.get(f"/add-device/{rid}/status", params={"wait": 5})).json()
        assert status["status"] == "refused" and "another template" in status["what"]
        page = await client.get(f"/add-device/{rid}")
        assert "The device was refused" in page.text and "Choose the template" in page.text
        assert f'name="template_id" value="{tid}"' in page.text
        again = await client.post("/add-device", data={"csrf": csrf_of(page), "template_id": tid})
        assert again.status_code == 200 and request_id(again) != rid

        rid2 = request_id(again)
        async with cloud.cloud.db.begin() as conn:
            await conn.execute(
                update(provisioning_requests)
                .where(provisioning_requests.c.id == rid2)
                .values(expires_at=0)
            )
        status = (await client.get(f"/add-device/{rid2}/status", params={"wait": 5})).json()
        assert status["status"] == "expired" and "expired" in status["what"]
        page = await client.get(f"/add-device/{rid2}")
        assert (
            "The setup link expired" in page.text and "New setup link for Thermostat" in page.text
        )
        late = await client.post(
            f"/add-device/{rid2}/name", data={"csrf": csrf_of(page), "name": "x"}
        )
        assert late.status_code == 409


async def test_roles_and_other_organizations(cloud: RunningCloud) -> None:
    tid = await template(cloud)
    await cloud.user("viewer@example.com", "viewer")
    await cloud.user("stranger@example.com")
    async with browser(cloud) as owner:
        await sign_in(owner)
        reply, _ = await new_link(owner, tid)
        rid = request_id(reply)
    async with browser(cloud) as viewer:
        await sign_in(viewer, "viewer@example.com")
        assert 'href="/add-device"' not in (await viewer.get("/")).text
        assert (await viewer.get("/add-device")).status_code == 403
        home = await viewer.get("/")
        refused = await viewer.post("/add-device", data={"csrf": csrf_of(home), "template_id": tid})
        assert refused.status_code == 403
    async with browser(cloud) as stranger:
        await sign_in(stranger, "stranger@example.com")
        home = await stranger.get("/")
        for path in (f"/add-device/{rid}", f"/add-device/{rid}/status"):
            assert (await stranger.get(path)).status_code == 404, path
        posted = await stranger.post(
            f"/add-device/{rid}/name", data={"csrf": csrf_of(home), "name": "mine"}
        )
        assert posted.status_code == 404
        other = await stranger.post("/add-device", data={"csrf": csrf_of(home), "template_id": tid})
        assert other.status_code == 400 and "not in this organization" in other.text
