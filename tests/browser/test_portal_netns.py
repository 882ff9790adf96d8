"""The phone's browser in its own network namespace: it joins the device's AP (DHCP and DNS from
dnsmasq in the device's namespace, as NetworkManager runs it), the operating systems' probe URLs
resolve through the device's DNS and land on the portal, and a person provisions with the page:
a wrong password first (the reason in words, the form back), then the right one, ending with the
device online in the cloud (in the cloud's namespace)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.netns import netlab
from wifiprov.wire.errors import explain

ROOT = Path(__file__).resolve().parents[2]
PROBES = [
    "http://connectivitycheck.gstatic.com/generate_204",  # Android
    "http://captive.apple.com/hotspot-detect.html",  # Apple
    "http://www.msftconnecttest.com/connecttest.txt",  # Windows
]


def browse(net: netlab.Lab, spec: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Run tests/browser/driver.py in the phone's namespace; its JSON report."""
    done = net.run(
        net.phone,
        [netlab.PYTHON, "-m", "tests.browser.driver", json.dumps(spec)],
        timeout=timeout,
        env={"PYTHONPATH": str(ROOT)},
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"the driver failed: {done.stdout}{done.stderr}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def test_probes_through_the_device_dns_land_on_the_portal_and_the_page_provisions(
    net: netlab.Lab, shots: Path
) -> None:
    net.start_dnsmasq(captive=True)
    assert net.dhcp().startswith(net.AP_PREFIX)
    assert "192.168.4.1" in net.phone_resolv_conf()  # the phone asks the device's DNS
    net.start_cloud()
    device = net.start_device()
    ap = net.portal_json("/board_info.json")["ssid"]
    link = net.api("POST", f"/api/templates/{net.template_id}/provisioning")["setup_link"]
    assert link.startswith("http://192.168.4.1/?token=")

    report = browse(
        net,
        {
            "probes": PROBES,
            "link": link,
            "attempts": [
                {"ssid": netlab.HOME_SSID, "password": "not the password"},
                {"ssid": netlab.HOME_SSID, "password": netlab.HOME_PASSWORD},
            ],
            "timeout": 90,
            "deadline": 280,
            "shots": str(shots),
        },
    )
    assert report["error"] is None, report["error"] + device.output()[-3000:]
    for probe in report["probes"]:
        assert probe.get("landed") == "http://192.168.4.1/", probe
        assert probe["portal"] and probe["title"] == ap, probe
    assert report["token_filled"] == link.split("token=")[1].split("&")[0]

    failed, done = report["results"]
    words = explain(722)
    assert failed["outcome"] == "failed", failed
    assert words.what in failed["status"] and words.todo in failed["status"], failed
    assert failed["steps"]["wifi"] == "bad" and failed["form_enabled"]
    assert done["outcome"] == "done", (done, device.output()[-3000:])
    assert done["steps"] == {"send": "ok", "wifi": "ok", "cloud": "ok", "done": "ok"}
    assert any(h["steps"].get("step-wifi") == "active" for h in done["history"])
    assert [q["pass"] for q in report["config"]] == [
        ["not the password"],
        [netlab.HOME_PASSWORD],
    ]

    deadline = time.monotonic() + 30  # presence is written behind the login
    while not any(d["online"] for d in net.api("GET", "/api/devices")):
        assert time.monotonic() < deadline, "the device never showed online in the cloud"
        time.sleep(0.3)
