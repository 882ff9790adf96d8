"""The setup page as rendered: the cloud host it asks for, with and without a configured one."""

from __future__ import annotations

import html
import re

from wifiprov.device.setup_page import HOST_HINT, NO_HOST_HINT, setup_page
from wifiprov.wire.edgent import ScanEntry

NETWORKS = [ScanEntry(b"Home", "aa:bb:cc:dd:ee:ff", -50, "WPA2", 6)]


def render(query: bytes, host: str) -> str:
    return setup_page("Blynk Lamp-W8FH", NETWORKS, query, host, 8442).decode()


def host_input(page: str) -> str:
    found = re.search(r'<input name="host"[^>]*>', page)
    assert found, page
    return found.group(0)


def test_without_a_configured_host_the_page_requires_one() -> None:
    page = render(b"", "")
    assert 'required aria-required="true"' in host_input(page)
    assert 'placeholder=""' in host_input(page)  # no blynk.cloud, nor any other default
    assert '<details id="advanced" open>' in page  # the field is in sight
    assert html.escape(NO_HOST_HINT) in page and "no cloud server configured" in NO_HOST_HINT
    assert "blynk.cloud" not in page


def test_the_setup_links_host_fills_the_required_field() -> None:
    page = render(b"token=abc&host=cloud.example.com&port=8442", "")
    assert 'value="cloud.example.com"' in host_input(page)
    assert "required" in host_input(page)


def test_with_a_configured_host_the_page_is_as_before() -> None:
    page = render(b"", "cloud.local")
    assert 'placeholder="cloud.local"' in host_input(page)
    assert "required" not in host_input(page)
    assert '<details id="advanced">' in page and html.escape(HOST_HINT) in page


def test_a_rejected_token_is_explained_for_a_phone() -> None:
    page = render(b"", "cloud.local")
    # 703's words on the page say what to do from the phone: a new setup link, or paste a token.
    assert "Get a new setup link" in page and "paste its token" in page


def test_without_a_token_the_page_says_where_to_get_one() -> None:
    page = render(b"", "cloud.local")
    assert '<div id="no-token" class="box">' in page and "Add device page" in page
    with_token = render(b"token=" + b"a" * 32, "cloud.local")
    assert '<div id="no-token" class="box" hidden>' in with_token


def test_the_way_back_is_an_http_url_only_and_escaped() -> None:
    ok = render(b"token=x&next=http%3A%2F%2Fcloud.example%3A8080%2Fadd-device%2F7", "h")
    assert 'data-next="http://cloud.example:8080/add-device/7"' in ok
    for bad in [
        b"javascript%3Aalert(1)",
        b"%2Fadd-device",
        b"http%3A%2F%2Fa%22%3E%3Cb",
        b"data%3Ax",
    ]:
        assert 'data-next=""' in render(b"next=" + bad, "h"), bad
