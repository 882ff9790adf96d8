"""Bad input never gives a 500: ids, Unicode, NUL and control characters, lengths, host names."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from tests.conftest import RunningCloud
from tests.integration.support import online_device, provisioning_token, template
from wifiprov.cloud.db.schema import NAME_LENGTH
from wifiprov.wire.blynk import Command

SURROGATE = "\ud800"


async def send_json(api: httpx.AsyncClient, method: str, url: str, body: Any) -> httpx.Response:
    """``body`` as JSON with non-ASCII escaped, as any client may send it (``"\\ud800"``)."""
    content = json.dumps(body).encode("ascii")
    return await api.request(
        method, url, content=content, headers={"Content-Type": "application/json"}
    )


def id_routes(cloud: RunningCloud) -> list[tuple[str, str]]:
    """Every (method, path) with an integer id in its path."""
    found = []
    for route in cloud.cloud.app.routes:
        path = getattr(route, "path", "")
        if re.search(r"\{(org_id|device_id|request_id)\}", path):
            for method in route.methods:  # type: ignore[attr-defined]
                found.append((method, path))
    return found


async def test_ids_outside_the_database_integer_range_are_refused(cloud: RunningCloud) -> None:
    routes = id_routes(cloud)
    assert len(routes) >= 15
    async with cloud.client(cloud.owner_token) as api:
        for big in (2**63, 2**64 + 5, 2**31, -(2**63) - 1, 10**30):
            for method, path in routes:
                url = re.sub(r"\{(org_id|device_id|request_id)\}", str(big), path)
                url = url.replace("{pin}", "1")
                reply = await api.request(method, url, json={"name": "x", "value": "1"})
                assert reply.status_code in (404, 422), (method, url, reply.text)
                assert reply.json()["error"] in ("not_found", "invalid"), reply.text
        reply = await api.get(f"/api/devices?org_id={2**63}")
        assert reply.status_code == 422
        reply = await api.get(f"/api/devices/1/pins/{2**63}")
        assert reply.status_code in (404, 405, 422)
        # the largest id the database holds is still an id (and simply not found)
        reply = await api.get(f"/api/devices/{2**31 - 1}")
        assert reply.status_code == 404 and reply.json()["error"] == "not_found"


async def test_template_ids_that_cannot_be_ids_are_refused(cloud: RunningCloud) -> None:
    async with cloud.client(cloud.owner_token) as api:
        for bad in ("TMPL%00abc", "x" * 33, "TMPL%ED%A0%80", "TMPL%20x"):
            for suffix in ("", "/firmware-config"):
                reply = await api.get(f"/api/templates/{bad}{suffix}")
                assert reply.status_code in (404, 422), (bad, reply.text)
            reply = await api.post(f"/api/templates/{bad}/provisioning")
            assert reply.status_code in (404, 422), (bad, reply.text)


async def test_lone_surrogates_are_refused_in_every_field(cloud: RunningCloud) -> None:
    device_id, _, dev = await online_device(cloud)
    o = cloud.org_id
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", f"/api/orgs/{o}", {"name": "Acme" + SURROGATE}),
        ("PATCH", f"/api/orgs/{o}", {"hotspot_prefix": SURROGATE}),
        ("PUT", f"/api/orgs/{o}/members", {"email": SURROGATE + "@x.org", "role": "viewer"}),
        ("PUT", f"/api/orgs/{o}/members", {"email": "a@x.org", "role": SURROGATE}),
        ("POST", f"/api/orgs/{o}/templates", {"name": SURROGATE}),
        ("POST", f"/api/orgs/{o}/templates", {"name": "Pump", "firmware_type": SURROGATE}),
        ("PATCH", f"/api/devices/{device_id}", {"name": "Kitchen " + SURROGATE}),
        ("POST", f"/api/devices/{device_id}/redirect", {"host": SURROGATE, "port": 80}),
        ("PUT", f"/api/devices/{device_id}/pins/1", {"value": SURROGATE}),
        ("PUT", f"/api/devices/{device_id}/pins/1", {"value": ["ok", "x" + SURROGATE]}),
    ]
    async with cloud.client(cloud.owner_token) as api:
        for method, url, body in cases:
            reply = await send_json(api, method, url, body)
            assert reply.status_code == 422, (method, url, body, reply.text)
            assert "unicode" in reply.json()["message"].lower(), reply.text
        assert (await api.get(f"/api/devices/{device_id}/pins")).json() == {}
    async with cloud.client() as anonymous:  # before anyone is signed in
        for body in (
            {"email": "owner@example.com", "password": "correct horse" + SURROGATE},
            {"email": SURROGATE, "password": "correct horse battery"},
        ):
            reply = await send_json(anonymous, "POST", "/api/auth/sign-in", body)
            assert reply.status_code == 422, reply.text
    # nothing reached the device
    assert dev.frames == [] and not dev.reader.at_eof()
    dev.close()


async def test_nul_never_reaches_a_device(cloud: RunningCloud) -> None:
    device_id, token, dev = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        for body in ({"value": "a\0b"}, {"value": ["a", "b\0"]}):
            reply = await api.put(f"/api/devices/{device_id}/pins/1", json=body)
            assert reply.status_code == 422 and "NUL" in reply.json()["message"], reply.text
        reply = await api.get(f"/external/api/update?token={token}&V1=a%00b")
        assert reply.status_code == 422 and "NUL" in reply.json()["message"], reply.text
        for host in ("a\0b", "cloud.test\0", "\0"):
            reply = await api.post(
                f"/api/devices/{device_id}/redirect", json={"host": host, "port": 8442}
            )
            assert reply.status_code == 422, (host, reply.text)
        # control characters other than NUL travel fine in a pin value
        ok = await api.put(f"/api/devices/{device_id}/pins/1", json={"value": "line 1\nline 2"})
        assert ok.status_code == 200, ok.text
        frame = await dev.recv()
        assert frame is not None and frame.command == Command.HARDWARE
        assert frame.body == b"vw\x001\x00line 1\nline 2"
        assert (await api.get(f"/api/devices/{device_id}/pins")).json() == {
            "V1": ["line 1\nline 2"]
        }
    dev.close()


async def test_names_are_one_line_of_text(cloud: RunningCloud) -> None:
    device_id, _, dev = await online_device(cloud)
    o = cloud.org_id
    async with cloud.client(cloud.owner_token) as api:
        for bad in ("Kit\0chen", "Kitchen\n", "a\tb", "bell\x07", "del\x7f", "c1\x85"):
            reply = await api.patch(f"/api/devices/{device_id}", json={"name": bad})
            assert reply.status_code == 422 and "control" in reply.json()["message"], bad
            reply = await api.patch(f"/api/orgs/{o}", json={"name": bad})
            assert reply.status_code == 422, bad
            reply = await api.post(f"/api/orgs/{o}/templates", json={"name": bad})
            assert reply.status_code == 422, bad
        good = await api.patch(f"/api/devices/{device_id}", json={"name": "Küche – 2 ☕"})
        assert good.status_code == 200 and good.json()["name"] == "Küche – 2 ☕"
    dev.close()


async def test_redirect_needs_a_host_name_or_address_and_a_port(cloud: RunningCloud) -> None:
    device_id, _, dev = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        url = f"/api/devices/{device_id}/redirect"
        for host in ("", "has space", "-lead.example", "trail-.example", "a..b", "x" * 254,
                     "a/b", "a:b", "é.example", "l" * 64 + ".example"):  # fmt: skip
            reply = await api.post(url, json={"host": host, "port": 8442})
            assert reply.status_code == 422, (host, reply.text)
        for port in (0, -1, 65536, 2**63):
            reply = await api.post(url, json={"host": "cloud.test", "port": port})
            assert reply.status_code == 422, (port, reply.text)
        assert dev.frames == []
        for host in ("cloud-2.example.com", "10.0.0.7", "::1", "localhost"):
            reply = await api.post(url, json={"host": host, "port": 65535})
            assert reply.status_code == 202, reply.text
            assert reply.json()["host"] == host and reply.json()["port"] == 65535
            frame = await dev.recv()
            assert frame is not None and frame.command == Command.REDIRECT
            assert frame.body == host.encode() + b"\x0065535"
    dev.close()


async def test_lengths_are_the_schema_columns(cloud: RunningCloud) -> None:
    o = cloud.org_id
    device_id, _, dev = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        assert (await api.patch(f"/api/orgs/{o}", json={"name": "O" * 300})).status_code == 422
        assert (
            await api.patch(f"/api/orgs/{o}", json={"name": "O" * (NAME_LENGTH + 1)})
        ).status_code == 422
        fits = await api.patch(f"/api/orgs/{o}", json={"name": "O" * NAME_LENGTH})
        assert fits.status_code == 200 and fits.json()["name"] == "O" * NAME_LENGTH
        reply = await api.post(f"/api/orgs/{o}/templates", json={"name": "T" * (NAME_LENGTH + 1)})
        assert reply.status_code == 422
        reply = await api.post(
            f"/api/orgs/{o}/templates", json={"name": "T", "firmware_type": "f" * 65}
        )
        assert reply.status_code == 422
        reply = await api.patch(f"/api/devices/{device_id}", json={"name": "D" * (NAME_LENGTH + 1)})
        assert reply.status_code == 422
        email = "e" * 250 + "@x.org"
        reply = await api.put(f"/api/orgs/{o}/members", json={"email": email, "role": "viewer"})
        assert reply.status_code == 422
        reply = await api.put(
            f"/api/orgs/{o}/members", json={"email": "owner@example.com", "role": "r" * 17}
        )
        assert reply.status_code == 422
    async with cloud.cloud.db.begin() as conn:
        from sqlalchemy import text

        names = [r[0] for r in await conn.execute(text("SELECT name FROM organizations"))]
    assert max(len(n) for n in names) == NAME_LENGTH
    dev.close()


async def test_external_api_pins_out_of_range_or_odd_digits(cloud: RunningCloud) -> None:
    _, token, dev = await online_device(cloud)
    async with cloud.client() as api:
        for query in ("V256=1", "V99999999999999999999=1", "V" + "9" * 5000 + "=1"):
            reply = await api.get(f"/external/api/update?token={token}&{query}")
            assert reply.status_code == 422, (query[:20], reply.text)
        for query in ("V256", "V" + "9" * 5000):
            reply = await api.get(f"/external/api/get?token={token}&{query}")
            assert reply.status_code == 422, (query[:20], reply.text)
        # non-ASCII digits are not a pin name
        reply = await api.get(f"/external/api/update?token={token}&V%C2%B2=1")
        assert reply.status_code == 422 and "give a pin" in reply.json()["message"]
    dev.close()


async def test_error_headers_pass_through(cloud: RunningCloud) -> None:
    async with cloud.client() as api:
        reply = await api.post("/api/health")
    assert reply.status_code == 405 and reply.headers["allow"] == "GET"
    assert reply.json()["error"] == "http_error"


async def test_a_cloud_error_with_headers_keeps_them(cloud: RunningCloud) -> None:
    from wifiprov.cloud.errors import CloudError

    class Busy(CloudError):
        status = 429
        code = "too_many_requests"

        def __init__(self) -> None:
            super().__init__("slow down")
            self.headers = {"Retry-After": "7"}

    async def busy() -> None:
        raise Busy()

    cloud.cloud.app.add_api_route("/api/test-busy", busy)
    async with cloud.client() as api:
        reply = await api.get("/api/test-busy")
    assert reply.status_code == 429 and reply.headers["retry-after"] == "7"
    assert reply.json() == {"error": "too_many_requests", "message": "slow down"}


async def test_valid_requests_still_work(cloud: RunningCloud) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    async with cloud.client(cloud.owner_token) as api:
        assert (await api.get(f"/api/provisioning/{request['id']}")).status_code == 200
        assert (await api.get(f"/api/devices?org_id={cloud.org_id}")).status_code == 200
        assert (await api.get(f"/api/templates/{template_id}")).status_code == 200


async def raw_request(cloud: RunningCloud, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request by hand (headers, then each chunk); the server's whole answer."""
    host, port = cloud.cloud.http_address
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()  # the server closes after a 413
    finally:
        writer.close()


