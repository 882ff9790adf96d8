"""schemathesis over the whole OpenAPI schema (/openapi.json): no input gives a 5xx.

The cloud runs in this process (on SQLite and on PostgreSQL); the schemathesis CLI runs as a
child process against it, signed in as the owner, with an online device, so ids 1 and 2 exist
and the online code paths (pin writes, reconfigure, redirect) are reached. Examples are bounded
per operation and the seed is fixed (``WIFIPROV_SCHEMATHESIS_SEED`` to try another).
Sign-out is left out: it would end the session the run uses.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from tests.conftest import RunningCloud
from tests.integration.support import online_device

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
MAX_EXAMPLES = int(os.environ.get("WIFIPROV_SCHEMATHESIS_EXAMPLES", "15"))
SEED = os.environ.get("WIFIPROV_SCHEMATHESIS_SEED", "20111")


async def test_no_input_gives_a_server_error(cloud: RunningCloud, tmp_path: Path) -> None:
    assert SCHEMATHESIS.exists(), f"{SCHEMATHESIS} is missing: pip install -e '.[test]'"
    first = await online_device(cloud)
    second = await online_device(cloud)
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{cloud.http_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {cloud.owner_token}",
        "--checks",
        "not_a_server_error",
        "--exclude-path-regex",
        "^/api/auth/sign-out",  # sign-out and sign-out-everywhere would end the run's session
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "1",
        "--no-shrink",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    started = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # --max-time would make fuzzing repeat until it is spent: the bound is the example count.
    output, _ = await asyncio.wait_for(child.communicate(), 300)
    report = output.decode(errors="replace")
    summary = [line for line in report.splitlines() if "generated" in line or " in " in line]
    print(f"schemathesis: {time.monotonic() - started:.0f} s; " + " | ".join(summary[-2:]))
    assert child.returncode == 0, report[-6000:]
    assert "passed" in report and "generated" in report, report[-3000:]
    for _, _, device in (first, second):
        device.close()
