"""The ``wifiprov`` command as a user runs it: set-up, sign-in, failures in words, no secrets."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, RunningCloud
from tests.integration.support import (
    RawDevice,
    free_port,
    online_device,
    wait_http,
)

WIFIPROV = [sys.executable, "-m", "wifiprov.cli"]


async def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *WIFIPROV,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode()


async def test_cloud_init_creates_the_first_user_once(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    db = str(tmp_path / "c.sqlite3")
    args = [
        "cloud",
        "init",
        "--db",
        db,
        "--email",
        "me@example.com",
        "--org",
        "Farm",
        "--password-file",
        str(tmp_path / "pw"),
    ]
    code, out = await run(*args)
    assert code == 0 and "Created user me@example.com" in out, out
    code, out = await run(*args)
    assert code == 1 and "this cloud has an owner already (me@example.com)" in out, out
    other = [*args[:5], "you@example.com", *args[6:]]  # a second owner: refused as well
    code, out = await run(*other)
    assert code == 1 and "members invite" in out, out
    (tmp_path / "short").write_text("abc\n")
    code, out = await run(
        "cloud",
        "init",
        "--db",
        db,
        "--email",
        "x@example.com",
        "--password-file",
        str(tmp_path / "short"),
    )
    assert code == 1 and "at least 8 characters" in out
    code, out = await run(
        "cloud",
        "init",
        "--db",
        db,
        "--email",
        "y@example.com",
        "--hotspot-prefix",
        "Bad!Prefix",
        "--password-file",
        str(tmp_path / "pw"),
    )
    assert code == 1 and "hotspot prefix" in out


@pytest.mark.parametrize(
    "change,said",
    [
        ({"--email": "not-an-address"}, "'not-an-address' is not an e-mail address"),
        ({"--org": ""}, "the organization needs a name"),
        ({"--hotspot-prefix": "x" * 40}, "prefix"),
        ({"password": "short"}, "the password must have at least 8 characters"),
    ],
)
async def test_cloud_init_checks_everything_before_creating_anything(
    tmp_path: Path, change: dict[str, str], said: str
) -> None:
    (tmp_path / "pw").write_text(change.get("password", PASSWORD) + "\n")
    db = tmp_path / "c.sqlite3"
    values = {"--email": "me@example.com", "--org": "Farm", "--hotspot-prefix": "Acme"}
    values.update({k: v for k, v in change.items() if k.startswith("--")})
    flags = [part for item in values.items() for part in item]
    code, out = await run(
        "cloud", "init", "--db", str(db), *flags, "--password-file", str(tmp_path / "pw")
    )
    assert code == 1 and said in out, out
    assert not db.exists()  # nothing created


async def test_cloud_says_where_it_is_and_what_devices_are_told(tmp_path: Path) -> None:
    db = tmp_path / "data" / "c.sqlite3"
    proc = await asyncio.create_subprocess_exec(
        *WIFIPROV, "cloud", "--db", str(db), "--http", "127.0.0.1:0",
        "--gateway", "127.0.0.1:0", "--public-host", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.stdout is not None
    said = ""
    try:
        async with asyncio.timeout(30):
            while "no user yet" not in said:
                line = await proc.stdout.readline()
                assert line, said
                said += line.decode()
    finally:
        proc.terminate()
        await proc.wait()
    assert f"database: {db}" in said
    assert re.search(r"HTTP API: http://127\.0\.0\.1:\d+/", said)
    assert re.search(r"device gateway: 127\.0\.0\.1:\d+", said)
    assert "devices are told: host 127.0.0.1" in said and "--public-host" in said
    assert "warning: 127.0.0.1 is this machine's loopback address" in said
    assert "no user yet: run `wifiprov cloud init" in said
    assert proc.returncode == 0


async def test_cloud_start_errors_name_the_real_cause(tmp_path: Path) -> None:
    code, out = await run("cloud", "--db", "/etc/passwd/c.sqlite3", "--http", "127.0.0.1:0")
    assert code == 1 and "/etc/passwd is a file, not a folder" in out, out
    assert "another process" not in out
    code, out = await run("cloud", "--db", str(tmp_path), "--http", "127.0.0.1:0")
    assert code == 1 and "is not a file" in out, out
    code, out = await run(
        "cloud", "--db", str(tmp_path / "c.db"), "--http", "http://127.0.0.1:8080"
    )
    assert code == 1 and "is a URL, not HOST:PORT" in out, out
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        code, out = await run(
            "cloud", "--db", str(tmp_path / "c.db"), "--http", f"127.0.0.1:{port}",
            "--gateway", "127.0.0.1:0",
        )  # fmt: skip
    finally:
        holder.close()
    flat = " ".join(out.split())
    assert code == 1 and f"--http: port {port} on 127.0.0.1 is already in use by" in flat, out
    assert f"pid {os.getpid()}" in flat or "python" in flat, out  # the holder is named


async def test_cloud_explains_bad_addresses_and_taken_ports(tmp_path: Path) -> None:
    code, out = await run("cloud", "--db", str(tmp_path / "c.db"), "--http", "127.0.0.1:http")
    assert code == 1 and "--http" in out and "must be a number" in out
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = await run(
            "cloud",
            "--db",
            str(tmp_path / "c.db"),
            "--gateway",
            f"127.0.0.1:{free_port()}",
            "--http",
            f"127.0.0.1:{port}",
        )
    assert code == 1 and "cannot start the cloud" in out and "address" in out
    code, out = await run("cloud", "--db", "postgresql://postgres@127.0.0.1:1/nothing")
    assert code == 1 and "cannot reach the database" in out


async def test_login_keeps_a_private_session_and_logout_revokes_it(
    cloud: RunningCloud, tmp_path: Path
) -> None:
    env = {"WIFIPROV_CONFIG_DIR": str(tmp_path / "config")}
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    code, out = await run(
        "login",
        "--cloud",
        cloud.http_url,
        "--email",
        "owner@example.com",
        "--password-file",
        str(tmp_path / "pw"),
        env=env,
    )
    assert code == 0, out
    session = tmp_path / "config" / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    token = __import__("json").loads(session.read_text())["token"]
    assert token not in out
    async with cloud.client(token) as api:
        assert (await api.get("/api/me")).status_code == 200
    code, out = await run("logout", env=env)
    assert code == 0 and not session.exists()
    async with cloud.client(token) as api:
        assert (await api.get("/api/me")).status_code == 401
    (tmp_path / "bad").write_text("not the password\n")
    code, out = await run(
        "login",
        "--cloud",
        cloud.http_url,
        "--email",
        "owner@example.com",
        "--password-file",
        str(tmp_path / "bad"),
        env=env,
    )
    assert code == 1 and "wrong e-mail or password" in out and not session.exists()
    code, out = await run(
        "login",
        "--cloud",
        f"http://127.0.0.1:{free_port()}",
        "--email",
        "owner@example.com",
        "--password-file",
        str(tmp_path / "pw"),
        env=env,
    )
    assert code == 1 and "cannot reach the cloud" in out


async def test_demo_runs_the_whole_flow() -> None:
    code, out = await run("demo")
    assert code == 0, out
    assert "found device 'Blynk Smart Lamp-W8FH'" in out
    assert "the device is connected to the cloud" in out
    assert "the device answered on V2: 'brightness is 80'" in out
    assert out.strip().endswith("is online and answered 'brightness is 80'")
    # Nothing left behind: the folder held the device's token and the WiFi password.
    folder = re.search(r"removed (\S+) \(give --keep", out)
    assert folder is not None, out
    assert not Path(folder.group(1)).exists()


async def test_demo_keep_keeps_its_private_folder() -> None:
    code, out = await run("demo", "--keep")
    assert code == 0, out
    found = re.search(r"kept (\S+) \(--keep\)", out)
    assert found is not None, out
    folder = Path(found.group(1))
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert (folder / "device.json").exists() and (folder / "cloud.sqlite3").exists()
        assert stat.S_IMODE((folder / "cloud.sqlite3").stat().st_mode) == 0o600
        assert stat.S_IMODE((folder / "device.json").stat().st_mode) == 0o600
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    "failure,code", [("wrong-password", 722), ("not-found", 720), ("no-dhcp", 723)]
)
async def test_demo_shows_a_failure_and_its_recovery(failure: str, code: int) -> None:
    exit_code, out = await run("demo", "--fail", failure)
    assert exit_code == 0, out
    assert f"FAILED (error {code})" in out
    assert out.index("FAILED") < out.index("demo complete")


async def test_demo_console_keeps_the_cloud_running_until_ctrl_c() -> None:
    import signal

    import httpx

    from tests.integration.test_console_sessions import csrf_of

    proc = await asyncio.create_subprocess_exec(
        *WIFIPROV, "demo", "--console",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(180):  # bounded; the whole demo, on a loaded machine
            while not lines or "press Ctrl-C" not in lines[-1]:
                line = (await proc.stdout.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
        out = "".join(lines)
        assert "demo complete: 'Living room lamp' is online" in out
        found = re.search(
            r"console: (http://127\.0\.0\.1:\d+)/ \(sign in as (\S+), password (\S+)\)", out
        )
        assert found is not None, out
        url, email, password = found.groups()
        async with httpx.AsyncClient(base_url=url, timeout=30) as browser:
            form = await browser.get("/sign-in")
            signed = await browser.post(
                "/sign-in", data={"csrf": csrf_of(form), "email": email, "password": password}
            )
            assert signed.status_code == 303, signed.text
            assert "Demo" in (await browser.get("/")).text
            assert "Smart Lamp" in (await browser.get("/add-device")).text
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
        out += rest.decode()
        assert proc.returncode == 0, out
        assert "demo stopped" in out
        folder = re.search(r"removed (\S+) \(give --keep", out)
        assert folder is not None and not Path(folder.group(1)).exists(), out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_refuses_an_unknown_failure() -> None:
    code, out = await run("demo", "--fail", "meteor")
    assert code == 1 and "wrong-password" in out


async def test_no_secret_reaches_the_log(tmp_path: Path) -> None:
    """Run a real cloud process verbosely, log in devices (good and bad), grep its log."""
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    db = str(tmp_path / "c.sqlite3")
    code, _ = await run(
        "cloud",
        "init",
        "--db",
        db,
        "--email",
        "owner@example.com",
        "--password-file",
        str(tmp_path / "pw"),
    )
    assert code == 0
    http, gw = free_port(), free_port()
    log = (tmp_path / "cloud.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *WIFIPROV,
        "cloud",
        "-v",
        "--db",
        db,
        "--http",
        f"127.0.0.1:{http}",
        "--gateway",
        f"127.0.0.1:{gw}",
        stdout=log,
        stderr=log,
    )
    try:
        await wait_http(f"http://127.0.0.1:{http}", lambda: proc.returncode is not None)
        # The cloud under test is the separate process; these helpers only use its addresses.
        rc = RunningCloud(None, f"http://127.0.0.1:{http}", ("127.0.0.1", gw), "", 1)  # type: ignore[arg-type]
        async with rc.client() as api:
            rc.owner_token = (
                await api.post(
                    "/api/auth/sign-in", json={"email": "owner@example.com", "password": PASSWORD}
                )
            ).json()["token"]
        dev_id, token, dev = await online_device(rc)  # claimed with its info, then online
        dev.close()
        bad = await RawDevice.connect(rc.gateway)
        assert await bad.login("Q" * 32) == 9
        await asyncio.sleep(0.3)  # let the process write its log lines
    finally:
        proc.terminate()
        await proc.wait()
        log.close()
    text = (tmp_path / "cloud.log").read_text()
    # The log is not empty (a failed login is counted, and summed up at the latest on stop)...
    assert "online" in text and "1 failed device login(s) (invalid token)" in text
    for secret in (token, rc.owner_token, PASSWORD, "Q" * 32):
        assert secret not in text  # ...and holds no secret
    assert token[-4:] in text  # at most the last four characters
