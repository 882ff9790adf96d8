"""Every cloud object from the terminal (issue 12 items 1 and 4): the real ``wifiprov`` as a
process, against a cloud on SQLite and on PostgreSQL, signed in through a saved session."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningCloud
from tests.integration.support import free_port, online_device, template

WIFIPROV = [sys.executable, "-m", "wifiprov.cli"]
DEVICE_SHOW = [sys.executable, "-m", "wifiprov", "device", "show"]  # not the agent: a cloud device


class Terminal:
    """A user's shell: their own config directory with a saved session."""

    def __init__(self, config: Path) -> None:
        self.env = {**os.environ, "WIFIPROV_CONFIG_DIR": str(config), "COLUMNS": "200"}

    def sign_in(self, cloud: str, token: str, email: str = "owner@example.com") -> None:
        path = Path(self.env["WIFIPROV_CONFIG_DIR"]) / "session.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cloud": cloud, "token": token, "email": email}))

    async def run(self, *args: str, command: list[str] = WIFIPROV) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *command,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=self.env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    async def json(self, *args: str) -> Any:
        code, out, err = await self.run(*args, "--json")
        assert code == 0, (out, err)
        return json.loads(out)


@pytest.fixture
def term(cloud: RunningCloud, tmp_path: Path) -> Terminal:
    t = Terminal(tmp_path / "config")
    t.sign_in(cloud.http_url, cloud.owner_token)
    return t


async def test_whoami(cloud: RunningCloud, term: Terminal) -> None:
    me = await term.json("whoami")
    assert me["email"] == "owner@example.com" and me["cloud"] == cloud.http_url
    assert [(o["name"], o["role"]) for o in me["organizations"]] == [("Acme", "owner")]
    code, out, _ = await term.run("whoami")
    assert code == 0 and "owner@example.com on " + cloud.http_url in out
    assert "Acme (1): owner" in out.replace(f"({cloud.org_id})", "(1)")


async def test_templates_create_list_show(cloud: RunningCloud, term: Terminal) -> None:
    code, out, err = await term.run("templates", "create", "Lamp")
    assert code == 0, (out, err)
    assert "Created template Lamp (TMPL" in out
    assert '#define BLYNK_TEMPLATE_NAME "Lamp"' in out and "'Acme Lamp-XXXX'" in out
    created = await term.json("templates", "create", "Fan", "--firmware-type", "fan-fw")
    assert created["firmware_type"] == "fan-fw"
    assert created["firmware_config"]["hotspot_prefix"] == "Acme"
    listed = await term.json("templates", "list")
    assert [t["name"] for t in listed] == ["Lamp", "Fan"]
    code, out, _ = await term.run("templates", "list")
    assert code == 0 and "Lamp" in out and "fan-fw" in out
    shown = await term.json("templates", "show", "Fan")  # by name ...
    assert shown["id"] == created["id"]
    code, out, _ = await term.run("templates", "show", created["id"])  # ... or by id
    assert code == 0 and "cloud.test" in out and f'"{created["id"]}"' in out
    code, _, err = await term.run("templates", "show", "Toaster")
    assert code == 1 and "no template 'Toaster'" in err and "Lamp (TMPL" in err


async def test_templates_edit_renames(cloud: RunningCloud, term: Terminal) -> None:
    template_id = await template(cloud, name="Lamp")
    renamed = await term.json("templates", "edit", "Lamp", "--name", "Desk lamp")
    assert renamed["id"] == template_id and renamed["name"] == "Desk lamp"
    assert [t["name"] for t in await term.json("templates", "list")] == ["Desk lamp"]
    described = await term.json("templates", "edit", "Desk lamp", "--description", "On the desk")
    assert described["description"] == "On the desk" and described["name"] == "Desk lamp"
    code, _, err = await term.run("templates", "edit", "Desk lamp")
    assert code == 1 and "nothing to change" in err


async def test_tokens_create_prints_token_expiry_link_and_qr(
    cloud: RunningCloud, term: Terminal
) -> None:
    template_id = await template(cloud, name="Lamp")
    code, out, err = await term.run("tokens", "create", "--template", "Lamp")
    assert code == 0, (out, err)
    token_line = next(line for line in out.splitlines() if "token:" in line)
    token = token_line.split()[-1]
    assert len(token) == 32
    assert "expires:" in out and "min)" in out
    assert f"setup link: http://192.168.4.1/?token={token}&host=cloud.test" in out
    qr = [line for line in out.splitlines() if set(line) <= set("█▀▄ ") and len(line) > 20]
    assert len(qr) >= 12, out  # a QR code in Unicode half blocks, no escape sequences
    assert "\x1b" not in out
    made = await term.json("tokens", "create", "--template", template_id)
    async with cloud.client(cloud.owner_token) as api:
        status = (await api.get(f"/api/provisioning/{made['id']}")).json()
    assert status["status"] == "pending" and status["token_last4"] == made["token"][-4:]


