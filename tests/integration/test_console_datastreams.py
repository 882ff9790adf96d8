"""The template page's datastreams over plain HTTP (httpx), on SQLite and PostgreSQL: add, edit
and delete with the API's own checks and words next to each field, every bad input refused with
nothing changed, hostile names escaped and usable (``..``, ``%``, ``?`` and ``&`` in the query,
never the path), read-only for who may not edit the template, 404 for another organization, and
forms without this browser's CSRF token refused."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from markupsafe import escape

from tests.conftest import RunningCloud
from tests.integration.test_console_sessions import browser, csrf_of, sign_in
from tests.integration.test_console_templates_members import _template
from wifiprov.cloud import datastreams
from wifiprov.cloud.db.schema import DATASTREAM_NAME_LENGTH

HOSTILE = '<img src=x onerror=alert(1)> & "q" 🚀 '  # HTML (a name has no '/'), emoji
NASTY = HOSTILE + "é" * (DATASTREAM_NAME_LENGTH - len(HOSTILE))  # the longest name
ODD_NAMES = ["..", "a%2Fb?c=d&e", "Temp. (°C)"]  # a path would not keep these


def _form(**fields: str) -> dict[str, str]:
    return {"name": "Temperature", "pin": "1", "type": "double", "min": "", "max": "",
            "unit": "", **fields}  # fmt: skip


async def _api_streams(cloud: RunningCloud, tid: str) -> list[dict[str, Any]]:
    async with cloud.client(cloud.owner_token) as api:
        reply = await api.get(f"/api/templates/{tid}/datastreams")
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def _message(field: str, **values: Any) -> str:
    """The API's words for a field's problem (datastreams.problems), as the form shows them."""
    args = {"name": "Temperature", "pin": 1, "kind": "double", "lo": None, "hi": None,
            "unit": "", **values}  # fmt: skip
    found = datastreams.problems(**args)[field]
    return str(escape(found[:1].upper() + found[1:] + "."))


async def test_add_edit_and_delete_a_datastream(cloud: RunningCloud) -> None:
    async with browser(cloud) as client:
        await sign_in(client)
        tid = await _template(client, "Thermostat")
        page = await client.get(f"/templates/{tid}")
        assert "No datastreams yet." in page.text
        assert f'href="/templates/{tid}/datastreams/new"' in page.text
        new = await client.get(f"/templates/{tid}/datastreams/new")
        assert new.status_code == 200 and "Add a datastream" in new.text
        assert 'id="f-pin"' in new.text and 'value="0"' in new.text  # the first free pin
        csrf = csrf_of(new)

        added = await client.post(
            f"/templates/{tid}/datastreams/new",
            data={"csrf": csrf, **_form(name=NASTY, pin="V3", min="-40", max="85.5", unit="°C")},
        )
        assert added.status_code == 303, added.text
        assert added.headers["location"] == f"/templates/{tid}?ds=added#datastreams"
        assert await _api_streams(cloud, tid) == [
            {"name": NASTY, "pin": "V3", "type": "double", "min": -40, "max": 85.5, "unit": "°C"}
        ]
        page = await client.get(added.headers["location"])
        assert "Datastream added." in page.text and "No datastreams yet." not in page.text
        assert "<img src=x" not in page.text and str(escape(NASTY)) in page.text
        for shown in ("<dd>V3</dd>", "<dd>double</dd>", "<dd>-40</dd>", "<dd>85.5</dd>",
                      "<dd>°C</dd>"):  # fmt: skip
            assert shown in page.text, shown
        query = str(escape(urlencode({"name": NASTY})))
        assert f'href="/templates/{tid}/datastreams/edit?{query}"' in page.text
        assert f'href="/templates/{tid}/datastreams/delete?{query}"' in page.text
        said = await client.get(f"/templates/{tid}?ds=<b>anything</b>")
        assert "anything" not in said.text  # the notice comes from a fixed table

        # edit: the form holds the values; the name stays
        edit = await client.get(f"/templates/{tid}/datastreams/edit", params={"name": NASTY})
        assert edit.status_code == 200
        assert 'value="3"' in edit.text and 'value="-40"' in edit.text
        assert 'value="85.5"' in edit.text and '<option value="double" selected>' in edit.text
        assert f'type="hidden" name="name" value="{escape(NASTY)}"' in edit.text
        saved = await client.post(
            f"/templates/{tid}/datastreams/edit",
            data={"csrf": csrf, **_form(name=NASTY, pin="4", type="integer", min="0")},
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == f"/templates/{tid}?ds=saved#datastreams"
        assert await _api_streams(cloud, tid) == [
            {"name": NASTY, "pin": "V4", "type": "integer", "min": 0, "max": None, "unit": ""}
        ]
        page = await client.get(saved.headers["location"])
        assert "Datastream saved." in page.text and "<dd>none</dd>" in page.text

        # delete: a confirmation naming it, then gone
        confirm = await client.get(f"/templates/{tid}/datastreams/delete", params={"name": NASTY})
        assert confirm.status_code == 200
        assert f"Delete datastream “{escape(NASTY)}”?" in confirm.text
        gone = await client.post(
            f"/templates/{tid}/datastreams/delete", data={"csrf": csrf, "name": NASTY}
        )
        assert gone.status_code == 303
        assert gone.headers["location"] == f"/templates/{tid}?ds=deleted#datastreams"
        assert await _api_streams(cloud, tid) == []
        page = await client.get(gone.headers["location"])
        assert "Datastream deleted." in page.text and "No datastreams yet." in page.text
        again = await client.post(
            f"/templates/{tid}/datastreams/delete", data={"csrf": csrf, "name": NASTY}
        )
        assert again.status_code == 404

        # names a path would mangle work end to end, through the query string
        for pin, name in enumerate(ODD_NAMES):
            made = await client.post(
                f"/templates/{tid}/datastreams/new",
                data={"csrf": csrf, **_form(name=name, pin=str(pin))},
            )
            assert made.status_code == 303, (name, made.text)
        page = await client.get(f"/templates/{tid}")
        for pin, name in enumerate(ODD_NAMES):
            link = re.search(
                r'href="(/templates/[^/]+/datastreams/edit\?[^"]+)" aria-label="Edit datastream '
                + re.escape(str(escape(name)))
                + '"',
                page.text,
            )
            assert link, name
            edit = await client.get(link.group(1).replace("&amp;", "&"))
            assert edit.status_code == 200 and f'value="{pin}"' in edit.text, name
            saved = await client.post(
                f"/templates/{tid}/datastreams/edit",
                data={"csrf": csrf, **_form(name=name, pin=str(10 + pin))},
            )
            assert saved.status_code == 303, name
            gone = await client.post(
                f"/templates/{tid}/datastreams/delete", data={"csrf": csrf, "name": name}
            )
            assert gone.status_code == 303, name
        assert await _api_streams(cloud, tid) == []


BAD_INPUT = [
    ("name", {"name": ""}, {"name": ""}),
    ("name", {"name": NASTY + "x" * 136}, {"name": NASTY + "x" * 136}),  # 200 characters
    ("name", {"name": "a/b"}, {"name": "a/b"}),
    ("name", {"name": "a+b"}, {"name": "a+b"}),
    ("name", {"name": "#"}, {"name": "#"}),
    ("name", {"name": " Temperature"}, {"name": " Temperature"}),
    ("name", {"name": "Temp\nerature"}, {"name": "Temp\nerature"}),
    ("pin", {"pin": "256"}, {"pin": 256}),
    ("pin", {"pin": "-1"}, {"pin": -1}),
    ("pin", {"pin": ""}, {"pin": -1}),
    ("pin", {"pin": "V"}, {"pin": -1}),
    ("pin", {"pin": "one"}, {"pin": -1}),
    ("pin", {"pin": "²"}, {"pin": -1}),
    ("pin", {"pin": "1000000000000000000000"}, {"pin": -1}),
    ("type", {"type": "float"}, {"kind": "float"}),
    ("min", {"min": "cold"}, {"lo": float("nan")}),
    ("min", {"min": "nan"}, {"lo": float("nan")}),
    ("max", {"max": "inf"}, {"hi": float("inf")}),
    ("max", {"max": "1e999"}, {"hi": float("inf")}),
    ("min", {"min": "5", "max": "1"}, {"lo": 5.0, "hi": 1.0}),
    ("unit", {"unit": "x" * 17}, {"unit": "x" * 17}),
    ("unit", {"unit": "a\nb"}, {"unit": "a\nb"}),
]


async def test_every_bad_input_is_shown_next_to_its_field_and_changes_nothing(
    cloud: RunningCloud,
) -> None:
    async with browser(cloud) as client:
        await sign_in(client)
        tid = await _template(client, "Thermostat")
        csrf = csrf_of(await client.get(f"/templates/{tid}/datastreams/new"))
        kept = await client.post(
            f"/templates/{tid}/datastreams/new",
            data={"csrf": csrf, **_form(name="Humidity", pin="2", unit="%")},
        )
        assert kept.status_code == 303
        before = await _api_streams(cloud, tid)

        for field, sent, words in BAD_INPUT:
            for action in ("new", "edit"):
                if action == "edit":
                    if field == "name":
                        continue  # the name is the one being edited (tested below)
                    sent = {**sent, "name": "Humidity"}
                refused = await client.post(
                    f"/templates/{tid}/datastreams/{action}",
                    data={"csrf": csrf, **_form(**sent)},
                )
                assert refused.status_code == 400, (action, sent, refused.text)
                assert f'<p class="error" id="f-{field}-error">' in refused.text, (action, sent)
                assert _message(field, **words) in refused.text, (action, sent)
                others = set(re.findall(r'id="f-(\w+)-error"', refused.text)) - {field}
                assert not others, (action, sent, others)
                assert 'aria-invalid="true"' in refused.text
                assert await _api_streams(cloud, tid) == before, (action, sent)

        # the form keeps what was typed, escaped
        refused = await client.post(
            f"/templates/{tid}/datastreams/new",
            data={"csrf": csrf, **_form(name="<i>T</i>", pin="x<y", unit="<u>")},
        )
        assert refused.status_code == 400
        assert 'value="x&lt;y"' in refused.text and 'value="&lt;u&gt;"' in refused.text
        assert "<i>T</i>" not in refused.text and 'value="&lt;i&gt;T&lt;/i&gt;"' in refused.text

        # another datastream's pin, on add and on edit (the domain's Conflict, next to the pin)
        taken = await client.post(
            f"/templates/{tid}/datastreams/new", data={"csrf": csrf, **_form(pin="V2")}
        )
        assert taken.status_code == 400 and 'id="f-pin-error"' in taken.text
        assert "V2 is already bound to the datastream &#39;Humidity&#39;." in taken.text
        made = await client.post(
            f"/templates/{tid}/datastreams/new", data={"csrf": csrf, **_form(pin="5")}
        )
        assert made.status_code == 303
        before = await _api_streams(cloud, tid)
        moved = await client.post(
            f"/templates/{tid}/datastreams/edit",
            data={"csrf": csrf, **_form(name="Temperature", pin="2")},
        )
        assert moved.status_code == 400 and 'id="f-pin-error"' in moved.text
        assert "V2 is already bound" in moved.text

        # a name the template has already: not silently replaced
        twice = await client.post(
            f"/templates/{tid}/datastreams/new",
            data={"csrf": csrf, **_form(name="Humidity", pin="9")},
        )
        assert twice.status_code == 400 and 'id="f-name-error"' in twice.text
        assert "has a datastream of this name already" in twice.text
        assert await _api_streams(cloud, tid) == before

        # editing or deleting one that is not there: 404, nothing made
        for path, data in (("edit", _form(name="Nope", pin="7")), ("delete", {"name": "Nope"})):
            missing = await client.post(
                f"/templates/{tid}/datastreams/{path}", data={"csrf": csrf, **data}
            )
            assert missing.status_code == 404, path
            shown = await client.get(
                f"/templates/{tid}/datastreams/{path}", params={"name": "Nope"}
            )
            assert shown.status_code == 404, path
        assert (await client.get(f"/templates/{tid}/datastreams/edit")).status_code == 404
        assert await _api_streams(cloud, tid) == before


async def test_the_words_are_the_apis(cloud: RunningCloud) -> None:
    """Where the API's own check answers (not its schema), the console shows the same words."""
    async with browser(cloud) as client, cloud.client(cloud.owner_token) as api:
        await sign_in(client)
        tid = await _template(client, "Thermostat")
        csrf = csrf_of(await client.get(f"/templates/{tid}"))
        cases = [
            ("min", {"name": "T", "min": "5", "max": "1"}, {"pin": 1, "min": 5, "max": 1}),
            ("unit", {"name": "T", "unit": "a\tb"}, {"pin": 1, "unit": "a\tb"}),
            ("name", {"name": "T "}, {"pin": 1}),
        ]
        for field, sent, body in cases:
            reply = await api.put(f"/api/templates/{tid}/datastreams/{sent['name']}", json=body)
            assert reply.status_code == 422, reply.text
            words = reply.json()["message"]
            page = await client.post(
                f"/templates/{tid}/datastreams/new", data={"csrf": csrf, **_form(**sent)}
            )
            assert page.status_code == 400
            error = re.search(rf'id="f-{field}-error">([^<]*)</p>', page.text)
            assert error, (field, page.text)
            assert error.group(1) == str(escape(words[:1].upper() + words[1:] + "."))


