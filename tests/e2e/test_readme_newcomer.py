"""The README's newcomer path, run as written: from `cloud init` to a provisioned device on the
sim radio, with only the README's commands (no curl), in a fresh folder and a private network
namespace (the cloud takes its default ports 8080 and 8442 there, whatever the host runs)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def newcomer_block() -> str:
    text = README.read_text()
    found = re.search(
        r"<!-- newcomer:begin -->\s*```sh\n(.*?)```\s*<!-- newcomer:end -->", text, re.S
    )
    assert found, "README.md has no newcomer block between <!-- newcomer:begin/end -->"
    return found.group(1)


def test_the_readmes_newcomer_path_works(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "this test makes a network namespace: run it as root (make test)"
    block = newcomer_block()
    assert "curl" not in block
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = tmp_path / "newcomer.sh"
    script.write_text("set -euo pipefail\n" + block)
    ns = f"wpnew{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(tmp_path / "config"),  # a fresh user: no saved session
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "COLUMNS": "120",
        }
        done = subprocess.run(
            ["ip", "netns", "exec", ns, "bash", str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    logs = "\n".join(
        f"--- {name}\n{(tmp_path / name).read_text()}"
        for name in ("cloud.log", "device.log")
        if (tmp_path / name).exists()
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, f"{said}\n{logs}"
    assert "Created user you@example.com" in said
    assert "Created template Thermostat" in said
    assert "Kitchen" in said and "online" in said  # provisioned, named, online
    assert "V1 = 80: delivered" in said
    assert (tmp_path / "device.json").exists()  # the device kept its configuration
    # Secrets at rest: the cloud's database and the device's store are 0600.
    for name in ("cloud.db", "device.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
