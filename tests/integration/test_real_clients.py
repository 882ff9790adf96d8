"""The PyPI Blynk client libraries, unchanged, against our gateway: login and values both ways."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import BlynkLib
import blynklib

from tests.conftest import RunningCloud
from tests.integration.support import provisioning_token, template, until


def _run_until(step: Any, done: threading.Event, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done.is_set() and time.monotonic() < deadline:
        step()


async def test_blynklib_logs_in_and_exchanges_values(cloud: RunningCloud) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    host, port = cloud.gateway
    received: list[Any] = []
    done = threading.Event()
    client = blynklib.Blynk(request["token"], server=host, port=port)

    @client.handle_event("write V4")
    def on_v4(pin: int, value: list[str]) -> None:
        received.append((pin, value))

    def device() -> None:
        assert client.connect(timeout=10)
        client.virtual_write(3, 42)
        _run_until(client.run, done, 20)
        client.disconnect()

    thread = threading.Thread(target=device)
    thread.start()
    try:
        async with cloud.client(cloud.owner_token) as api:

            async def stored() -> bool:
                devices = (await api.get("/api/devices")).json()
                if not devices:
                    return False
                pins = (await api.get(f"/api/devices/{devices[0]['id']}/pins")).json()
                return bool(pins.get("V3") == ["42"])

            await until(stored, 10)
            device = (await api.get("/api/devices")).json()[0]
            assert device["online"] and device["info"]["library_version"] == "0.2.6"
            assert device["info"]["heartbeat"] == "10"
            reply = await api.put(f"/api/devices/{device['id']}/pins/4", json={"value": "7"})
            assert reply.json()["delivered"] is True

            async def delivered() -> bool:
                return bool(received)

            await until(delivered, 10)
        assert received == [(4, ["7"])]
    finally:
        done.set()
        await asyncio.to_thread(thread.join, 30)


async def test_blynk_library_python_logs_in_and_exchanges_values(cloud: RunningCloud) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    host, port = cloud.gateway
    received: list[Any] = []
    connected = threading.Event()
    done = threading.Event()

    def device() -> None:
        client = BlynkLib.Blynk(request["token"], server=host, port=port)
        client.on("connected", lambda **kw: connected.set())
        client.on("V6", lambda value: received.append(value))
        _run_until(client.run, connected, 10)
        client.virtual_write(2, "hello")
        _run_until(client.run, done, 20)
        client.conn.close()

    thread = threading.Thread(target=device)
    thread.start()
    try:
        async with cloud.client(cloud.owner_token) as api:

            async def stored() -> bool:
                devices = (await api.get("/api/devices")).json()
                if not devices:
                    return False
                pins = (await api.get(f"/api/devices/{devices[0]['id']}/pins")).json()
                return bool(pins.get("V2") == ["hello"])

            await until(stored, 10)
            device = (await api.get("/api/devices")).json()[0]
            assert device["info"]["library_version"] == "0.2.0"
            await api.put(f"/api/devices/{device['id']}/pins/6", json={"value": ["1", "2"]})

            async def delivered() -> bool:
                return bool(received)

            await until(delivered, 10)
        assert received == [["1", "2"]]
    finally:
        done.set()
        await asyncio.to_thread(thread.join, 30)


async def test_blynklib_with_an_unknown_token_is_told_invalid(cloud: RunningCloud) -> None:
    host, port = cloud.gateway
    client = blynklib.Blynk("Z" * 32, server=host, port=port)

    def handshake() -> str:
        client._get_socket()  # the steps of client.connect(), without its retry loop
        try:
            client._authenticate()
        except blynklib.BlynkError as exc:
            return str(exc)
        finally:
            client._socket.close()
        return "logged in"

    assert await asyncio.to_thread(handshake) == "Invalid Auth Token"


async def test_blynklib_gets_the_time_and_time_zone(cloud: RunningCloud) -> None:
    """Blynk's time API (INTERNAL ``utc``), as blynk-library-python 1.0's
    ``05_utc_and_timezone`` example and the C++ TimeAndLocation example ask it."""
    cloud.cloud.gateway.time_zone = "Europe/Kyiv"
    request = await provisioning_token(cloud, await template(cloud))
    host, port = cloud.gateway
    answers: dict[str, list[str]] = {}
    done = threading.Event()
    client = blynklib.Blynk(request["token"], server=host, port=port)

    @client.handle_event("internal_utc")
    def on_utc(value: list[str]) -> None:
        answers[value[0]] = value[1:]

    def device() -> None:
        assert client.connect(timeout=10)
        for what in ("time", "tz_name", "tz", "iso"):
            # blynklib parses one message per read: one question at a time.
            client.internal("utc", what)
            deadline = time.monotonic() + 5
            while what not in answers and time.monotonic() < deadline:
                client.run()
        _run_until(client.run, done, 20)
        client.disconnect()

    thread = threading.Thread(target=device)
    before = time.time()
    thread.start()
    try:

        async def answered() -> bool:
            return len(answers) == 4

        await until(answered, 10)
    finally:
        done.set()
        await asyncio.to_thread(thread.join, 30)
    assert before - 1 <= int(answers["time"][0]) / 1000 <= time.time() + 1
    assert answers["tz_name"] == ["Europe/Kyiv"]
    standard, dst = (int(x) for x in answers["tz"])
    assert standard == 120 and dst in (0, 60)
    assert answers["iso"][0].endswith("+02:00" if dst == 0 else "+03:00")


async def test_blynk_library_python_gets_the_time(cloud: RunningCloud) -> None:
    request = await provisioning_token(cloud, await template(cloud))
    host, port = cloud.gateway
    got: list[Any] = []
    connected = threading.Event()
    done = threading.Event()

    def device() -> None:
        client = BlynkLib.Blynk(request["token"], server=host, port=port)
        client.on("connected", lambda **kw: connected.set())
        client.on("int_time", lambda value: got.append(value))  # 0.2.0's name for utc time
        _run_until(client.run, connected, 10)
        client._send(BlynkLib.MSG_INTERNAL, "utc", "time")  # 1.0: client.send_internal(...)
        _run_until(client.run, done, 20)
        client.conn.close()

    thread = threading.Thread(target=device)
    thread.start()
    try:

        async def answered() -> bool:
            return bool(got)

        await until(answered, 10)
    finally:
        done.set()
        await asyncio.to_thread(thread.join, 30)
    assert abs(int(got[0][0]) / 1000 - time.time()) < 5
