"""The setup page at ``/``: provisioning from any browser, no app needed.

Like Edgent's form (network, password, token matching ``[-_a-zA-Z0-9]{32}``, host, port), plus a
network list from the last scan (strongest first, with an "other (hidden) network" choice),
enterprise sign-in (``identity`` and ``eap``, our extension), checks with messages in words before
anything is sent, and live progress from ``/status.json``: the steps, and on failure the reason and
the form back. The token, host and ports can arrive in the page's URL (``/?token=…&host=…``), so the
cloud's setup link fills them in. A device with no configured cloud host requires one on the page
(and says why) rather than fall back to Edgent's blynk.cloud. The page loads nothing from
elsewhere (the phone has no internet on the device's AP), and everything from the device or the URL
is escaped: SSIDs are arbitrary bytes, and one that is not UTF-8 is sent back as ``ssid_hex``.

Opened without a token (a phone's captive sign-in sheet opens ``/`` by itself), the page says so
and takes the setup link, or its token, pasted into "Device token": a pasted link fills in the
token, host, ports and way back. The link's ``next=`` (an http(s) URL: the console's page that
created the link) becomes a "Back to your account" link when the device is done.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from importlib.resources import files
from string import Template
from urllib.parse import parse_qs, urlsplit

from wifiprov.wire.edgent import ScanEntry


class _Page(Template):
    delimiter = "%%"  # the page's CSS and JavaScript are full of ``$``


_PAGE = _Page((files("wifiprov.device") / "setup_page.html").read_text("utf-8"))

# How the page treats a scan's security word (Edgent's ``sec``): which fields it shows and how it
# checks the password. The device checks again (``edgent.check_password``) and says why it refuses.
_OPEN = {"OPEN", "OWE"}
_WEP = {"WEP"}
_PSK = {
    "WPA", "WPA2", "WPA3", "WPA+WPA2", "WPA2+WPA3", "WAPI", "WPA/PSK", "WPA2/PSK", "WPA/WPA2/PSK"
}  # fmt: skip


def security_kind(security: str) -> str:
    """``open``, ``wep``, ``psk``, ``ent`` (802.1X: identity + EAP method) or ``unknown``."""
    sec = security.upper()
    if sec in _OPEN:
        return "open"
    if sec in _WEP:
        return "wep"
    if sec in _PSK:
        return "psk"
    if "EAP" in sec or sec.endswith(" ENT") or "ENTERPRISE" in sec:
        return "ent"
    return "unknown"


def _signal(rssi: int) -> str:
    return "strong" if rssi >= -60 else "good" if rssi >= -75 else "weak"


def network_options(networks: Iterable[ScanEntry]) -> str:
    """``<option>``s for the networks a scan saw: named ones, each once (its strongest entry)."""
    best: dict[bytes, ScanEntry] = {}
    for entry in networks:
        if entry.ssid and (entry.ssid not in best or entry.rssi > best[entry.ssid].rssi):
            best[entry.ssid] = entry
    options = []
    for entry in sorted(best.values(), key=lambda e: -e.rssi):
        try:
            name, raw_hex = entry.ssid.decode("utf-8"), ""
        except UnicodeDecodeError:  # shown with replacement characters, sent as its exact bytes
            name, raw_hex = entry.ssid.decode("utf-8", "replace"), entry.ssid.hex()
        kind = security_kind(entry.security)
        security = "open" if kind == "open" else entry.security
        label = f"{name} ({security}, {_signal(entry.rssi)} signal)"
        attrs = {
            "value": name,
            "data-name": name,
            "data-kind": kind,
            "data-sec": entry.security,
            "data-rssi": str(entry.rssi),
        }
        if raw_hex:
            attrs["data-hex"] = raw_hex
        text = " ".join(f'{key}="{html.escape(value)}"' for key, value in attrs.items())
        options.append(f"<option {text}>{html.escape(label)}</option>")
    return "".join(options)


HOST_HINT = "Leave empty for the device's default; the setup link fills these in."
NO_HOST_HINT = (
    "This device has no cloud server configured: enter the server's host name. "
    "The setup link from your account fills it in."
)


NO_TOKEN = (
    "You opened this page without a setup link. Paste the setup link, or the device token from "
    "it, into “Device token” below. You get it on the Add device page of your account (the "
    "console), or from the person who gave you this device."
)


def safe_next(url: str) -> str:
    """``url`` if it is an http(s) URL with a host (the way back to the console), else ""."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        return ""
    if any(c in url for c in "\r\n\t\\ <>\"'"):
        return ""
    return url.strip()


def setup_page(
    title: str, networks: Iterable[ScanEntry], query: bytes, host: str, port: int | None
) -> bytes:
    """The page; ``host`` and ``port`` are the device's defaults (``host`` "" when it has none)."""
    params = parse_qs(query.decode("utf-8", "replace"))

    def param(name: str, default: str) -> str:
        return params.get(name, [default])[0]

    options = network_options(networks)
    hint = (
        "Networks the device found, strongest first."
        if options
        else "The device found no networks: choose “Other”, or move it closer to the router."
    )
    return _PAGE.substitute(
        title=html.escape(title),
        options=options,
        scan_hint=html.escape(hint),
        token=html.escape(param("token", "")),
        no_token_hidden=" hidden" if param("token", "") else "",
        no_token=html.escape(NO_TOKEN),
        next=html.escape(safe_next(param("next", ""))),
        host=html.escape(param("host", "")),
        host_default=html.escape(host),
        host_hint=html.escape(HOST_HINT if host else NO_HOST_HINT),
        host_required="" if host else ' required aria-required="true"',
        advanced_open="" if host else " open",
        port=html.escape(param("port", "")),
        port_default=html.escape(str(port or "")),
        port_ssl=html.escape(param("port_ssl", "")),
    ).encode("utf-8")
