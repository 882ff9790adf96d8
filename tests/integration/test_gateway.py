"""The device gateway over real TCP: handshakes byte for byte, bad input, faults."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from tests.conftest import RunningCloud
from tests.integration.support import (
    CPP_INFO,
    RawDevice,
    online_device,
    provisioning_token,
    template,
    until,
    with_template,
)
from wifiprov.wire import blynk
from wifiprov.wire.blynk import Command, Status


async def test_cpp_handshake_transcript(cloud: RunningCloud) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    token = request["token"].encode()
    dev = await RawDevice.connect(cloud.gateway)
    await dev.send_raw(b"\x1d\x00\x01\x00\x20" + token)
    assert await dev.read_raw(5) == b"\x00\x00\x01\x00\xc8"
    info = b"\0".join(a.encode() for a in with_template(CPP_INFO, template_id))
    await dev.send_raw(b"\x11\x00\x02" + len(info).to_bytes(2, "big") + info)
    assert await dev.read_raw(5) == b"\x00\x00\x02\x00\xc8"
    await dev.send_raw(b"\x06\x00\x03\x00\x00")  # PING
    assert await dev.read_raw(5) == b"\x00\x00\x03\x00\xc8"
    await dev.send_raw(b"\x14\x00\x04\x00\x07vw\x001\x0042")  # HARDWARE vw 1 42
    await dev.send_raw(b"\x10\x00\x05\x00\x04vr\x001")  # HARDWARE_SYNC vr 1
    assert await dev.read_raw(12) == b"\x14\x00\x05\x00\x07vw\x001\x0042"
    await cloud.cloud.writer.flush()  # info is written behind (0.2 s batches)
    async with cloud.client(cloud.owner_token) as api:
        device = (await api.get(f"/api/devices/{request['id']}")).json()
    assert device["info"]["firmware_version"] == "0.1.0"
    assert device["info"]["library_version"] == "1.4.0"
    assert device["info"]["heartbeat"] == "40"
    assert device["info"]["board"] == "ESP32"
    assert device["online"] is True
    dev.close()


async def test_sync_sees_a_value_whose_write_is_under_way(cloud: RunningCloud) -> None:
    """A value the device wrote is answered by a sync even while a flush is writing it (it is
    then neither pending nor committed: the race CI once hit)."""
    _, _, dev = await online_device(cloud)
    writer = cloud.cloud.writer
    await writer.flush()
    held, release = asyncio.Event(), asyncio.Event()
    real_write = writer._write

    async def slow_write(values: dict[object, object], *rest: object) -> None:
        if values:  # the write that carries the value: hold it half-way
            held.set()
            await release.wait()
        await real_write(values, *rest)  # type: ignore[arg-type]

    writer._write = slow_write  # type: ignore[method-assign,assignment]
    try:
        await dev.send(Command.HARDWARE, 3, "vw", "1", "42")
        # the writer's own 0.2 s flush (or this one) takes the value and is held writing it
        flushing = asyncio.create_task(writer.flush())
        await asyncio.wait_for(held.wait(), 5)
        await dev.send(Command.HARDWARE_SYNC, 4, "vr", "1")
        frame = await dev.recv()
        assert frame is not None and frame.text_args() == ["vw", "1", "42"]
    finally:
        release.set()
        writer._write = real_write  # type: ignore[method-assign]
    await flushing
    dev.close()


async def test_legacy_login_and_older_info_keys(cloud: RunningCloud) -> None:
    older = [
        "ver",
        "0.6.1",
        "h-beat",
        "45",
        "buff-in",
        "1024",
        "dev",
        "ESP8266",
        "fw-type",
        "TMPLold",
        "fw",
        "1.2.3",
        "build",
        "Jan 1 2020",
        "tmpl",
        "TMPLold",
        "",
    ]
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    dev = await RawDevice.connect(cloud.gateway)
    assert await dev.login(request["token"], Command.LOGIN) == Status.OK
    await dev.send(Command.INTERNAL, 2, *with_template(older, template_id))
    assert (await dev.recv()).status == Status.OK  # type: ignore[union-attr]
    async with cloud.client(cloud.owner_token) as api:

        async def reported() -> bool:
            info = (await api.get("/api/devices")).json()[0]["info"]
            return bool(info.get("firmware_version") == "1.2.3")

        await until(reported)
        info = (await api.get("/api/devices")).json()[0]["info"]
    assert info["library_version"] == "0.6.1" and info["buffer_in"] == "1024"
    dev.close()


async def test_unknown_token_gets_9_and_expired_token_too(cloud: RunningCloud) -> None:
    dev = await RawDevice.connect(cloud.gateway)
    assert await dev.login("x" * 32) == Status.INVALID_TOKEN
    assert await dev.wait_closed()
    dev = await RawDevice.connect(cloud.gateway)
    assert await dev.login("short") == Status.INVALID_TOKEN
    cloud.cloud.settings.provisioning_ttl = 0.0  # the next token expires at once
    request = await provisioning_token(cloud, await template(cloud))
    dev = await RawDevice.connect(cloud.gateway)
    assert await dev.login(request["token"]) == Status.INVALID_TOKEN
    async with cloud.client(cloud.owner_token) as api:
        status = (await api.get(f"/api/provisioning/{request['id']}")).json()
    assert status["status"] == "expired" and status["device_id"] is None


async def test_provisioning_token_claims_one_device_only(cloud: RunningCloud) -> None:
    device_id, token, first = await online_device(cloud)
    # The same token is now the device's own: a new connection replaces the old one...
    second = await RawDevice.connect(cloud.gateway)
    assert await second.login(token) == Status.OK
    assert await first.wait_closed()
    async with cloud.client(cloud.owner_token) as api:
        assert len((await api.get("/api/devices")).json()) == 1
    # ...and a second login on a live connection is refused with ALREADY_REGISTERED.
    await second.send(Command.HW_LOGIN, 2, token)
    assert (await second.recv()).status == Status.ALREADY_REGISTERED  # type: ignore[union-attr]
    second.close()


async def test_msg_id_zero_closes_the_connection(cloud: RunningCloud) -> None:
    _, _, dev = await online_device(cloud)
    await dev.send_raw(b"\x06\x00\x00\x00\x00")
    assert await dev.wait_closed()


async def test_length_over_limit_closes_before_the_body_arrives(cloud: RunningCloud) -> None:
    _, _, dev = await online_device(cloud)
    await dev.send_raw(b"\x14\x00\x05\xff\xff")  # announces 65535 bytes, sends none
    assert await dev.wait_closed()


async def test_malformed_bodies_get_an_error_and_the_connection_survives(
    cloud: RunningCloud,
) -> None:
    _, _, dev = await online_device(cloud)
    await dev.send_raw(blynk.encode_body(Command.HARDWARE, 7, b"vw\x001\x00\xff\xfe"))
    assert (await dev.recv()).status == Status.ILLEGAL_COMMAND_BODY  # type: ignore[union-attr]
    await dev.send(Command.HARDWARE, 8, "vw", "not-a-pin", "1")
    assert (await dev.recv()).status == Status.ILLEGAL_COMMAND_BODY  # type: ignore[union-attr]
    await dev.send(99, 9, "what")
    assert (await dev.recv()).status == Status.ILLEGAL_COMMAND  # type: ignore[union-attr]
    await dev.send(Command.PING, 10)
    assert (await dev.recv()).status == Status.OK  # type: ignore[union-attr]
    dev.close()


async def test_pin_writes_in_one_read_keep_their_order_and_answers(cloud: RunningCloud) -> None:
    """Pin writes arriving together (one read) take the gateway's fast path when plain, the
    full one otherwise (non-ASCII values, a pin written "07", a pin out of range); the newest
    write to a pin wins whichever path it took, a sync in the middle sees them, and the
    database ends with the same values."""
    device_id, _, dev = await online_device(cloud)
    frames = [
        blynk.encode(Command.HARDWARE, 10, "vw", "1", "plain"),
        blynk.encode(Command.HARDWARE, 11, "vw", "1", "café"),  # non-ASCII: the full path
        blynk.encode(Command.HARDWARE, 12, "vw", "2", "a", "b"),
        blynk.encode(Command.HARDWARE, 13, "vw", "07", "seven"),  # int("07"): the full path
        blynk.encode(Command.HARDWARE, 14, "vw", "3", "old"),
        blynk.encode(Command.HARDWARE_SYNC, 15, "vr", "1", "2", "3", "7"),
        blynk.encode(Command.HARDWARE, 16, "vw", "3", "new"),
        blynk.encode(Command.HARDWARE, 17, "vw", "256", "x"),  # out of range
        blynk.encode(Command.HARDWARE, 18, "vw", "4", ""),
        blynk.encode(Command.PING, 19),
    ]
    await dev.send_raw(b"".join(frames))
    synced, answers = {}, {}
    while len(synced) < 4 or 19 not in answers:  # the sync reads the database: any order
        frame = await dev.recv()
        assert frame is not None
        if frame.command == Command.HARDWARE:
            assert frame.msg_id == 15
            args = frame.text_args()
            synced[args[1]] = args[2:]
        else:
            answers[frame.msg_id] = frame.status
    # the sync answers the newest values: V3's second write came in the same read
    assert synced == {"1": ["café"], "2": ["a", "b"], "3": ["new"], "7": ["seven"]}
    assert answers == {17: Status.ILLEGAL_COMMAND_BODY, 19: Status.OK}
    await cloud.cloud.writer.flush()
    async with cloud.client(cloud.owner_token) as api:
        pins = (await api.get(f"/api/devices/{device_id}/pins")).json()
    assert pins == {"V1": ["café"], "V2": ["a", "b"], "V3": ["new"], "V4": [""], "V7": ["seven"]}
    dev.close()


async def test_garbage_before_login_and_silence_are_closed(cloud: RunningCloud) -> None:
    dev = await RawDevice.connect(cloud.gateway)
    await dev.send(Command.HARDWARE, 1, "vw", "1", "1")
    assert (await dev.recv()).status == Status.NOT_AUTHENTICATED  # type: ignore[union-attr]
    assert await dev.wait_closed()
    silent = await RawDevice.connect(cloud.gateway)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await silent.wait_closed(timeout=10)
    assert loop.time() - started >= cloud.cloud.settings.login_timeout * 0.9


async def test_heartbeat_timeout_follows_the_devices_h_beat(cloud: RunningCloud) -> None:
    info = [*CPP_INFO]
    info[info.index("h-beat") + 1] = "1"
    device_id, _, dev = await online_device(cloud, info)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await dev.wait_closed(timeout=10)
    assert 2.0 <= loop.time() - started <= 6.0  # 1 s x 2.3, checked once a second
    async with cloud.client(cloud.owner_token) as api:

        async def offline() -> bool:
            return not (await api.get(f"/api/devices/{device_id}")).json()["online"]

        await until(offline)
        device = (await api.get(f"/api/devices/{device_id}")).json()
    # The API says why the cloud let it go, and where it last connected from.
    assert device["last_error"].startswith("heartbeat timeout (")
    assert device["last_ip"] == "127.0.0.1"


async def test_token_guessing_is_throttled_per_address_without_hurting_others(
    cloud: RunningCloud,
) -> None:
    limit = cloud.cloud.settings.throttle_failures
    for i in range(limit):
        guess = await RawDevice.connect(cloud.gateway, source="127.0.0.2")
        assert await guess.login(f"{i:032d}") == Status.INVALID_TOKEN
    blocked = await RawDevice.connect(cloud.gateway, source="127.0.0.2")
    await blocked.send(Command.HW_LOGIN, 1, "0" * 32)
    assert await blocked.recv() is None  # closed without an answer, and certainly not 9
    # A device from another address is unaffected.
    request = await provisioning_token(cloud, await template(cloud))
    good = await RawDevice.connect(cloud.gateway, source="127.0.0.3")
    assert await good.login(request["token"]) == Status.OK
    good.close()


async def test_a_device_that_stops_reading_is_dropped_with_bounded_memory(
    cloud: RunningCloud,
) -> None:
    device_id, _, dev = await online_device(cloud, rcvbuf=4096)
    other_id, _, other = await online_device(cloud)
    gateway = cloud.cloud.gateway
    conn = gateway.sessions[device_id]
    # The device never reads (past its small buffers); the cloud keeps sending.
    for _ in range(50_000):
        if conn.state.name == "CLOSED":
            break
        conn.deliver(Command.HARDWARE, ["vw", 1, "x" * 200])
        assert conn.transport is None or conn.transport.get_write_buffer_size() < 2**20
        await asyncio.sleep(0)
    assert conn.state.name == "CLOSED"
    await other.send(Command.PING, 3)
    assert (await other.recv()).status == Status.OK  # type: ignore[union-attr]
    assert gateway.sessions.get(other_id) is not None
    dev.close()
    other.close()


async def test_redirect_reaches_the_device(cloud: RunningCloud) -> None:
    device_id, _, dev = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        reply = await api.post(
            f"/api/devices/{device_id}/redirect", json={"host": "other.example", "port": 8442}
        )
    assert reply.status_code == 202
    frame = await dev.recv()
    assert frame is not None and frame.command == Command.REDIRECT
    assert frame.body == b"other.example\x008442"
    dev.close()


async def test_events_properties_and_rtc(cloud: RunningCloud) -> None:
    device_id, _, dev = await online_device(cloud)
    await dev.send(Command.INTERNAL, 3, "rtc", "sync")
    frame = await dev.recv()
    assert frame is not None and frame.command == Command.INTERNAL
    assert frame.text_args()[0] == "rtc" and int(frame.text_args()[1]) > 1_700_000_000
    await dev.send(Command.EVENT_LOG, 4, "overheat", "92 C")
    await dev.send(Command.PROPERTY, 5, "1", "label", "Temperature")
    await dev.send(Command.PING, 6)
    assert (await dev.recv()).status == Status.OK  # type: ignore[union-attr]
    await cloud.cloud.writer.flush()
    from sqlalchemy import select

    from wifiprov.cloud.db.schema import device_events, pin_properties

    async with cloud.cloud.db.begin() as conn:
        event = (await conn.execute(select(device_events))).one()
        prop = (await conn.execute(select(pin_properties))).one()
    assert (event.device_id, event.code, event.description) == (device_id, "overheat", "92 C")
    assert (prop.pin, prop.name, prop.value) == (1, "label", "Temperature")
    dev.close()


async def test_a_burst_of_logins_is_checked_in_few_queries(cloud: RunningCloud) -> None:
    from sqlalchemy import event

    from wifiprov.cloud.db.schema import devices
    from wifiprov.cloud.tokens import new_token

    template_id = await template(cloud)
    tokens = [new_token() for _ in range(200)]
    async with cloud.cloud.db.begin() as conn:
        await conn.execute(
            devices.insert(),
            [
                {
                    "org_id": cloud.org_id,
                    "template_id": template_id,
                    "name": f"d{i}",
                    "token_hash": cloud.cloud.hasher(t),
                    "token_last4": t[-4:],
                    "created_at": 0.0,
                    "info": "{}",
                }
                for i, t in enumerate(tokens)
            ],
        )
    lookups: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM devices" in statement:
            lookups.append(statement)

    engine = cloud.cloud.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        conns = [await RawDevice.connect(cloud.gateway) for _ in tokens]
        wrong = [await RawDevice.connect(cloud.gateway, source="127.0.0.9") for _ in range(3)]
        statuses = await asyncio.gather(
            *(d.login(t) for d, t in zip(conns, tokens, strict=True)),
            *(d.login(f"{i:032d}") for i, d in enumerate(wrong)),
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statuses == [Status.OK] * len(tokens) + [Status.INVALID_TOKEN] * 3
    assert len(lookups) < len(tokens) / 4, len(lookups)
    assert len(cloud.cloud.gateway.sessions) == len(tokens)
    for d in conns:
        d.close()


async def test_utc_is_answered_as_blynks_time_api(cloud: RunningCloud) -> None:
    cloud.cloud.gateway.time_zone = "Europe/Kyiv"
    _, _, dev = await online_device(cloud)
    answers = {}
    for msg_id, what in enumerate(["time", "iso", "tz", "tz_name", "tz_rule", "dst_next"], 3):
        await dev.send(Command.INTERNAL, msg_id, "utc", what)
        frame = await dev.recv()
        assert frame is not None and frame.command == Command.INTERNAL, frame
        assert frame.msg_id == msg_id
        args = frame.text_args()
        assert args[:2] == ["utc", what]
        answers[what] = args[2:]
    now = time.time()
    assert abs(int(answers["time"][0]) / 1000 - now) < 5
    standard, dst = (int(x) for x in answers["tz"])
    assert standard == 120 and dst in (0, 60)
    local = dt.datetime.fromisoformat(answers["iso"][0])
    assert abs(local.timestamp() - now) < 5
    assert local.utcoffset() == dt.timedelta(minutes=standard + dst)
    assert answers["tz_name"] == ["Europe/Kyiv"]
    assert answers["tz_rule"] == ["EET-2EEST,M3.5.0/3,M10.5.0/4"]
    changes = [int(x) for x in answers["dst_next"]]
    assert len(changes) == 4 and now < changes[0] < changes[2] < now + 366 * 86400
    assert {changes[1], changes[3]} == {120, 180}
    await dev.send(Command.INTERNAL, 9, "utc", "nonsense")
    assert (await dev.recv()).status == Status.ILLEGAL_COMMAND_BODY  # type: ignore[union-attr]
    dev.close()


async def test_meta_from_the_device_is_kept_and_shown(cloud: RunningCloud) -> None:
    device_id, token, dev = await online_device(cloud)
    uid = "6f1c2d3e-0000-4000-8000-00000000abcd"
    await dev.send(Command.INTERNAL, 3, "meta", "set", "Device UID", uid)
    await dev.send(Command.INTERNAL, 4, "meta", "set", "Hotspot Name", "Blynk Lamp-1A2B")
    async with cloud.client(cloud.owner_token) as api:

        async def stored() -> bool:
            meta = (await api.get(f"/api/devices/{device_id}")).json()["meta"]
            return bool(meta == {"Device UID": uid, "Hotspot Name": "Blynk Lamp-1A2B"})

        await until(stored)
        # A later connection changes one field; the other is kept.
        dev.close()
        again = await RawDevice.connect(cloud.gateway)
        assert await again.login(token) == Status.OK
        await again.send(Command.INTERNAL, 2, "meta", "set", "Hotspot Name", "Blynk Lamp-9Z9Z")

        async def updated() -> bool:
            meta = (await api.get(f"/api/devices/{device_id}")).json()["meta"]
            return bool(meta == {"Device UID": uid, "Hotspot Name": "Blynk Lamp-9Z9Z"})

        await until(updated)
        again.close()


async def test_a_claim_by_firmware_of_another_template_is_refused(cloud: RunningCloud) -> None:
    ours, other = await template(cloud, name="Lamp"), await template(cloud, name="Fan")
    request = await provisioning_token(cloud, ours)
    async with cloud.client(cloud.owner_token) as api:
        poll = asyncio.create_task(api.get(f"/api/provisioning/{request['id']}?wait=20"))
        await asyncio.sleep(0.2)
        dev = await RawDevice.connect(cloud.gateway)
        # The login is answered before the firmware says its template...
        assert await dev.login(request["token"]) == Status.OK
        await dev.send(Command.INTERNAL, 2, *with_template(CPP_INFO, other))
        # ...and the claim is decided with it: refused as an invalid token, and closed.
        assert (await dev.recv()).status == Status.INVALID_TOKEN  # type: ignore[union-attr]
        assert await dev.wait_closed()
        status = (await asyncio.wait_for(poll, 5)).json()
        assert status["status"] == "refused" and status["device_id"] is None
        assert other in status["refused_reason"] and ours in status["refused_reason"]
        assert (await api.get("/api/devices")).json() == []
    # The token stays refused: a later login gets what an invalid token gets.
    again = await RawDevice.connect(cloud.gateway)
    assert await again.login(request["token"]) == Status.INVALID_TOKEN
    assert await again.wait_closed()


async def test_a_claim_is_announced_when_its_connection_closes_at_once(
    cloud: RunningCloud,
) -> None:
    template_id = await template(cloud)
    request = await provisioning_token(cloud, template_id)
    async with cloud.client(cloud.owner_token) as api:
        poll = asyncio.create_task(api.get(f"/api/provisioning/{request['id']}?wait=20"))
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        dev = await RawDevice.connect(cloud.gateway)
        # Login and info in one write, then gone while the cloud is still checking the token.
        await dev.send_raw(
            blynk.encode(Command.HW_LOGIN, 1, request["token"])
            + blynk.encode(Command.INTERNAL, 2, *with_template(CPP_INFO, template_id))
        )
        dev.writer.transport.abort()
        status = (await asyncio.wait_for(poll, 20)).json()
        assert status["status"] == "claimed", status
        assert asyncio.get_running_loop().time() - started < 5  # not the poll's full 20 s
        device = (await api.get(f"/api/devices/{status['device_id']}")).json()
        assert device["reported_template"] == template_id and not device["template_mismatch"]


async def test_a_device_whose_firmware_template_changed_is_flagged(cloud: RunningCloud) -> None:
    device_id, token, dev = await online_device(cloud)
    dev.close()
    other = await template(cloud, name="Fan")
    again = await RawDevice.connect(cloud.gateway)
    assert await again.login(token) == Status.OK  # an existing device is not refused...
    await again.send(Command.INTERNAL, 2, *with_template(CPP_INFO, other))
    assert (await again.recv()).status == Status.OK  # type: ignore[union-attr]
    async with cloud.client(cloud.owner_token) as api:

        async def flagged() -> bool:
            device = (await api.get(f"/api/devices/{device_id}")).json()
            return bool(device["template_mismatch"] and device["reported_template"] == other)

        await until(flagged)  # ...but flagged
    again.close()


async def test_delivered_only_when_a_live_connection_took_it(cloud: RunningCloud) -> None:
    from sqlalchemy import update

    from wifiprov.cloud.db.schema import devices

    device_id, _, dev = await online_device(cloud)
    async with cloud.client(cloud.owner_token) as api:
        reply = (await api.put(f"/api/devices/{device_id}/pins/1", json={"value": "on"})).json()
        assert (reply["delivered"], reply["delivery"]) == (True, "delivered")
        assert reply["node"] == cloud.cloud.settings.node_id
        assert (await dev.recv()).body == b"vw\x001\x00on"  # type: ignore[union-attr]
        dev.close()

        async def offline() -> bool:
            return not (await api.get(f"/api/devices/{device_id}")).json()["online"]

        await until(offline)
        # Presence a dead node left behind: the database says online, no connection exists.
        async with cloud.cloud.db.begin() as conn:
            await conn.execute(
                update(devices).where(devices.c.id == device_id).values(online_node="gone")
            )
        reply = (await api.put(f"/api/devices/{device_id}/pins/1", json={"value": "off"})).json()
        assert (reply["delivered"], reply["delivery"]) == (False, "offline")
        assert "stored" in reply["message"]
        assert (await api.get(f"/api/devices/{device_id}/pins")).json()["V1"] == ["off"]
        reply = await api.post(f"/api/devices/{device_id}/reconfigure")
        assert reply.status_code == 409 and "offline" in reply.json()["message"]
        reply = await api.post(
            f"/api/devices/{device_id}/redirect", json={"host": "other.example", "port": 8442}
        )
        assert reply.status_code == 409 and "offline" in reply.json()["message"]


async def test_input_while_a_login_is_checked_is_bounded(cloud: RunningCloud) -> None:
    """Frames that arrive while the login is being checked are held (and answered once it
    is), up to MAX_HELD; one more closes the connection at once."""
    from wifiprov.cloud.sessions import MAX_HELD

    _, token, first = await online_device(cloud)
    first.close()
    login = blynk.encode(Command.HW_LOGIN, 1, token)
    pings = b"".join(blynk.encode(Command.PING, 2 + i) for i in range(MAX_HELD))
    dev = await RawDevice.connect(cloud.gateway)
    await dev.send_raw(login + pings)  # one write: all of it arrives before the login is answered
    replies = [await dev.recv() for _ in range(MAX_HELD + 1)]
    assert all(r is not None and r.status == Status.OK for r in replies)
    dev.close()
    flood = await RawDevice.connect(cloud.gateway)
    await flood.send_raw(login + pings + blynk.encode(Command.PING, 9999))
    assert await flood.wait_closed()
    flood.close()
