"""A phone's browser session, run where the phone is: ``ip netns exec PHONE python -m
tests.browser.driver SPEC_JSON``. Playwright's driver and Chromium both run in that namespace, so
names resolve through the namespace's resolv.conf (the device's DNS) and traffic leaves through its
links. Prints one JSON object on its last line of output:

    {"probes": [{"url", "landed", "portal", "title"}...],
     "token_filled": the token field's value after opening the link,
     "results": [{"outcome", "status", "steps", "history", "form_enabled"} per attempt],
     "config": [the /config queries the page sent], "requests": [every URL the page fetched],
     "error": null | "what went wrong"}

SPEC_JSON: {"probes": [urls], "link": setup link, "attempts": [{"ssid", "password"}...] (each
after the previous one failed and gave the form back), "timeout": seconds for each result,
"deadline": seconds for everything, "shots": folder for screenshots or null, "args": [extra
Chromium flags]}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.browser.portal import chromium, phone_tab


async def session(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"probes": [], "results": [], "config": [], "requests": [],
                           "error": None}
    shots = Path(spec["shots"]) if spec.get("shots") else None
    async with chromium(spec.get("args", [])) as browser:
        tab = await phone_tab(browser)
        try:
            for n, url in enumerate(spec.get("probes", [])):
                probe: dict[str, Any] = {"url": url}
                out["probes"].append(probe)
                try:
                    probe["landed"] = await tab.open(url)
                    probe["portal"] = await tab.is_portal()
                    probe["title"] = await tab.title() if probe["portal"] else ""
                except Exception as exc:  # recorded; the test says which probe failed
                    probe["error"] = f"{type(exc).__name__}: {exc}"
                if shots:
                    await tab.screenshot(shots / f"probe-{n}.png")
            if spec.get("link"):
                await tab.open(spec["link"])
                out["token_filled"] = await tab.page.input_value("#blynk")
            for n, attempt in enumerate(spec.get("attempts", [])):
                await tab.choose(attempt["ssid"])
                await tab.fill(**{"pass": attempt["password"]})
                if shots:
                    await tab.screenshot(shots / f"attempt-{n}-filled.png")
                await tab.submit()
                result = await tab.result(timeout=float(spec.get("timeout", 90)))
                out["results"].append(asdict(result))
                if shots:
                    await tab.screenshot(shots / f"attempt-{n}-{result.outcome}.png")
                if result.outcome != "failed":
                    break
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        finally:
            out["config"] = tab.config_requests()
            out["requests"] = tab.requests
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    try:
        out = asyncio.run(asyncio.wait_for(session(spec), float(spec.get("deadline", 240))))
    except BaseException as exc:  # still report, as JSON
        out = {"probes": [], "results": [], "config": [], "requests": [],
               "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
