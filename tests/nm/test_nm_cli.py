"""``wifiprov device --radio nm``: flags and config keys reach the radio; errors are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nm.conftest import NmMock
from wifiprov.device import cli

BASE = ["--radio", "nm", "--template-id", "TMPL12345678", "--template-name", "Thermostat"]


def test_config_keys(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text(
        '[device]\nradio = "nm"\ninterface = "wlan1"\ntakeover = true\ncountry = "GB"\n'
        'template_id = "TMPL1"\ntemplate_name = "T"\n'
    )
    values = cli.load_settings(config, {"country": "DE"})
    assert (values["interface"], values["takeover"], values["country"]) == ("wlan1", True, "DE")
    args = cli.parser().parse_args(["--interface", "wlan0", "--takeover", "--country", "FR"])
    assert (args.interface, args.takeover, args.country) == ("wlan0", True, "FR")
    assert cli.parser().parse_args([]).takeover is None  # the config file decides then


def test_nm_not_running(
    system_bus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*BASE, "--store", str(tmp_path / "d.json")]) == 1
    assert "NetworkManager is not running" in capsys.readouterr().err


def test_takeover_refused(nm: NmMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nm.add_ap("o", b"Office")
    nm.add_foreign(b"Office", activate=True)
    argv = [*BASE, "--store", str(tmp_path / "d.json"), "--dnsmasq-dir", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "--takeover" in err and "wlan0" in err
