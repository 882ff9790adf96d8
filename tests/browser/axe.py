"""The accessibility check every console browser test shares: axe-core in the page, no serious or
critical violation allowed.

``await check(page)`` runs axe-core (the npm package's ``axe.min.js``, a pinned version checked
against the registry's sha512) in a Playwright page and fails the test with each serious or critical
violation, its help text and the elements it found. The script is downloaded from the npm registry
once and cached under the repository's ``build/`` directory (gitignored); when it cannot be fetched
the test fails with the reason: it is never skipped.

The console's Content-Security-Policy allows no inline script, so axe is not added as a
``<script>`` tag: it is evaluated through the DevTools protocol, which a page's CSP does not govern.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

VERSION = "4.14.1"
TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
INTEGRITY = (  # the registry's dist.integrity for this version
    "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
)
CACHE = Path(__file__).resolve().parents[2] / "build" / "axe-core" / f"axe-{VERSION}.min.js"
MEMBER = "package/axe.min.js"
BLOCKING = ("serious", "critical")

_source: str | None = None


def _download() -> bytes:
    try:
        with urllib.request.urlopen(TARBALL, timeout=60) as reply:
            data: bytes = reply.read()
    except OSError as exc:
        raise RuntimeError(f"cannot download {TARBALL}: {exc}") from exc
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise RuntimeError(f"{TARBALL}: integrity {digest} is not the expected {INTEGRITY}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise RuntimeError(f"{TARBALL} has no {MEMBER}")
        return member.read()


def source() -> str:
    """axe.min.js (from the cache, else downloaded once into it); fails the test if it cannot."""
    global _source
    if _source is not None:
        return _source
    try:
        if not CACHE.exists():
            script = _download()
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=CACHE.parent, prefix=".axe-")
            with os.fdopen(fd, "wb") as out:
                out.write(script)
            os.chmod(tmp, 0o644)
            os.replace(tmp, CACHE)  # atomic: parallel test workers never see half a file
        _source = CACHE.read_text(encoding="utf-8")
    except (OSError, RuntimeError, tarfile.TarError) as exc:
        pytest.fail(
            f"the accessibility check needs axe-core {VERSION} ({exc}); it is fetched once from "
            f"{TARBALL} into {CACHE}: give this machine access to registry.npmjs.org or put "
            f"the package's axe.min.js there",
            pytrace=False,
        )
    return _source


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"    {' '.join(node['target'])}: {node['html'][:200]}")
            if node.get("failureSummary"):
                lines.append("      " + node["failureSummary"].replace("\n", "\n      "))
    return "\n".join(lines)


async def check(page: Any) -> None:
    """Assert that ``page`` (a Playwright page, as it is now) has no serious or critical axe
    violation."""
    script = source()
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(script + "\n;undefined")  # CDP evaluation: not subject to the CSP
    result = await page.evaluate(
        """async () => {
          const r = await window.axe.run(document, {resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            helpUrl: v.helpUrl, nodes: v.nodes.map(n => ({target: n.target.map(String),
            html: n.html, failureSummary: n.failureSummary}))}));
        }"""
    )
    bad = [v for v in result if v["impact"] in BLOCKING]
    assert not bad, (
        f"accessibility violations on {page.url}:\n"
        + _describe(bad)
        + ("\n(all: " + json.dumps(sorted({v["id"] for v in result})) + ")")
    )