async def test_members_list_invite_role(cloud: RunningCloud, term: Terminal) -> None:
    code, out, err = await term.run("members", "invite", "new@example.com")
    assert code == 0, (out, err)
    assert "new@example.com is now a member of Acme as installer" in out
    rows = await term.json("members", "list")
    assert {(m["email"], m["role"]) for m in rows} == {
        ("owner@example.com", "owner"),
        ("new@example.com", "installer"),
    }
    code, out, err = await term.run("members", "role", "new@example.com", "viewer")
    assert code == 0 and "installer → viewer" in out, (out, err)
    code, _, err = await term.run("members", "role", "nobody@example.com", "viewer")
    assert code == 1 and "not a member" in err and "members invite" in err
    code, _, err = await term.run("members", "role", "new@example.com", "boss")
    assert code == 1 and "no role 'boss'" in err


async def test_members_remove_asks_first(cloud: RunningCloud, term: Terminal) -> None:
    await term.run("members", "invite", "temp@example.com", "--role", "viewer")
    code, _, err = await term.run("members", "remove", "temp@example.com")
    assert code == 1 and "Remove temp@example.com (viewer) from Acme" in err and "--yes" in err
    assert "temp@example.com" in {m["email"] for m in await term.json("members", "list")}
    code, out, err = await term.run("members", "remove", "temp@example.com", "--yes")
    assert code == 0 and "removed temp@example.com from Acme" in out, (out, err)
    assert "temp@example.com" not in {m["email"] for m in await term.json("members", "list")}


async def test_device_show_and_pins(cloud: RunningCloud, term: Terminal) -> None:
    device_id, _, device = await online_device(cloud)
    try:
        code, out, err = await term.run("pins", "set", str(device_id), "V3", "42")
        assert code == 0 and "V3 = 42: delivered" in out, (out, err)
        await term.run("pins", "set", str(device_id), "4", "a", "b")
        assert await term.json("pins", "get", str(device_id)) == {"V3": ["42"], "V4": ["a", "b"]}
        code, out, _ = await term.run("pins", "get", str(device_id), "V3")
        assert (code, out) == (0, "42\n")
        code, _, err = await term.run("pins", "get", str(device_id), "V9")
        assert code == 1 and "no value stored for V9" in err
        code, _, err = await term.run("pins", "set", str(device_id), "V256", "1")
        assert code == 1 and "not a virtual pin" in err
        code, out, err = await term.run(str(device_id), command=DEVICE_SHOW)
        assert code == 0, (out, err)
        for part in ("Thermostat (TMPL", "reported template", "online", "firmware", "last IP"):
            assert part in out, (part, out)
        assert "last seen" in out and "last error" in out and "V3    42" in out
        typer_path = [*WIFIPROV, "device", "show"]  # the same through the full CLI
        shown = json.loads((await term.run(str(device_id), "--json", command=typer_path))[1])
        assert shown["template_name"] == "Thermostat" and shown["pins"]["V3"] == ["42"]
    finally:
        device.close()


async def test_erase_and_delete_ask_naming_the_device(cloud: RunningCloud, term: Terminal) -> None:
    device_id, _, device = await online_device(cloud)
    device.close()
    for verb in ("erase", "delete"):
        code, _, err = await term.run(verb, str(device_id))
        assert code == 1 and f"device {device_id} 'Thermostat" in err and "--yes" in err
    assert len(await term.json("devices")) == 1  # nothing done
    code, out, err = await term.run("erase", str(device_id), "--yes")
    assert code == 0 and f"erased the data of device {device_id}" in out, (out, err)
    code, out, err = await term.run("delete", str(device_id), "--yes")
    assert code == 0 and f"deleted device {device_id}" in out, (out, err)
    assert await term.json("devices") == []


async def test_a_session_that_is_not_valid_says_run_login(
    cloud: RunningCloud, term: Terminal
) -> None:
    term.sign_in(cloud.http_url, "not-a-session-token")
    for args in (["devices"], ["templates", "list"], ["whoami"]):
        code, out, err = await term.run(*args)
        assert code == 1, (args, out, err)
        assert "session" in err and "run `wifiprov login --cloud" in err, (args, err)


async def test_an_unreachable_cloud_names_the_url_it_tried(term: Terminal) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    term.sign_in(url, "whatever")
    code, _, err = await term.run("devices")
    assert code == 1 and f"cannot reach the cloud at {url}" in err
    assert f"GET {url}/api/devices" in err and "wifiprov cloud" in err


async def test_not_signed_in_says_run_login(tmp_path: Path) -> None:
    code, _, err = await Terminal(tmp_path / "empty").run("templates", "list")
    assert code == 1 and "not signed in" in err and "wifiprov login" in err


def test_firmware_lines_are_valid_c_strings() -> None:
    from wifiprov.provisioner.objects import _firmware_lines

    lines = _firmware_lines(
        {
            "template_id": "TMPL12345678",
            "template_name": 'Say "hi" \\ bye',
            "hotspot_prefix": "Acme",
        }
    )
    assert lines[1] == '#define BLYNK_TEMPLATE_NAME "Say \\"hi\\" \\\\ bye"'
