"""The console's templates and members pages over plain HTTP (httpx), on SQLite and PostgreSQL:
forms validated on the server with the error next to the field, names escaped and intact, roles
refused by the server even when their buttons are not shown, 404 for other organizations, and
the one-time invite link."""

from __future__ import annotations

import html
import re

import httpx
from markupsafe import escape

from tests.conftest import PASSWORD, RunningCloud
from tests.integration.test_console_sessions import browser, csrf_of, sign_in
from wifiprov.cloud.db.schema import NAME_LENGTH

NASTY = '<b>x</b> & "q" 🚀 ' + "é" * 183  # HTML, emoji, the longest name
assert len(NASTY) == NAME_LENGTH


async def _template(client: httpx.AsyncClient, name: str) -> str:
    made = await client.post(
        "/templates", data={"csrf": csrf_of(await client.get("/")), "name": name}
    )
    assert made.status_code == 303, made.text
    return made.headers["location"].split("/")[2].split("?")[0]


async def test_templates_create_show_edit_and_validation(cloud: RunningCloud) -> None:
    async with browser(cloud) as client:
        await sign_in(client)
        listing = await client.get("/templates")
        assert listing.status_code == 200 and "No templates yet" in listing.text
        empty = await client.post("/templates", data={"csrf": csrf_of(listing), "name": "  "})
        assert empty.status_code == 400
        assert 'id="f-name-error"' in empty.text and 'aria-invalid="true"' in empty.text
        too_long = await client.post(
            "/templates", data={"csrf": csrf_of(listing), "name": "x" * (NAME_LENGTH + 1)}
        )
        assert too_long.status_code == 400 and 'id="f-name-error"' in too_long.text

        tid = await _template(client, NASTY)
        page = await client.get(f"/templates/{tid}")
        assert page.status_code == 200
        assert "<b>x</b>" not in page.text and str(escape(NASTY)) in page.text
        assert f"template_id = &#34;{tid}&#34;" in page.text  # the CLI's device.toml, escaped
        assert f"#define BLYNK_TEMPLATE_ID &#34;{tid}&#34;" in page.text
        assert "The WiFi name is too long" in page.text  # prefix + 200 characters do not fit
        assert "Acme &lt;b&gt;x&lt;/b&gt; &amp;" in page.text  # the cut name, escaped

        short = await _template(client, "Lamp")
        lamp = await client.get(f"/templates/{short}")
        assert "Acme Lamp-XXXX" in lamp.text and "too long" not in lamp.text
        assert "template_name = &#34;Lamp&#34;" in lamp.text

        edit = await client.get(f"/templates/{short}/edit")
        assert edit.status_code == 200 and 'href="/members#organization"' in edit.text
        bad = await client.post(
            f"/templates/{short}/edit", data={"csrf": csrf_of(edit), "name": ""}
        )
        assert bad.status_code == 400 and 'id="f-name-error"' in bad.text
        good = await client.post(
            f"/templates/{short}/edit", data={"csrf": csrf_of(edit), "name": "Lamp 2"}
        )
        assert good.status_code == 303
        assert "Lamp 2" in (await client.get(f"/templates/{short}")).text


async def test_viewer_sees_no_buttons_and_is_refused(cloud: RunningCloud) -> None:
    await cloud.user("viewer@example.com", "viewer")
    async with browser(cloud) as owner, browser(cloud) as viewer:
        await sign_in(owner)
        tid = await _template(owner, "Lamp")
        await sign_in(viewer, "viewer@example.com")
        listing = await viewer.get("/templates")
        assert "Lamp" in listing.text and "Create template" not in listing.text
        shown = await viewer.get(f"/templates/{tid}")
        assert shown.status_code == 200 and "Edit template" not in shown.text
        members = await viewer.get("/members")
        assert "Invite" not in members.text and "Change role" not in members.text
        assert "Save organization" not in members.text
        csrf = csrf_of(listing)
        posts = {
            "/templates": {"name": "Nope"},
            f"/templates/{tid}/edit": {"name": "Nope"},
            "/members/invite": {"email": "x@example.com", "role": "viewer"},
            "/members/1/role": {"role": "viewer"},
            "/members/1/remove": {},
            "/members/organization": {"name": "Nope", "hotspot_prefix": "Nope"},
        }
        for path, data in posts.items():
            refused = await viewer.post(path, data={"csrf": csrf, **data})
            assert refused.status_code == 403, path
        for path in (f"/templates/{tid}/edit", "/members/1/remove", "/members/invite-link?email=x"):
            assert (await viewer.get(path)).status_code == 403, path
        assert "Nope" not in (await owner.get("/templates")).text
        assert "Acme" in (await owner.get("/members")).text


async def test_another_organization_gets_404(cloud: RunningCloud) -> None:
    await cloud.user("stranger@example.com")  # owner of an organization of their own
    async with browser(cloud) as owner, browser(cloud) as stranger:
        await sign_in(owner)
        tid = await _template(owner, "Lamp")
        await sign_in(stranger, "stranger@example.com")
        csrf = csrf_of(await stranger.get("/"))
        for path in (f"/templates/{tid}", f"/templates/{tid}/edit"):
            assert (await stranger.get(path)).status_code == 404, path
            refused = await stranger.post(path + ("" if path.endswith("edit") else "/edit"),
                                          data={"csrf": csrf, "name": "Mine"})  # fmt: skip
            assert refused.status_code == 404, path
        # Acme's owner (user 1) is no member of theirs: every members URL about them is 404
        assert (await stranger.get("/members/1/remove")).status_code == 404
        assert (
            await stranger.get("/members/invite-link?email=owner@example.com")
        ).status_code == 404
        for path, data in (("/members/1/role", {"role": "viewer"}), ("/members/1/remove", {})):
            assert (await stranger.post(path, data={"csrf": csrf, **data})).status_code == 404
        # their own members page lists only their organization
        mine = await stranger.get("/members")
        assert "owner@example.com" not in mine.text
        assert "Lamp" not in (await stranger.get("/templates")).text
        assert "Lamp" in (await owner.get(f"/templates/{tid}")).text


