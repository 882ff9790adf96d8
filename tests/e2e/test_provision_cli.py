"""End to end through the real CLI: a cloud process, device agent processes on the sim air, and
`wifiprov provision` as a user (or a script) runs it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.support import free_port, wait_http
from wifiprov.sim.air import Air

PYTHON = [sys.executable, "-m", "wifiprov"]
PASSWORD = "owner password 1"
HOME, HOME_PASSWORD = "Home WiFi", "correct horse"


@dataclass
class World:
    tmp: Path
    air: Air
    cloud_url: str
    gateway_port: int
    env: dict[str, str]
    template_id: str = ""
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *PYTHON,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env={**self.env, **(env or {})},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode or 0, out.decode()

    async def provision(
        self, *args: str, env: dict[str, str] | None = None
    ) -> tuple[int, list[dict[str, Any]]]:
        code, out = await self.cli(
            "provision",
            "--json",
            "--air",
            str(self.air.directory),
            "--template",
            self.template_id,
            "--password-file",
            str(self.tmp / "wifi-password"),
            *args,
            env=env,
        )
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return code, events

    async def device(
        self,
        name: str,
        *extra: str,
        template_id: str | None = None,
        template_name: str = "Lamp",
    ) -> str:
        """Start a device agent process; returns its AP name once it is in setup mode."""
        feed = self.air.changes()
        proc = await asyncio.create_subprocess_exec(
            *PYTHON,
            "device",
            "--radio",
            "sim",
            "--air",
            str(self.air.directory),
            "--device-id",
            name,
            "--template-id",
            template_id or self.template_id,
            "--template-name",
            template_name,
            "--store",
            str(self.tmp / f"{name}.json"),
            *extra,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=self.env,
        )
        self.processes.append(proc)
        try:
            async with asyncio.timeout(20):
                while (ap := self.air.ap(name)) is None or ap.portal is None:
                    await feed.wait()
        finally:
            feed.close()
        return ap.ssid

    async def api(self, method: str, path: str, **kw: Any) -> Any:
        session = json.loads((Path(self.env["WIFIPROV_CONFIG_DIR"]) / "session.json").read_text())
        async with httpx.AsyncClient(base_url=self.cloud_url, timeout=30) as client:
            reply = await client.request(
                method, path, headers={"Authorization": f"Bearer {session['token']}"}, **kw
            )
        return reply.json() if reply.content else None

    async def wait_ap(self, name: str, up: bool = True, timeout: float = 20) -> None:
        feed = self.air.changes()
        try:
            async with asyncio.timeout(timeout):
                while (self.air.ap(name) is not None) != up:
                    await feed.wait()
        finally:
            feed.close()


async def start_world(tmp: Path, *cloud_args: str, db: str | None = None) -> World:
    """A cloud (``cloud init`` then ``wifiprov cloud``, on ``db``: a SQLite file in ``tmp``
    unless a URL is given) and the sim air."""
    db = db or str(tmp / "cloud.db")
    env = {**os.environ, "WIFIPROV_CONFIG_DIR": str(tmp / "config"), "COLUMNS": "200"}
    (tmp / "password").write_text(PASSWORD + "\n")
    (tmp / "wifi-password").write_text(HOME_PASSWORD + "\n")
    http, gw = free_port(), free_port()
    world = World(tmp, Air(tmp / "air"), f"http://127.0.0.1:{http}", gw, env)
    code, out = await world.cli(
        "cloud",
        "init",
        "--db",
        db,
        "--email",
        "owner@example.com",
        "--password-file",
        str(tmp / "password"),
    )
    assert code == 0, out
    cloud = await asyncio.create_subprocess_exec(
        *PYTHON,
        "cloud",
        "--db",
        db,
        "--http",
        f"127.0.0.1:{http}",
        "--gateway",
        f"127.0.0.1:{gw}",
        "--public-host",
        "127.0.0.1",
        *cloud_args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    world.processes.append(cloud)
    await wait_http(world.cloud_url, lambda: cloud.returncode is not None)
    code, out = await world.cli(
        "login",
        "--cloud",
        world.cloud_url,
        "--email",
        "owner@example.com",
        "--password-file",
        str(tmp / "password"),
    )
    assert code == 0, out
    world.template_id = (await world.api("POST", "/api/orgs/1/templates", json={"name": "Lamp"}))[
        "id"
    ]
    world.air.add_network(HOME, HOME_PASSWORD, rssi=-40)
    return world


async def stop_world(world: World) -> None:
    for proc in world.processes:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in world.processes:
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
    world.air.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(tmp_path)
    try:
        yield w
    finally:
        await stop_world(w)


async def test_happy_path_ends_with_a_named_online_device(world: World) -> None:
    ap = await world.device("lamp-1")
    code, events = await world.provision("--ssid", HOME, "--name", "Kitchen lamp")
    assert code == 0, events
    steps = [e["step"] for e in events]
    for step in (
        "template",
        "find",
        "join",
        "board_info",
        "scan",
        "token",
        "config",
        "progress",
        "leave",
        "wait",
        "online",
        "done",
    ):
        assert step in steps, (step, steps)
    assert events[-1]["device"]["name"] == "Kitchen lamp"
    assert not any("token" in e and len(str(e.get("token"))) == 32 for e in events)
    code, out = await world.cli("devices", "--json")
    devices = json.loads(out)
    assert [(d["name"], d["online"]) for d in devices] == [("Kitchen lamp", True)]
    await world.wait_ap("lamp-1", up=False)  # the device left setup mode
    assert ap.startswith("Blynk Lamp-")


@pytest.mark.parametrize(
    "fault,args,code",
    [
        (None, ["--ssid", HOME, "--password-file", "WRONG"], 722),
        ("not_found", ["--ssid", HOME, "--hidden"], 720),
        ("dhcp_fail", ["--ssid", HOME], 723),
    ],
)
async def test_failures_are_explained(
    world: World, fault: str | None, args: list[str], code: int
) -> None:
    await world.device("lamp-1")
    if fault:
        world.air.set_faults(world.air.networks()[0].id, **{fault: True})
    if "WRONG" in args:
        (world.tmp / "wrong").write_text("not the password\n")
        args[args.index("WRONG")] = str(world.tmp / "wrong")
    exit_code, events = await world.provision(*args, "--name", "x")
    assert exit_code == 1
    failed = events[-1]
    assert failed["step"] == "failed" and failed["code"] == code, events
    assert failed["message"] and failed["todo"]
    await world.wait_ap("lamp-1", up=True)  # back in setup mode, ready for another try
    if fault:
        world.air.set_faults(world.air.networks()[0].id, **{fault: False})
    exit_code, events = await world.provision("--ssid", HOME, "--name", "Second try")
    assert exit_code == 0 and events[-1]["device"]["name"] == "Second try"


async def test_classic_device_that_drops_its_ap(world: World) -> None:
    await world.device("classic-1", "--classic")
    code, events = await world.provision("--ssid", HOME, "--name", "Classic")
    assert code == 0, events
    assert "progress" not in [e["step"] for e in events]  # nothing to follow live


async def test_reconfigure_and_delete_send_the_device_back_to_setup(world: World) -> None:
    await world.device("lamp-1")
    code, events = await world.provision("--ssid", HOME, "--name", "Lamp")
    assert code == 0, events
    device_id = events[-1]["device"]["id"]
    await world.wait_ap("lamp-1", up=False)
    code, out = await world.cli("reconfigure", str(device_id))
    assert code == 0, out
    await world.wait_ap("lamp-1", up=True)
    code, events = await world.provision("--ssid", HOME, "--name", "Lamp again")
    assert code == 0, events
    new_id = events[-1]["device"]["id"]
    await world.wait_ap("lamp-1", up=False)
    code, out = await world.cli("delete", str(new_id), "--yes")
    assert code == 0, out
    await world.wait_ap("lamp-1", up=True)  # token rejected (703): back to setup mode


async def test_two_devices_at_once(world: World) -> None:
    ap1, ap2 = await asyncio.gather(
        world.device("lamp-1", "--mac", "02:00:00:00:00:01"),
        world.device("lamp-2", "--mac", "02:00:00:00:00:02"),
    )
    (c1, e1), (c2, e2) = await asyncio.gather(
        world.provision("--device", ap1, "--ssid", HOME, "--name", "One"),
        world.provision("--device", ap2, "--ssid", HOME, "--name", "Two"),
    )
    assert (c1, c2) == (0, 0), (e1, e2)
    code, out = await world.cli("devices", "--json")
    assert sorted(d["name"] for d in json.loads(out)) == ["One", "Two"]


async def test_a_user_without_the_provisioning_right_is_told_so(world: World) -> None:
    await world.device("lamp-1")
    # A viewer in the owner's organization, signed in in their own config directory.
    (world.tmp / "viewer-password").write_text("viewer password 1\n")
    from wifiprov.cloud import accounts
    from wifiprov.cloud.db import Database

    db = Database(str(world.tmp / "cloud.db"))
    await accounts.create_user(db, "viewer@example.com", "viewer password 1")
    await db.close()
    await world.api(
        "PUT", "/api/orgs/1/members", json={"email": "viewer@example.com", "role": "viewer"}
    )
    env = {"WIFIPROV_CONFIG_DIR": str(world.tmp / "viewer-config")}
    code, out = await world.cli(
        "login",
        "--cloud",
        world.cloud_url,
        "--email",
        "viewer@example.com",
        "--password-file",
        str(world.tmp / "viewer-password"),
        env=env,
    )
    assert code == 0, out
    code, events = await world.provision("--ssid", HOME, env=env)
    assert code == 1
    assert "provisioning token" in events[-1]["message"] and "'viewer'" in events[-1]["message"]


async def test_an_expired_provisioning_token_is_explained(tmp_path: Path) -> None:
    world = await start_world(tmp_path, "--provisioning-ttl", "0")
    try:
        await world.device("lamp-1")
        code, events = await world.provision("--ssid", HOME, "--name", "x")
        assert code == 1
        assert events[-1]["code"] == 703 and "token" in events[-1]["message"]
    finally:
        await stop_world(world)


async def test_classic_device_failure_is_read_back_from_its_ap(world: World) -> None:
    """A device that drops its AP cannot be watched: the provisioner waits for the cloud, then
    rejoins the AP and reads last_error."""
    await world.device("classic-1", "--classic")
    (world.tmp / "wrong").write_text("not the password\n")
    code, events = await world.provision(
        "--ssid", HOME, "--password-file", str(world.tmp / "wrong"), "--name", "x", "--timeout", "5"
    )
    assert code == 1
    steps = [e["step"] for e in events]
    assert "diagnose" in steps and events[-1]["code"] == 722, events


async def test_a_device_of_another_template_is_refused(world: World) -> None:
    other = (await world.api("POST", "/api/orgs/1/templates", json={"name": "Fan"}))["id"]
    ap = await world.device("fan-1", template_id=other)
    code, events = await world.provision("--device", ap, "--ssid", HOME)
    assert code == 1
    assert "not a 'Lamp'" in events[-1]["message"] and "--template" in events[-1]["todo"]


@pytest.mark.parametrize(
    "cloud_args,code",
    [
        (["--public-host", "nowhere.invalid"], 710),  # the cloud's name does not resolve
        (["--public-port", "1"], 702),  # nothing listens where devices are sent
        ("tls", 711),  # a certificate the device does not trust
    ],
)
async def test_cloud_side_failures_are_explained(
    tmp_path: Path, cloud_args: Any, code: int
) -> None:
    if cloud_args == "tls":
        import trustme

        cert = trustme.CA().issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
        cloud_args = [
            "--gateway-tls",
            f"127.0.0.1:{free_port()}",
            "--cert",
            str(tmp_path / "server.pem"),
            "--key",
            str(tmp_path / "server.pem"),
        ]
    world = await start_world(tmp_path, *cloud_args)
    try:
        await world.device("lamp-1")
        exit_code, events = await world.provision("--ssid", HOME, "--name", "x")
        assert exit_code == 1
        assert events[-1]["code"] == code, events[-1]
    finally:
        await stop_world(world)


async def test_button_reset_and_provisioned_again(world: World) -> None:
    await world.device("lamp-1")
    code, events = await world.provision("--ssid", HOME, "--name", "First")
    assert code == 0, events
    await world.wait_ap("lamp-1", up=False)
    code, out = await world.cli(
        "air", "--air", str(world.air.directory), "press", "lamp-1", "--hold", "3"
    )
    assert code == 0, out
    press = world.air.directory / "buttons" / "lamp-1.json"
    async with asyncio.timeout(10):
        while press.exists():  # the device took the press...
            await asyncio.sleep(0.02)
    assert world.air.ap("lamp-1") is None  # ...and a 3 s press does nothing
    assert (world.tmp / "lamp-1.json").exists()
    await world.cli("air", "--air", str(world.air.directory), "press", "lamp-1", "--hold", "11")
    await world.wait_ap("lamp-1", up=True)  # erased: back in setup mode
    assert not (world.tmp / "lamp-1.json").exists()
    code, events = await world.provision("--ssid", HOME, "--name", "Second")
    assert code == 0, events
    assert events[-1]["device"]["name"] == "Second"


async def test_a_device_with_a_secured_ap_is_provisioned_with_its_passphrase(world: World) -> None:
    await world.device("safe-1", "--ap-passphrase", "printed-on-label")
    code, events = await world.provision("--ssid", HOME)  # no passphrase: refused, explained
    assert code == 1, events
    failure = events[-1]["message"]
    assert "could not join the device's network" in failure, events
    assert "printed-on-label" not in json.dumps(events)
    code, events = await world.provision(
        "--ssid", HOME, "--name", "Safe", env={"WIFIPROV_AP_PASSPHRASE": "printed-on-label"}
    )
    assert code == 0, [e["message"] for e in events]
    assert "printed-on-label" not in json.dumps(events)


async def test_template_offers_only_its_own_devices_and_says_what_it_ignored(
    world: World,
) -> None:
    fan = (await world.api("POST", "/api/orgs/1/templates", json={"name": "Fan"}))["id"]
    await world.device("fan-1", "--mac", "02:00:00:00:00:0f", template_id=fan, template_name="Fan")
    lamp = await world.device("lamp-1", "--mac", "02:00:00:00:00:01")
    code, events = await world.provision("--ssid", HOME, "--name", "Lamp")  # --template Lamp
    assert code == 0, events
    find = next(e for e in events if e["step"] == "find")
    assert find["device"] == lamp
    assert [i["ap"] for i in find["ignored"]] == [world.air.ap("fan-1").ssid]  # type: ignore[union-attr]
    assert "ignored 1 other device(s)" in find["message"]
    assert "another template (not 'Lamp')" in find["message"]
    # With only the other template's device left, it says why none is offered.
    await world.wait_ap("lamp-1", up=False)
    code, events = await world.provision("--ssid", HOME, "--name", "x")
    assert code == 1
    assert "no 'Lamp' device in setup mode" in events[-1]["message"]
    assert "Blynk Fan-" in events[-1]["message"] and "another template" in events[-1]["message"]


async def test_the_wifi_backend_is_said_and_chosen_from_the_machine(world: World) -> None:
    code, events = await world.provision("--ssid", HOME)  # --air: the sim, and it says so
    assert events[0]["step"] == "wifi" and events[0]["wifi"] == "sim", events
    assert "--wifi sim" in events[0]["message"] and "--air" in events[0]["message"]
    # No --air, no --wifi, no NetworkManager on the system bus, nobody to ask: explained.
    code, out = await world.cli(
        "provision",
        "--json",
        "--template",
        "Lamp",
        env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={world.tmp}/no-bus"},
    )
    assert code == 1, out
    failed = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
    assert failed["step"] == "failed" and "NetworkManager" in failed["message"], failed
    assert "--wifi joined" in failed["todo"] and "blue" not in out


async def test_ctrl_c_says_what_state_the_device_is_left_in(world: World) -> None:
    await world.device("classic-1", "--classic")
    (world.tmp / "wrong").write_text("not the password\n")
    proc = await asyncio.create_subprocess_exec(
        *PYTHON,
        "provision",
        "--json",
        "--air",
        str(world.air.directory),
        "--template",
        "Lamp",
        "--ssid",
        HOME,
        "--password-file",
        str(world.tmp / "wrong"),
        "--timeout",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=world.env,
    )
    assert proc.stdout is not None
    events = []
    async with asyncio.timeout(60):
        while True:
            line = await proc.stdout.readline()
            assert line, events
            events.append(json.loads(line))
            if events[-1]["step"] == "waiting" and "the cloud" in events[-1]["what"]:
                break
    assert events[-1]["timeout"] == 60
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, (out, err)
    last = json.loads(out.decode().splitlines()[-1])
    assert last["step"] == "interrupted" and last["state"] == "configured", last
    assert f"has the network '{HOME}' and a provisioning token" in last["message"]
    assert "returns to setup mode with its previous configuration" in last["message"]
    assert "interrupted:" in err.decode()


async def test_a_terminal_shows_a_spinner_with_elapsed_time_and_timeout(world: World) -> None:
    import pty

    await world.device("lamp-1")
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        *PYTHON,
        "provision",
        "--air",
        str(world.air.directory),
        "--template",
        "Lamp",
        "--ssid",
        HOME,
        "--password-file",
        str(world.tmp / "wifi-password"),
        "--name",
        "Lamp",
        "--timeout",
        "45",
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**world.env, "TERM": "xterm"},
    )
    os.close(slave)
    output = bytearray()
    loop = asyncio.get_running_loop()

    def read() -> bytes:
        try:
            return os.read(master, 65536)
        except OSError:  # the other side closed
            return b""

    async with asyncio.timeout(90):
        while chunk := await loop.run_in_executor(None, read):
            output += chunk
    os.close(master)
    assert await proc.wait() == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "reaching the device with --wifi sim" in text
    assert "(timeout 45 s)" in text and "waiting for the cloud to see the device log in" in text
    assert "Done:" in text


async def test_a_question_on_a_terminal_is_not_drawn_over_by_the_spinner(world: World) -> None:
    import pty

    await world.device("lamp-1", "--mac", "02:00:00:00:00:01")
    await world.device("lamp-2", "--mac", "02:00:00:00:00:02")
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        *PYTHON,
        "provision",
        "--air",
        str(world.air.directory),
        "--template",
        "Lamp",
        "--ssid",
        HOME,
        "--password-file",
        str(world.tmp / "wifi-password"),
        "--name",
        "Picked",
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**world.env, "TERM": "xterm"},
    )
    os.close(slave)
    output = bytearray()
    loop = asyncio.get_running_loop()

    def read() -> bytes:
        try:
            return os.read(master, 65536)
        except OSError:
            return b""

    answered = False
    async with asyncio.timeout(90):
        while chunk := await loop.run_in_executor(None, read):
            output += chunk
            if not answered and b"Which device?" in output:
                os.write(master, b"2\r")
                answered = True
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert await proc.wait() == 0, text
    question = text[text.index("Which device?") :].split("\n", 1)[0]
    assert "waiting for" not in question  # the spinner stopped before the question
    assert "Done: 'Picked'" in text