@pytest.mark.parametrize("role", ["viewer", "installer"])
async def test_who_may_not_edit_the_template_sees_a_read_only_list(
    cloud: RunningCloud, role: str
) -> None:
    email = f"{role}@example.com"
    await cloud.user(email, role)
    async with browser(cloud) as owner, browser(cloud) as member:
        await sign_in(owner)
        tid = await _template(owner, "Thermostat")
        csrf = csrf_of(await owner.get(f"/templates/{tid}"))
        made = await owner.post(
            f"/templates/{tid}/datastreams/new",
            data={"csrf": csrf, **_form(unit="°C")},
        )
        assert made.status_code == 303
        before = await _api_streams(cloud, tid)

        await sign_in(member, email)
        page = await member.get(f"/templates/{tid}")
        assert page.status_code == 200
        assert "Temperature" in page.text and "<dd>V1</dd>" in page.text
        assert "Add a datastream" not in page.text
        assert "datastreams/edit" not in page.text and "datastreams/delete" not in page.text
        query = urlencode({"name": "Temperature"})
        for path in ("new", f"edit?{query}", f"delete?{query}"):
            refused = await member.get(f"/templates/{tid}/datastreams/{path}")
            assert refused.status_code == 403, path
        mine = csrf_of(page)
        for path, data in (
            ("new", _form(name="Mine", pin="7")),
            ("edit", _form(pin="7")),
            ("delete", {"name": "Temperature"}),
        ):
            refused = await member.post(
                f"/templates/{tid}/datastreams/{path}", data={"csrf": mine, **data}
            )
            assert refused.status_code == 403, path
        assert await _api_streams(cloud, tid) == before