async def test_members_invite_link_role_and_remove(cloud: RunningCloud) -> None:
    async with browser(cloud) as client:
        await sign_in(client)
        page = await client.get("/members")
        assert "owner@example.com" in page.text and "can add devices" in page.text
        csrf = csrf_of(page)
        bad = await client.post(
            "/members/invite", data={"csrf": csrf, "email": "nope", "role": "x"}
        )
        assert bad.status_code == 400
        assert 'id="f-email-error"' in bad.text and 'id="f-role-error"' in bad.text
        invited = await client.post(
            "/members/invite", data={"csrf": csrf, "email": "new@example.com", "role": "viewer"}
        )
        assert invited.status_code == 303
        link_page = await client.get(invited.headers["location"])
        link = re.search(r"(http://[^<\s]+/invite/[^<\s]+)", link_page.text)
        assert link, link_page.text
        path = "/invite/" + link.group(1).split("/invite/")[1]

        page = await client.get("/members")
        row = re.search(r'for="role-(\d+)">Role of new@example.com', page.text)
        assert row and "cannot add devices" in page.text
        uid = row.group(1)
        changed = await client.post(
            f"/members/{uid}/role", data={"csrf": csrf, "role": "installer"}
        )
        assert changed.status_code == 303
        page = await client.get("/members?done=role")
        assert "Role changed." in page.text

        # the invitee sets a password with the link, once
        async with browser(cloud) as invitee:
            form = await invitee.get(path)
            assert form.status_code == 200 and "Join Acme" in form.text
            short = await invitee.post(path, data={"csrf": csrf_of(form), "password": "x"})
            assert short.status_code == 400 and 'id="f-password-error"' in short.text
            done = await invitee.post(
                path,
                data={"csrf": csrf_of(form), "password": PASSWORD, "password2": PASSWORD},
            )
            assert done.status_code == 303
            home = await invitee.get("/")
            assert home.status_code == 200 and "new@example.com" in home.text
            again = await invitee.get(path)
            assert again.status_code == 404 and "does not work" in again.text
            assert (await invitee.get("/invite/1.1.9999999999.abc")).status_code == 404

            # removed: confirmation names them, and their session ends at once
            confirm = await client.get(f"/members/{uid}/remove")
            assert "Remove new@example.com?" in confirm.text
            removed = await client.post(f"/members/{uid}/remove", data={"csrf": csrf})
            assert removed.status_code == 303
            assert (await invitee.get("/")).status_code == 303

        # the owner cannot be removed nor demoted; an admin cannot transfer ownership
        owner_page = await client.get("/members")
        assert "The owner: to hand ownership over" in owner_page.text

        org = await client.post(
            "/members/organization", data={"csrf": csrf, "name": "", "hotspot_prefix": "bad!"}
        )
        assert org.status_code == 400
        assert 'id="f-name-error"' in org.text and 'id="f-hotspot_prefix-error"' in org.text
        ok = await client.post(
            "/members/organization", data={"csrf": csrf, "name": "Acme 2", "hotspot_prefix": "Zz"}
        )
        assert ok.status_code == 303


async def test_admin_cannot_transfer_ownership(cloud: RunningCloud) -> None:
    await cloud.user("admin@example.com", "admin")
    await cloud.user("other@example.com", "operator")
    async with browser(cloud) as admin:
        await sign_in(admin, "admin@example.com")
        page = await admin.get("/members")
        assert "(hand ownership over)" not in page.text
        uid = re.search(r'for="role-(\d+)">Role of other@example.com', page.text)
        assert uid
        refused = await admin.post(
            f"/members/{uid.group(1)}/role", data={"csrf": csrf_of(page), "role": "owner"}
        )
        assert refused.status_code == 403, refused.status_code
        assert "only the owner" in html.unescape(refused.text).lower(), refused.text[-1500:]


async def test_a_template_description_is_edited_and_shown_escaped(cloud: RunningCloud) -> None:
    async with browser(cloud) as web:
        await sign_in(web)
        template_id = await _template(web, "Pump")
        page = await web.get(f"/templates/{template_id}/edit")
        csrf = csrf_of(page)
        too_long = await web.post(
            f"/templates/{template_id}/edit",
            data={"csrf": csrf, "name": "Pump", "description": "x" * 501},
        )
        assert too_long.status_code == 400 and "at most 500 characters" in too_long.text
        saved = await web.post(
            f"/templates/{template_id}/edit",
            data={"csrf": csrf, "name": "Pump", "description": "Moves <b>water</b> 💧"},
        )
        assert saved.status_code == 303
        shown = await web.get(f"/templates/{template_id}")
        assert "Moves &lt;b&gt;water&lt;/b&gt; 💧" in shown.text
