"""The device's cloud link against the real cloud (login, codes for each failure, commands) and
against a scripted cloud on a real socket (bad frames, Edgent's meta, console replies)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from pathlib import Path
from unittest.mock import patch

import pytest
import trustme

from tests.conftest import RunningCloud
from tests.integration.support import free_port, provisioning_token, template, until
from wifiprov.device.link import (
    CONSOLE_CHUNK,
    BadFrame,
    CloudLink,
    LinkCallbacks,
    LinkError,
    LinkSettings,
    console_chunks,
    edgent_meta,
    parse_redirect,
)
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status

INFO = {
    "mcu": "1.2.3",
    "fw-type": "TMPLtest",
    "build": "Nov 24 2026 10:00:00",
    "blynk": "1.4.0",
    "dev": "Raspberry Pi",
    "tmpl": "TMPLtest",
}


def settings(
    token: str, port: int | None, template_id: str = "TMPLtest", **kw: object
) -> LinkSettings:
    """The firmware reports ``template_id`` (a claim needs the token's template)."""
    info = {**INFO, "fw-type": template_id, "tmpl": template_id}
    return LinkSettings(token=token, host="127.0.0.1", port=port, info=info, **kw)  # type: ignore[arg-type]


async def test_link_logs_in_reports_info_and_obeys_the_cloud(cloud: RunningCloud) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    writes: list[tuple[int, list[str]]] = []
    console: list[str] = []
    link = CloudLink(
        settings(request["token"], cloud.gateway[1], template_id),
        LinkCallbacks(on_write=lambda p, v: writes.append((p, v)), on_console=console.append),
    )
    await link.open(timeout=5)
    serving = asyncio.create_task(link.run())
    link.virtual_write(2, 21.5)
    async with cloud.client(cloud.owner_token) as api:

        async def stored() -> bool:
            devices = (await api.get("/api/devices")).json()
            return bool(devices) and (
                await api.get(f"/api/devices/{devices[0]['id']}/pins")
            ).json().get("V2") == ["21.5"]

        await until(stored)
        device = (await api.get("/api/devices")).json()[0]
        assert device["info"]["firmware_version"] == "1.2.3"
        assert device["info"]["heartbeat"] == "40"
        await api.put(f"/api/devices/{device['id']}/pins/1", json={"value": "on"})
        await api.post(f"/api/devices/{device['id']}/reconfigure")

        async def received() -> bool:
            return bool(writes and console)

        await until(received)
        assert writes == [(1, ["on"])] and console == ["config start"]
        await api.delete(f"/api/devices/{device['id']}")
    reason = await asyncio.wait_for(serving, 5)
    assert "closed" in reason
    again = CloudLink(settings(request["token"], cloud.gateway[1], template_id))
    with pytest.raises(LinkError) as failure:
        await again.open(timeout=5)
    assert failure.value.code == 703


async def test_link_failures_carry_the_right_codes(cloud: RunningCloud, tmp_path: Path) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    cases = [
        (LinkSettings(token=request["token"], host="nonexistent.invalid", port=80), 710),
        (settings(request["token"], free_port()), 702),  # nothing listens there
        (settings("A" * 32, cloud.gateway[1]), 703),
    ]
    for link_settings, code in cases:
        with pytest.raises(LinkError) as failure:
            await CloudLink(link_settings).open(timeout=5)
        assert failure.value.code == code, (code, str(failure.value))


async def test_link_rejects_an_untrusted_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")  # chained to a CA the link does not trust by default
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        link = CloudLink(LinkSettings(token="A" * 32, host="127.0.0.1", port=None, port_ssl=port))
        with pytest.raises(LinkError) as failure:
            await link.open(timeout=5)
        assert failure.value.code == 711
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        trusting = CloudLink(
            LinkSettings(
                token="A" * 32,
                host="127.0.0.1",
                port=None,
                port_ssl=port,
                ca_file=str(tmp_path / "ca.pem"),
            )
        )
        with pytest.raises(LinkError) as failure:
            await trusting.open(timeout=1)
        assert failure.value.code == 702  # TLS accepted; the silent server never answers login
    finally:
        server.close()


async def test_link_follows_a_redirect(cloud: RunningCloud) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    link = CloudLink(settings(request["token"], cloud.gateway[1], template_id))
    await link.open(timeout=5)
    serving = asyncio.create_task(link.run())
    async with cloud.client(cloud.owner_token) as api:
        claim = (await api.get(f"/api/provisioning/{request['id']}?wait=10")).json()
        device_id = claim["device_id"]

        async def online() -> bool:
            return bool((await api.get(f"/api/devices/{device_id}")).json()["online"])

        await until(online)
        # Send it to the same gateway under another address: it must log in again there.
        reply = await api.post(
            f"/api/devices/{device_id}/redirect",
            json={"host": "localhost", "port": cloud.gateway[1]},
        )
        assert reply.status_code == 202
        async with asyncio.timeout(5):
            while link.host != "localhost":
                await asyncio.sleep(0.01)
        await until(online)
    assert not serving.done()
    link.virtual_write(9, "after redirect")
    async with cloud.client(cloud.owner_token) as api:

        async def stored() -> bool:
            pins = (await api.get(f"/api/devices/{device_id}/pins")).json()
            return bool(pins.get("V9") == ["after redirect"])

        await until(stored)
    await link.close()
    await asyncio.wait_for(serving, 5)


# --- a scripted cloud on a real socket: bad frames, meta, console replies ---------------------


class CloudSide:
    """One connection accepted by ScriptedCloud: every frame the device sends is visible."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = blynk.Decoder(65535)
        self.frames: list[blynk.Frame] = []
        self.raw = bytearray()

    async def recv(self, timeout: float = 5.0) -> blynk.Frame | None:
        async with asyncio.timeout(timeout):
            while not self.frames:
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.raw += data
                self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    async def login(self, status: int = Status.OK) -> list[blynk.Frame]:
        """Answer the device's login; the frames it sent (HW_LOGIN, then its info)."""
        hello = await self.recv()
        assert hello is not None and hello.command == Command.HW_LOGIN and hello.msg_id == 1
        self.send(blynk.encode_response(1, status))
        info = await self.recv()
        assert info is not None and info.command == Command.INTERNAL
        return [hello, info]

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def closed_by_device(self, timeout: float = 5.0) -> bool:
        """Whether the device closed its end (it reads EOF here) within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True


class ScriptedCloud:
    def __init__(self) -> None:
        self.accepted: asyncio.Queue[CloudSide] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedCloud:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.accepted.put(CloudSide(reader, writer))

    async def next(self) -> CloudSide:
        return await asyncio.wait_for(self.accepted.get(), 5)

    def settings(self, **kw: object) -> LinkSettings:
        return LinkSettings(
            token="T" * 32,
            host="127.0.0.1",
            port=self.port,
            info=INFO,
            **kw,  # type: ignore[arg-type]
        )

    async def connect(
        self, link: CloudLink, status: int = Status.OK
    ) -> tuple[CloudSide, list[blynk.Frame]]:
        opening = asyncio.create_task(link.open(timeout=5))
        side = await self.next()
        frames = await side.login(status)
        await opening
        return side, frames


def redirect(body: bytes) -> bytes:
    return blynk.encode_body(Command.REDIRECT, 7, body)


HUGE_LABEL = "a" * 64 + ".example"  # IDNA refuses a label over 63 characters

BAD_FRAMES = {
    "redirect-port-not-a-number": (redirect(b"cloud.example\0eighty"), "unusable port"),
    "redirect-port-empty": (redirect(b"cloud.example\0"), "unusable port"),
    "redirect-port-zero": (redirect(b"cloud.example\x000"), "unusable port"),
    "redirect-port-too-big": (redirect(b"cloud.example\x0070000"), "unusable port"),
    "redirect-port-negative": (redirect(b"cloud.example\0-1"), "unusable port"),
    "redirect-port-unicode-digit": (redirect("h\0٨٠".encode()), "unusable port"),
    "redirect-no-body": (redirect(b""), "0 arguments"),
    "redirect-host-empty": (redirect(b"\x008442"), "unusable host"),
    "redirect-host-with-nul": (redirect(b"cloud\0.example\x008442"), "3 arguments"),
    "redirect-host-with-space": (redirect(b"cloud example\x008442"), "unusable host"),
    "redirect-host-control": (redirect(b"cloud\x01\x008442"), "unusable host"),
    "redirect-not-utf8": (redirect(b"\xff\xfe\x008442"), "not UTF-8"),
    "redirect-unresolvable": (redirect(b"nonexistent.invalid\x008442"), "cannot resolve"),
    "redirect-idna-refuses": (redirect(HUGE_LABEL.encode() + b"\x008442"), "cannot resolve"),
    "hardware-not-utf8": (blynk.encode_body(Command.HARDWARE, 3, b"vw\x001\0\xff"), "not UTF-8"),
    "internal-not-utf8": (blynk.encode_body(Command.INTERNAL, 3, b"dbg\0\xc3"), "not UTF-8"),
    "unexpected-property": (blynk.encode(Command.PROPERTY, 3, 1, "label", "x"), "command 19"),
    "unexpected-login": (blynk.encode(Command.LOGIN, 3, "x"), "command 2"),
    "unknown-command": (blynk.encode(99, 3, "x"), "command 99"),
    "msg-id-zero": (b"\x06\x00\x00\x00\x00", "msg_id 0"),
    "body-over-buff-in": (b"\x14\x00\x03\x10\x00", "exceeds the limit"),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_a_bad_frame_ends_the_link_logged_and_the_next_connection_works(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    frame, why = BAD_FRAMES[name]
    caplog.set_level(logging.INFO, "wifiprov.device.link")
    async with ScriptedCloud() as cloud:
        link = CloudLink(cloud.settings())
        side, _ = await cloud.connect(link)
        serving = asyncio.create_task(link.run())
        side.send(frame)
        reason = await asyncio.wait_for(serving, 10)  # returned, not raised
        assert why in reason, reason
        assert why in caplog.text  # logged, with the reason
        assert await side.closed_by_device()  # its socket closed: no CLOSE-WAIT left behind
        assert link.host == "127.0.0.1" or "redirect" in name
        # The caller reconnects: a new link to the same cloud logs in and serves.
        again = CloudLink(cloud.settings())
        side2, _ = await cloud.connect(again)
        serving2 = asyncio.create_task(again.run())
        side2.send(blynk.encode(Command.PING, 5))
        pong = await side2.recv()
        assert pong is not None and (pong.command, pong.msg_id, pong.status) == (0, 5, 200)
        await again.close()
        assert "closed" in await asyncio.wait_for(serving2, 5)


async def test_a_redirect_to_a_closed_port_or_a_silent_server_is_a_lost_link() -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    try:
        async with ScriptedCloud() as cloud:
            for port, why in [(free_port(), "cannot connect"), (silent_port, "no answer")]:
                link = CloudLink(cloud.settings())
                side, _ = await cloud.connect(link)
                with patch("wifiprov.device.link.LOGIN_TIMEOUT", 0.5):
                    serving = asyncio.create_task(link.run())
                    side.send(blynk.encode(Command.REDIRECT, 3, "127.0.0.1", port))
                    reason = await asyncio.wait_for(serving, 5)
                assert f"redirect to 127.0.0.1:{port} failed" in reason and why in reason, reason
                assert await side.closed_by_device()
    finally:
        silent.close()


async def test_a_reset_connection_is_a_lost_link() -> None:
    async with ScriptedCloud() as cloud:
        link = CloudLink(cloud.settings())
        side, _ = await cloud.connect(link)
        serving = asyncio.create_task(link.run())
        sock = side.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        side.writer.transport.abort()  # RST, not FIN
        reason = await asyncio.wait_for(serving, 5)  # returned, not raised
        assert reason == "connection failed: [Errno 104] Connection reset by peer", reason


async def test_a_failing_callback_does_not_end_the_link(caplog: pytest.LogCaptureFixture) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("handler bug")

    async with ScriptedCloud() as cloud:
        link = CloudLink(cloud.settings(), LinkCallbacks(on_write=explode, on_console=explode))
        side, _ = await cloud.connect(link)
        serving = asyncio.create_task(link.run())
        side.send(blynk.encode(Command.HARDWARE, 3, "vw", 1, "on"))
        side.send(blynk.encode(Command.INTERNAL, 4, "dbg", "status"))
        side.send(blynk.encode(Command.HARDWARE, 5, "vw", "²", "on"))  # not an ASCII pin: ignored
        side.send(blynk.encode(Command.PING, 6))
        pong = await side.recv()
        assert pong is not None and (pong.msg_id, pong.status) == (6, 200)
        failures = [r.getMessage() for r in caplog.records if r.exc_info]
        assert failures == ["a cloud link callback failed"] * 2
        assert not serving.done()
        await link.close()
        await asyncio.wait_for(serving, 5)


async def test_a_bad_redirect_at_login_is_a_link_error() -> None:
    async with ScriptedCloud() as cloud:
        link = CloudLink(cloud.settings())
        opening = asyncio.create_task(link.open(timeout=5))
        side = await cloud.next()
        assert (await side.recv()) is not None
        side.send(redirect(b"cloud.example\0eighty"))
        with pytest.raises(LinkError) as failure:
            await opening
        assert failure.value.code == 705 and "unusable port" in str(failure.value)
        assert await side.closed_by_device()


def test_redirect_arguments() -> None:
    assert parse_redirect(["cloud.example", "8442"], 80) == ("cloud.example", 8442)
    assert parse_redirect(["cloud.example"], 443) == ("cloud.example", 443)  # C++: default port
    for args in ([], [""], ["a", ""], ["a", "0"], ["a", "65536"], ["a", " 80"], ["a", "8", "0"]):
        with pytest.raises(BadFrame):
            parse_redirect(args, 80)


async def test_meta_is_sent_after_login_as_edgent_does_and_not_again_after_a_redirect() -> None:
    uid = "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b"
    meta = edgent_meta(uid, "Blynk Thermostat-W8FH")
    assert list(meta) == ["Device UID", "Hotspot Name"]  # Edgent-Arduino's order
    async with ScriptedCloud() as cloud:
        link = CloudLink(cloud.settings(meta=meta))
        side, frames = await cloud.connect(link)
        expected = blynk.encode(
            Command.INTERNAL, 3, "meta", "set", "Device UID", uid
        ) + blynk.encode(
            Command.INTERNAL, 4, "meta", "set", "Hotspot Name", "Blynk Thermostat-W8FH"
        )
        assert expected == (
            b"\x11\x00\x03\x00\x38meta\0set\0Device UID\0"
            + uid.encode()
            + b"\x11\x00\x04\x00\x2bmeta\0set\0Hotspot Name\0Blynk Thermostat-W8FH"
        )
        async with asyncio.timeout(5):
            while len(side.raw) < sum(len(blynk.encode_frame(f)) for f in frames) + len(expected):
                side.raw += await side.reader.read(65536)
        assert bytes(side.raw).endswith(expected)
        serving = asyncio.create_task(link.run())
        side.send(blynk.encode(Command.REDIRECT, 3, "127.0.0.1", cloud.port))
        side2 = await cloud.next()
        await side2.login()
        side2.send(blynk.encode(Command.PING, 9))
        pong = await side2.recv()  # nothing between the info message and the answer to PING
        assert pong is not None and (pong.command, pong.msg_id) == (Command.RESPONSE, 9)
        await link.close()
        await asyncio.wait_for(serving, 5)


async def test_a_console_reply_travels_back_as_internal_dbg() -> None:
    async with ScriptedCloud() as cloud:
        link = CloudLink(cloud.settings())
        side, _ = await cloud.connect(link)
        link.send_console_reply('{"status":"OK","msg":"rebooting wifi module"}\n')
        frame = await side.recv()
        assert frame is not None
        assert blynk.encode_frame(frame) == (
            b"\x11\x00\x03\x00\x31dbg\0" + b'{"status":"OK","msg":"rebooting wifi module"}'
        )
        lines = [f"  net{i:03} [aa:bb:cc:dd:ee:ff] WPA2 ch:6 rssi:-50" for i in range(60)]
        link.send_console_reply("\n".join(lines) + "\n")
        parts: list[str] = []
        while sum(p.count("\n") + 1 for p in parts) < len(lines):
            part = await side.recv()
            assert part is not None and part.command == Command.INTERNAL
            assert len(part.body) <= len(b"dbg\0") + CONSOLE_CHUNK
            parts.append(part.text_args()[1])
        assert "\n".join(parts).split("\n") == lines  # split between lines, nothing lost
        link.send_console_reply("")  # nothing to send
        await link.close()
        link.send_console_reply("after close")  # the link is down: dropped, no error


def test_console_chunks() -> None:
    assert console_chunks("", 10) == []
    assert console_chunks("a\nb\n", 10) == ["a\nb"]
    assert console_chunks("abc\ndef\nghi", 8) == ["abc\ndef", "ghi"]
    assert console_chunks("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert console_chunks("é" * 6, 5) == ["éé", "éé", "éé"]  # never half a character