async def test_another_organization_gets_404_and_stale_forms_are_refused(
    cloud: RunningCloud,
) -> None:
    await cloud.user("stranger@example.com")  # owner of an organization of their own
    async with browser(cloud) as owner, browser(cloud) as stranger:
        await sign_in(owner)
        tid = await _template(owner, "Thermostat")
        csrf = csrf_of(await owner.get(f"/templates/{tid}"))
        made = await owner.post(f"/templates/{tid}/datastreams/new", data={"csrf": csrf, **_form()})
        assert made.status_code == 303
        before = await _api_streams(cloud, tid)

        await sign_in(stranger, "stranger@example.com")
        theirs = csrf_of(await stranger.get("/"))
        query = urlencode({"name": "Temperature"})
        for path in ("new", f"edit?{query}", f"delete?{query}"):
            assert (await stranger.get(f"/templates/{tid}/datastreams/{path}")).status_code == 404
        for path, data in (
            ("new", _form(name="Mine", pin="7")),
            ("edit", _form(pin="7")),
            ("delete", {"name": "Temperature"}),
        ):
            refused = await stranger.post(
                f"/templates/{tid}/datastreams/{path}", data={"csrf": theirs, **data}
            )
            assert refused.status_code == 404, path
            # the owner's own browser, without its CSRF token or with the stranger's: refused
            for token in ("", theirs, "x" * 43):
                stale = await owner.post(
                    f"/templates/{tid}/datastreams/{path}", data={"csrf": token, **data}
                )
                assert stale.status_code == 403 and "This form has expired" in stale.text
        assert await _api_streams(cloud, tid) == before


async def test_add_and_edit_are_decided_in_the_write_itself(cloud: RunningCloud) -> None:
    """What the forms' own look-up cannot promise under two people at once: "add" never
    replaces a datastream that appeared meanwhile, "edit" never brings back one deleted
    meanwhile."""
    from tests.integration.support import template
    from wifiprov.cloud import accounts
    from wifiprov.cloud.errors import NotFound

    db = cloud.cloud.db
    tid = await template(cloud)
    owner = await accounts.authenticate(db, cloud.cloud.hasher, cloud.owner_token)
    await datastreams.put_datastream(db, owner, tid, "Temperature", 1, "double", exists=False)
    with pytest.raises(datastreams.NameTaken):
        await datastreams.put_datastream(db, owner, tid, "Temperature", 2, "double", exists=False)
    with pytest.raises(NotFound):
        await datastreams.put_datastream(db, owner, tid, "Humidity", 3, "double", exists=True)
    await datastreams.put_datastream(db, owner, tid, "Temperature", 4, "double", exists=True)
    assert {ds["name"]: ds["pin"] for ds in await _api_streams(cloud, tid)} == {"Temperature": "V4"}
