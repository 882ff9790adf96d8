"""The portal as HTTP clients meet it: HEAD without side effects, POST forms as Edgent's
WebServer takes them, and an HTTP answer to any request at all (hypothesis over methods, paths
and headers, sent as raw bytes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wifiprov.device import machine as sm
from wifiprov.device.agent import Agent, AgentConfig
from wifiprov.device.machine import State
from wifiprov.device.radio.sim import SimRadio
from wifiprov.device.store import ConfigStore
from wifiprov.sim.air import Air


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    air = Air(tmp_path / "air")
    air.add_network("Home WiFi", "correct horse")
    config = AgentConfig(
        template_id="TMPLportal1",
        template_name="Thermostat",
        host="127.0.0.1",
        port=9,  # nothing listens: attempts fail, which is all these tests need
        port_ssl=None,
        machine=sm.Settings(net_timeout=2, cloud_timeout=1),
    )
    radio = SimRadio(air, "device-1", mac="24:6f:28:aa:bb:cc")
    a = Agent(config, radio, ConfigStore(tmp_path / "device.json"))
    task = asyncio.create_task(a.run())
    async with asyncio.timeout(10):
        while a.portal_address is None:
            await asyncio.sleep(0.01)
    try:
        yield a
    finally:
        a.stop()
        await asyncio.wait_for(task, 10)
        await radio.close()
        air.close()


def client(a: Agent) -> httpx.AsyncClient:
    assert a.portal_address is not None
    host, port = a.portal_address
    return httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10)


@pytest.mark.parametrize(
    "path", ["/board_info.json", "/wifi_scan.json", "/status.json", "/", "/nowhere"]
)
async def test_head_gets_the_get_headers_no_body_and_changes_nothing(
    agent: Agent, path: str
) -> None:
    async with client(agent) as http:
        head = await http.head(path)
        assert agent.state is State.WAIT_CONFIG  # a HEAD on board info does not move the state
        get = await http.get(path)
    assert head.status_code == get.status_code and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/status.json" and path != "/wifi_scan.json":  # (live values)
        assert head.headers["content-length"] == str(len(get.content))


@pytest.mark.parametrize("path", ["/config", "/reset", "/reboot"])
async def test_head_on_an_action_does_nothing(agent: Agent, path: str) -> None:
    async with client(agent) as http:
        reply = await http.head(path + "?ssid=Home%20WiFi&pass=correct%20horse&blynk=" + "A" * 32)
        assert reply.status_code == 200 and reply.content == b""
        await asyncio.sleep(0.2)
        assert agent.state is State.WAIT_CONFIG and (await http.get("/status.json")).is_success
    assert agent.machine.ctx.history == ["WAIT_CONFIG"]  # no attempt, no reset, no restart


async def test_post_config_with_a_form_body_is_taken(agent: Agent) -> None:
    form = "ssid=Home%20WiFi&pass=correct%20horse&blynk=" + "A" * 32
    async with client(agent) as http:
        reply = await http.post(
            "/config",
            content=form,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"status": "ok", "msg": "Trying to connect..."}
    assert "CONNECTING_NET" in agent.machine.ctx.history


async def test_post_mixes_query_and_form_and_ignores_other_bodies(agent: Agent) -> None:
    async with client(agent) as http:
        reply = await http.post(
            "/config?ssid=" + quote("Home WiFi"),
            content=b"pass=correct%20horse&blynk=" + b"B" * 32,
            headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
        )
        assert reply.status_code == 200, reply.text
    async with client(agent) as http:
        reply = await http.post("/config", content=b'{"ssid": "Home WiFi"}')  # JSON: not a form
        assert reply.status_code == 500 and reply.json()["detail"].startswith("ssid:")
        huge = await http.post("/config", content=b"x" * 100_000)
        assert huge.status_code == 413


METHODS = st.sampled_from(
    ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "X-Y"]
)
PATHS = st.one_of(
    st.sampled_from(
        ["/", "/board_info.json", "/wifi_scan.json", "/status.json", "/config", "/generate_204"]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60).map(
        lambda p: "/" + p
    ),
)
QUERIES = st.one_of(
    st.just(""),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80).map(
        lambda q: "?" + q.replace("#", "")
    ),
)
HEADER_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
BODIES = st.binary(max_size=300)


def exchange(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


async def test_any_request_gets_an_http_answer(agent: Agent) -> None:
    assert agent.portal_address is not None
    address = agent.portal_address
    host = f"{address[0]}:{address[1]}"

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        method=METHODS,
        path=PATHS,
        query=QUERIES,
        headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5),
        body=BODIES,
        content_type=st.sampled_from(["", "application/x-www-form-urlencoded", "text/plain"]),
    )
    @example("CONNECT", "/", "", [], b"", "")  # h11 would switch protocols after a 200
    @example("POST", "/config", "", [], b"ssid=%ZZ", "application/x-www-form-urlencoded")
    def check(
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        content_type: str,
    ) -> None:
        lines = [f"{method} {path}{query} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers if name not in _FRAMING]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        answer = exchange(address, request)
        assert answer.startswith(b"HTTP/1.1 "), (request, answer)
        status = int(answer[9:12])
        assert status < 500 or status == 500 and path.startswith("/config"), (request, answer)

    await asyncio.to_thread(check)
    # Still serving, still the same agent.
    async with client(agent) as http:
        assert (await http.get("/board_info.json")).status_code == 200


_FRAMING = {"host", "connection", "content-length", "transfer-encoding", "content-type", "expect"}
