"""The setup page at ``/``: provisioning from any browser, no app needed.

Like Edgent's form (network, password, token matching ``[-_a-zA-Z0-9]{32}``, host, port), plus a
network list from the last scan and live progress from ``/status.json``. The token can arrive in
the page's URL (``/?token=…``), so a link from the cloud fills it in.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from importlib.resources import files
from string import Template
from urllib.parse import parse_qs

from wifiprov.wire.edgent import ScanEntry

_PAGE = Template((files("wifiprov.device") / "setup_page.html").read_text("utf-8"))


def setup_page(
    title: str, networks: Iterable[ScanEntry], query: bytes, host: str, port: int | None
) -> bytes:
    params = parse_qs(query.decode("utf-8", "replace"))
    token = params.get("token", [""])[0]
    host = params.get("host", [host])[0]
    port_text = params.get("port", [str(port or "")])[0]
    options = []
    seen: set[bytes] = set()
    for entry in networks:
        if not entry.ssid or entry.ssid in seen:
            continue
        seen.add(entry.ssid)
        name = entry.ssid.decode("utf-8", "replace")
        label = f"{name} ({entry.security}, {entry.rssi} dBm)"
        options.append(f'<option value="{html.escape(name)}">{html.escape(label)}</option>')
    return _PAGE.substitute(
        title=html.escape(title),
        options="".join(options),
        token=html.escape(token),
        host=html.escape(host),
        port=html.escape(port_text),
    ).encode("utf-8")