async def test_a_declared_oversize_body_is_refused_unread(cloud: RunningCloud) -> None:
    head = (
        f"PATCH /api/orgs/{cloud.org_id} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {cloud.owner_token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n"
    ).encode()
    answer = await raw_request(cloud, head, [])  # no body sent at all: not waited for
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(body) == {
        "error": "too_large",
        "message": "the request body is larger than 64 KiB",
    }


async def test_an_oversize_chunked_body_is_cut_off(cloud: RunningCloud) -> None:
    head = (
        f"PATCH /api/orgs/{cloud.org_id} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {cloud.owner_token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b'{"name": "' + b"x" * 16000
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(5)]  # 80 KB, never ended
    answer = await raw_request(cloud, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"too_large"' in answer


async def test_a_20_mb_json_body_is_refused_and_a_small_one_taken(cloud: RunningCloud) -> None:
    async with cloud.client(cloud.owner_token) as api:
        big = {"name": "x", "pad": "p" * 20_000_000}
        try:
            reply = await api.patch(f"/api/orgs/{cloud.org_id}", json=big)
            assert reply.status_code == 413 and reply.json()["error"] == "too_large"
        except httpx.TransportError:
            pass  # the server closed before the client had written it all (the usual case)
        async with cloud.client(cloud.owner_token) as api2:
            near = {"name": "Acme 2", "pad": "p" * 60_000}
            reply = await api2.patch(f"/api/orgs/{cloud.org_id}", json=near)
            assert reply.status_code == 200 and reply.json()["name"] == "Acme 2"
            assert (await api2.get(f"/api/orgs/{cloud.org_id}")).json()["name"] == "Acme 2"
