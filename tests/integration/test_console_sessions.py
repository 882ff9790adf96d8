"""The console's cookie sessions and CSRF protection over plain HTTP (httpx), on SQLite and on
PostgreSQL: sign in and out, cookie flags, forged and stale forms, the organization cookie, the
first-run sign-up, and the bearer API left as it was."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import PASSWORD, RunningCloud, start_cloud, stop_cloud
from wifiprov.cloud import accounts
from wifiprov.cloud.settings import CloudSettings

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def browser(cloud: RunningCloud) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=cloud.http_url, timeout=30)


async def sign_in(client: httpx.AsyncClient, email: str = "owner@example.com") -> httpx.Response:
    form = await client.get("/sign-in")
    return await client.post(
        "/sign-in", data={"csrf": csrf_of(form), "email": email, "password": PASSWORD}
    )


def set_cookies(response: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


async def test_pages_need_a_session_and_sign_in_sets_a_safe_cookie(cloud: RunningCloud) -> None:
    async with browser(cloud) as client:
        home = await client.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/sign-in?next=/"
        wrong = await client.post(
            "/sign-in",
            data={
                "csrf": csrf_of(await client.get("/sign-in")),
                "email": "owner@example.com",
                "password": "not it at all",
            },
        )
        assert wrong.status_code == 401
        assert 'id="f-password-error"' in wrong.text and "Wrong e-mail or password" in wrong.text
        assert "wifiprov_session" not in client.cookies
        right = await sign_in(client)
        assert right.status_code == 303 and right.headers["location"] == "/"
        cookie = set_cookies(right)["wifiprov_session"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # plain http
        home = await client.get("/")
        assert home.status_code == 200 and "Acme" in home.text
        assert home.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
        # the cookie is not a bearer token for the API: the API is as it was
        assert (await client.get("/api/me")).status_code == 401
    async with cloud.client(cloud.owner_token) as api:
        assert (await api.get("/api/me")).status_code == 200


async def test_the_cookie_is_secure_over_https(cloud: RunningCloud) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS proxy on the same host)
    async with httpx.AsyncClient(
        base_url=cloud.http_url, headers={"X-Forwarded-Proto": "https"}, timeout=30
    ) as client:
        form = await client.get("/sign-in")
        assert "secure" in set_cookies(form)["wifiprov_pre"].lower()
        # httpx keeps Secure cookies for https URLs only: hand this one back as a browser would
        client.cookies.set("wifiprov_pre", form.cookies["wifiprov_pre"])
        right = await client.post(
            "/sign-in",
            data={"csrf": csrf_of(form), "email": "owner@example.com", "password": PASSWORD},
        )
        assert right.status_code == 303
        assert "secure" in set_cookies(right)["wifiprov_session"].lower()


async def test_forged_and_stale_forms_are_refused_with_a_page(cloud: RunningCloud) -> None:
    async with browser(cloud) as client, browser(cloud) as other:
        await sign_in(client)
        await sign_in(other)
        page = await client.get("/")
        mine = csrf_of(page)
        for forged in (
            {},
            {"csrf": ""},
            {"csrf": "0" * 64},
            {"csrf": csrf_of(await other.get("/"))},
        ):
            refused = await client.post("/sign-out", data=forged)
            assert refused.status_code == 403, forged
            assert "This form has expired" in refused.text and "Nothing was changed" in refused.text
        assert (await client.get("/")).status_code == 200  # still signed in
        # a sign-in form posted without its pre-session cookie (another site's form)
        async with browser(cloud) as stranger:
            forged_in = await stranger.post(
                "/sign-in",
                data={"csrf": "0" * 64, "email": "owner@example.com", "password": PASSWORD},
            )
            assert forged_in.status_code == 403 and "wifiprov_session" not in stranger.cookies
        out = await client.post("/sign-out", data={"csrf": mine})
        assert out.status_code == 303 and out.headers["location"] == "/sign-in?signed_out=1"
        assert (await client.get("/")).status_code == 303
        # the form of the ended session is stale in the next session of the same browser
        await sign_in(client)
        stale = await client.post("/sign-out", data={"csrf": mine})
        assert stale.status_code == 403
        assert (await client.get("/")).status_code == 200


async def test_a_removed_member_is_signed_out_at_once(cloud: RunningCloud) -> None:
    await cloud.user("ivy@example.com", role="operator")
    async with browser(cloud) as client:
        await sign_in(client, "ivy@example.com")
        assert (await client.get("/")).status_code == 200
        async with cloud.client(cloud.owner_token) as api:
            gone = await api.delete(f"/api/orgs/{cloud.org_id}/members/ivy@example.com")
            assert gone.status_code == 204
        assert (await client.get("/")).status_code == 303


async def test_switching_organization_is_remembered(cloud: RunningCloud) -> None:
    db = cloud.cloud.db
    owner = await accounts.authenticate(db, cloud.cloud.hasher, cloud.owner_token)
    second = await accounts.create_org(db, "Beta <b>&amp;</b> 🚀", owner.user_id)
    async with browser(cloud) as client:
        await sign_in(client)
        home = await client.get("/")
        assert "<h1>Acme</h1>" in home.text
        assert "Beta &lt;b&gt;&amp;amp;&lt;/b&gt; 🚀" in home.text  # escaped and intact
        switched = await client.post(
            "/org", data={"csrf": csrf_of(home), "org_id": str(second), "next": "/"}
        )
        assert switched.status_code == 303
        assert "httponly" in set_cookies(switched)["wifiprov_org"].lower()
        assert "<h1>Beta &lt;b&gt;" in (await client.get("/")).text
        # an organization the user is not in: refused, the choice kept
        other = await cloud.user("zed@example.com")
        assert other
        refused = await client.post(
            "/org", data={"csrf": csrf_of(home), "org_id": "999999", "next": "/"}
        )
        assert refused.status_code == 404
        assert "<h1>Beta &lt;b&gt;" in (await client.get("/")).text


async def test_sign_in_backoff_is_shown_with_retry_after(cloud: RunningCloud) -> None:
    async with browser(cloud) as client:
        token = csrf_of(await client.get("/sign-in"))
        statuses = []
        for _ in range(8):
            answer = await client.post(
                "/sign-in",
                data={"csrf": token, "email": "owner@example.com", "password": "wrong password"},
            )
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                break
        assert statuses[-1] == 429, statuses
        assert int(answer.headers["retry-after"]) >= 1
        assert "Too many failed sign-ins" in answer.text and 'role="alert"' in answer.text


@pytest.fixture
async def empty_cloud(settings: CloudSettings) -> AsyncIterator[str]:
    running, task = await start_cloud(settings)
    try:
        host, port = running.http_address
        yield f"http://{host}:{port}"
    finally:
        await stop_cloud(running, task)


async def test_first_run_sign_up_creates_the_owner_once(empty_cloud: str) -> None:
    async with httpx.AsyncClient(base_url=empty_cloud, timeout=30) as client:
        first = await client.get("/")
        assert first.headers["location"].startswith("/sign-in")
        to_sign_up = await client.get("/sign-in")
        assert to_sign_up.headers["location"] == "/sign-up"
        form = await client.get("/sign-up")
        token = csrf_of(form)
        bad = await client.post(
            "/sign-up",
            data={
                "csrf": token,
                "email": "nope",
                "password": "short",
                "password2": "",
                "org": "",
                "hotspot_prefix": "Bad-prefix!",
            },
        )
        assert bad.status_code == 400
        for name in ("email", "password", "org", "hotspot_prefix"):
            assert f'id="f-{name}-error"' in bad.text, name
        good = await client.post(
            "/sign-up",
            data={
                "csrf": token,
                "email": "First@Example.com",
                "password": PASSWORD,
                "password2": PASSWORD,
                "org": "First Co",
                "hotspot_prefix": "Acme",
            },
        )
        assert good.status_code == 303 and good.headers["location"] == "/"
        assert "<h1>First Co</h1>" in (await client.get("/")).text
        assert (await client.get("/sign-up")).headers["location"] == "/sign-in"
    async with httpx.AsyncClient(base_url=empty_cloud, timeout=30) as late:
        token = csrf_of(await late.get("/sign-in"))
        again = await late.post(
            "/sign-up",
            data={
                "csrf": token,
                "email": "second@example.com",
                "password": PASSWORD,
                "password2": PASSWORD,
                "org": "Second",
                "hotspot_prefix": "Blynk",
            },
        )
        assert again.status_code == 409
        api = await late.post(
            "/api/auth/sign-in", json={"email": "first@example.com", "password": PASSWORD}
        )
        assert api.status_code == 200


async def test_unknown_console_addresses_get_a_page_and_the_api_keeps_json(
    cloud: RunningCloud,
) -> None:
    page = {"accept": "text/html,application/xhtml+xml"}
    async with cloud.client() as web:
        for path in ("/no-such-page", "/devices/not-a-number", "/a/b/c"):
            reply = await web.get(path, headers=page)
            assert reply.status_code == 404, path
            assert reply.headers["content-type"].startswith("text/html"), path
            assert "There is nothing here." in reply.text
        api = await web.get("/api/no-such-route", headers=page)
        assert api.status_code == 404 and api.json()["error"] == "http_error"
    async with cloud.client(cloud.owner_token) as api_client:
        bad_id = await api_client.get("/api/devices/notanumber", headers=page)
        assert bad_id.status_code == 422 and bad_id.json()["error"] == "invalid"
