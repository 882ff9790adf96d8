"""``wifiprov air``: list and edit the virtual air from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from wifiprov.sim.air import AccessPoint, Air
from wifiprov.sim.cli import air_app


def run(air: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(air_app, ["--air", str(air), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_add_fault_set_and_list(tmp_path: Path) -> None:
    d = tmp_path / "air"
    assert run(d, "add", "Home WiFi", "-p", "hunter2222", "--rssi", "-40")[0] == 0
    assert run(d, "add", "ff00", "--hex", "--hidden")[0] == 0
    assert run(d, "fault", "home-wifi", "--wrong-password", "--assoc-delay", "2")[0] == 0
    assert run(d, "fault", "home-wifi", "--clear", "--dhcp-fail")[0] == 0
    faults = Air(d).network("home-wifi").faults  # type: ignore[union-attr]
    assert faults.dhcp_fail and not faults.wrong_password and faults.assoc_delay == 0
    assert run(d, "set", "home-wifi", "--rssi", "-70", "--visible")[0] == 0
    code, out = run(d, "list")
    assert code == 0 and "…2222" in out and "hunter2222" not in out  # passwords masked
    code, out = run(d, "list", "--json")
    assert json.loads(out)["networks"]["home-wifi"]["rssi"] == -70


def test_errors_are_explained(tmp_path: Path) -> None:
    d = tmp_path / "air"
    code, out = run(d, "remove", "nope")
    assert code == 1 and "nope" in out
    run(d, "add", "Home", "-p", "hunter2222")
    assert run(d, "fault", "home")[0] == 1  # no fault given
    code, out = run(d, "join", "nobody", "--timeout", "0.05")
    assert code == 1 and "nobody" in out


def test_join_prints_the_portal_url(tmp_path: Path) -> None:
    d = tmp_path / "air"
    Air(d).publish_ap(
        AccessPoint("dev", "Blynk X-1234", "02:00:00:00:00:01", portal=("127.0.0.1", 9))
    )
    code, out = run(d, "join", "Blynk X-1234")
    assert code == 0 and out.strip() == "http://127.0.0.1:9"
    assert run(d, "watch", "--duration", "0.1")[0] == 0
    assert run(d, "leave")[0] == 0
