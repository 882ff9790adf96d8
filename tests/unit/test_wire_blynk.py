"""Unit tests for wifiprov.wire.blynk: the Blynk device protocol (PROTOCOLS.md section 4)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from wifiprov.wire.blynk import (
    DEFAULT_MAX_BODY,
    HEADER_SIZE,
    INFO_KEYS,
    MAX_MSG_ID,
    Command,
    Decoder,
    Frame,
    ProtocolError,
    Status,
    encode,
    encode_body,
    encode_frame,
    encode_response,
    int_or,
    is_info,
    join_args,
    next_msg_id,
    parse_info,
    split_args,
)

TOKEN = "0123456789abcdefABCDEF_-ghijklmn"  # 32 chars of [A-Za-z0-9_-]

# The current C++ library's info message (msg_id 2, right after the login with msg_id 1),
# written out by hand: INTERNAL (0x11), msg_id 0x0002, length 111 (0x006f).
CPP_INFO_ARGS = [
    "mcu", "0.1.0",
    "fw-type", "TMPLxxxx",
    "build", "Apr 25 2026 10:00:00",
    "blynk", "1.4.0",
    "h-beat", "40",
    "buff-in", "256",
    "dev", "ESP32",
    "tmpl", "TMPLxxxx",
]  # fmt: skip
CPP_INFO_BYTES = (
    b"\x11\x00\x02\x00\x6f"
    b"mcu\x00" b"0.1.0\x00"
    b"fw-type\x00" b"TMPLxxxx\x00"
    b"build\x00" b"Apr 25 2026 10:00:00\x00"
    b"blynk\x00" b"1.4.0\x00"
    b"h-beat\x00" b"40\x00"
    b"buff-in\x00" b"256\x00"
    b"dev\x00" b"ESP32\x00"
    b"tmpl\x00" b"TMPLxxxx"
)  # fmt: skip
CPP_INFO_PARSED = {
    "firmware_version": "0.1.0",
    "firmware_type": "TMPLxxxx",
    "build": "Apr 25 2026 10:00:00",
    "library_version": "1.4.0",
    "heartbeat": "40",
    "buffer_in": "256",
    "board": "ESP32",
    "template_id": "TMPLxxxx",
}

# Older C++ libraries: `ver` is the library version, `fw` the firmware version, and the body ends
# with a NUL, i.e. a trailing empty argument.
OLD_INFO_ARGS = [
    "ver", "0.6.1",
    "h-beat", "10",
    "buff-in", "1024",
    "dev", "ESP8266",
    "fw-type", "TMPLyyyy",
    "fw", "0.2.0",
    "build", "Jan  2 2023 03:04:05",
    "tmpl", "TMPLyyyy",
    "",
]  # fmt: skip
OLD_INFO_PARSED = {
    "library_version": "0.6.1",
    "heartbeat": "10",
    "buffer_in": "1024",
    "board": "ESP8266",
    "firmware_type": "TMPLyyyy",
    "firmware_version": "0.2.0",
    "build": "Jan  2 2023 03:04:05",
    "template_id": "TMPLyyyy",
}

BLYNKLIB_INFO_BYTES = (
    b"\x11\x00\x01\x00\x2b"
    b"ver\x00" b"0.2.6\x00" b"buff-in\x00" b"1024\x00" b"h-beat\x00" b"10\x00" b"dev\x00" b"python"
)  # fmt: skip


def feed_bytewise(decoder: Decoder, data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
    return frames


# --- constants --------------------------------------------------------------------------------


def test_command_values_match_the_protocol() -> None:
    assert {c.name: int(c) for c in Command} == {
        "RESPONSE": 0,
        "LOGIN": 2,
        "PING": 6,
        "BRIDGE": 15,
        "HARDWARE_SYNC": 16,
        "INTERNAL": 17,
        "PROPERTY": 19,
        "HARDWARE": 20,
        "GROUP": 21,
        "HW_LOGIN": 29,
        "REDIRECT": 41,
        "DEBUG_PRINT": 55,
        "EVENT_LOG": 64,
        "EVENT_CLEAR": 65,
    }


def test_status_values_match_the_protocol() -> None:
    assert {s.name: int(s) for s in Status} == {
        "OK": 200,
        "QUOTA_LIMIT": 1,
        "ILLEGAL_COMMAND": 2,
        "NOT_REGISTERED": 3,
        "ALREADY_REGISTERED": 4,
        "NOT_AUTHENTICATED": 5,
        "NOT_ALLOWED": 6,
        "DEVICE_NOT_IN_NETWORK": 7,
        "INVALID_TOKEN": 9,
        "ILLEGAL_COMMAND_BODY": 11,
        "TIMEOUT": 16,
        "DEVICE_WENT_OFFLINE": 18,
        "SERVER_EXCEPTION": 19,
    }


def test_header_is_five_bytes() -> None:
    assert HEADER_SIZE == 5
    assert MAX_MSG_ID == 65535


# --- byte-exact vectors -----------------------------------------------------------------------


def test_hw_login_vector() -> None:
    expected = bytes.fromhex("1d 00 01 00 20") + TOKEN.encode("ascii")
    assert len(expected) == 5 + 32
    assert encode(Command.HW_LOGIN, 1, TOKEN) == expected
    assert encode_body(29, 1, TOKEN.encode()) == expected
    assert encode_frame(Frame(29, 1, TOKEN.encode())) == expected
    assert Decoder().feed(expected) == [Frame(29, 1, TOKEN.encode(), 0)]


def test_legacy_login_vector() -> None:
    expected = bytes.fromhex("02 00 01 00 20") + TOKEN.encode("ascii")
    assert encode(Command.LOGIN, 1, TOKEN) == expected


def test_response_ok_vector() -> None:
    expected = bytes.fromhex("00 00 01 00 c8")
    assert encode_response(1, Status.OK) == expected
    assert encode_response(1, 200) == expected
    assert encode_frame(Frame(Command.RESPONSE, 1, status=200)) == expected
    assert Decoder().feed(expected) == [Frame(0, 1, b"", 200)]


def test_response_invalid_token_vector() -> None:
    assert encode_response(1, Status.INVALID_TOKEN) == bytes.fromhex("00 00 01 00 09")


def test_response_echoes_large_msg_id() -> None:
    assert encode_response(0xABCD, 200) == bytes.fromhex("00 ab cd 00 c8")


def test_blynklib_hardware_vector() -> None:
    assert encode(20, 1, "test", 1234, 745, "abcde") == (
        b"\x14\x00\x01\x00\x13test\x001234\x00745\x00abcde"
    )


def test_ping_vector() -> None:
    assert encode(Command.PING, 1) == bytes.fromhex("06 00 01 00 00")
    assert Decoder().feed(bytes.fromhex("06 00 01 00 00")) == [Frame(6, 1, b"", 0)]


def test_redirect_vector() -> None:
    assert encode(Command.REDIRECT, 3, "example.com", 8442) == (
        b"\x29\x00\x03\x00\x10example.com\x008442"
    )


def test_reconfigure_vector() -> None:
    assert encode(Command.INTERNAL, 7, "dbg", "config start") == (
        b"\x11\x00\x07\x00\x10dbg\x00config start"
    )


def test_cpp_info_encodes_byte_exact() -> None:
    assert encode(Command.INTERNAL, 2, *CPP_INFO_ARGS) == CPP_INFO_BYTES


def test_cpp_info_decodes_and_parses() -> None:
    frames = Decoder().feed(CPP_INFO_BYTES)
    assert len(frames) == 1
    frame = frames[0]
    assert (frame.command, frame.msg_id, frame.status) == (17, 2, 0)
    assert len(frame.body) == 0x6F
    args = frame.text_args()
    assert args == CPP_INFO_ARGS
    assert is_info(args)
    assert parse_info(args) == CPP_INFO_PARSED


def test_cpp_info_with_trailing_empty_argument_parses_the_same() -> None:
    assert parse_info([*CPP_INFO_ARGS, ""]) == CPP_INFO_PARSED


def test_old_info_parses_to_the_same_vocabulary() -> None:
    wire = encode(Command.INTERNAL, 2, *OLD_INFO_ARGS)
    assert wire.endswith(b"TMPLyyyy\x00")  # the trailing empty argument is a trailing NUL
    (frame,) = Decoder().feed(wire)
    args = frame.text_args()
    assert args == OLD_INFO_ARGS
    assert args[-1] == ""
    assert is_info(args)
    parsed = parse_info(args)
    assert parsed == OLD_INFO_PARSED
    assert set(parsed) == set(CPP_INFO_PARSED)
    assert "" not in parsed


def test_blynklib_info_vector() -> None:
    args = ["ver", "0.2.6", "buff-in", 1024, "h-beat", 10, "dev", "python"]
    assert encode(Command.INTERNAL, 1, *args) == BLYNKLIB_INFO_BYTES
    (frame,) = Decoder().feed(BLYNKLIB_INFO_BYTES)
    text = frame.text_args()
    assert text == ["ver", "0.2.6", "buff-in", "1024", "h-beat", "10", "dev", "python"]
    assert is_info(text)
    assert parse_info(text) == {
        "library_version": "0.2.6",
        "buffer_in": "1024",
        "heartbeat": "10",
        "board": "python",
    }


def test_blynklib_itself_agrees_with_the_vectors() -> None:
    blynklib = pytest.importorskip("blynklib")
    if blynklib.__version__ != "0.2.6":
        pytest.skip("vectors were taken from blynklib 0.2.6")
    assert blynklib.Protocol().heartbeat_msg(10, 1024) == BLYNKLIB_INFO_BYTES
    assert blynklib.Protocol().login_msg(TOKEN) == encode(Command.LOGIN, 1, TOKEN)
    proto = blynklib.Protocol()
    assert proto._pack_msg(20, "test", 1234, 745, "abcde") == encode(
        20, 1, "test", 1234, 745, "abcde"
    )


# --- arguments --------------------------------------------------------------------------------


def test_join_args_converts_each_type() -> None:
    assert join_args(["vw", 3, 1.5, b"\xff", "é"]) == b"vw\x003\x001.5\x00\xff\x00\xc3\xa9"
    assert join_args([]) == b""


def test_split_args() -> None:
    assert split_args(b"") == []
    assert split_args(b"a") == [b"a"]
    assert split_args(b"a\x00\x00b") == [b"a", b"", b"b"]
    assert split_args(b"a\x00") == [b"a", b""]


def test_frame_args_and_text_args() -> None:
    frame = Frame(20, 5, "vw\x001\x00héllo".encode())
    assert frame.args == [b"vw", b"1", "héllo".encode()]
    assert frame.text_args() == ["vw", "1", "héllo"]
    empty = Frame(6, 5)
    assert empty.body == b""
    assert empty.status == 0
    assert empty.args == []
    assert empty.text_args() == []


def test_non_utf8_body_text_args_raise_protocol_error_but_args_work() -> None:
    wire = encode_body(Command.HARDWARE, 9, b"vw\x004\x00\xff\xfe")
    (frame,) = Decoder().feed(wire)
    assert frame.args == [b"vw", b"4", b"\xff\xfe"]
    with pytest.raises(ProtocolError):
        frame.text_args()


# --- Decoder ----------------------------------------------------------------------------------

STREAM_FRAMES = [
    Frame(29, 1, TOKEN.encode()),
    Frame(0, 1, b"", 200),
    Frame(17, 2, CPP_INFO_BYTES[5:]),
    Frame(0, 2, b"", 200),
    Frame(6, 3, b""),
    Frame(20, 4, b"vw\x001\x0042"),
    Frame(0, 4, b"", 9),
    Frame(0, 65535, b"", 65535),
    Frame(65, 5, b""),
]
STREAM = b"".join(encode_frame(f) for f in STREAM_FRAMES)


def test_several_frames_in_one_feed() -> None:
    decoder = Decoder()
    assert decoder.feed(STREAM) == STREAM_FRAMES
    assert decoder.buffered == 0


def test_one_byte_at_a_time_gives_the_same_frames() -> None:
    decoder = Decoder()
    assert feed_bytewise(decoder, STREAM) == STREAM_FRAMES
    assert decoder.buffered == 0


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_split_at_every_boundary(cut: int) -> None:
    decoder = Decoder()
    frames = decoder.feed(STREAM[:cut])
    frames += decoder.feed(STREAM[cut:])
    assert frames == STREAM_FRAMES
    assert decoder.buffered == 0


def test_partial_frames_stay_buffered() -> None:
    decoder = Decoder()
    wire = encode(Command.HARDWARE, 3, "vw", 1, 2)
    assert decoder.feed(wire[:4]) == []
    assert decoder.buffered == 4
    assert decoder.feed(wire[4:7]) == []
    assert decoder.buffered == 7
    assert decoder.feed(wire[7:] + wire[:2]) == [Frame(20, 3, b"vw\x001\x002")]
    assert decoder.buffered == 2
    assert decoder.feed(b"") == []
    assert decoder.buffered == 2


def test_response_carries_status_and_has_no_body() -> None:
    wire = encode_response(7, Status.INVALID_TOKEN) + encode(Command.PING, 8)
    frames = Decoder().feed(wire)
    assert frames == [Frame(0, 7, b"", 9), Frame(6, 8, b"", 0)]
    response = frames[0]
    assert response.command == Command.RESPONSE
    assert response.status == 9
    assert response.body == b""
    assert response.args == []


def test_response_status_is_not_a_length() -> None:
    # 200 > max_body, and the decoder must not wait for 200 body bytes after a RESPONSE.
    decoder = Decoder(max_body=16)
    frames = decoder.feed(encode_response(1, 200) + encode_response(2, 0xFFFF))
    assert frames == [Frame(0, 1, b"", 200), Frame(0, 2, b"", 0xFFFF)]
    assert decoder.buffered == 0


@pytest.mark.parametrize("command", [0, 6, 17, 20, 29])
def test_msg_id_zero_raises(command: int) -> None:
    with pytest.raises(ProtocolError):
        Decoder().feed(bytes([command, 0, 0, 0, 0]))


def test_msg_id_zero_raises_as_soon_as_the_header_is_complete() -> None:
    decoder = Decoder()
    assert decoder.feed(b"\x14\x00\x00\x00") == []
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x05")  # length 5, body not yet received


def test_msg_id_zero_after_a_good_frame_raises() -> None:
    with pytest.raises(ProtocolError):
        Decoder().feed(encode(Command.PING, 1) + b"\x06\x00\x00\x00\x00")


def test_length_above_max_body_raises_before_the_body_arrives() -> None:
    decoder = Decoder(max_body=16)
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x14\x00\x01\x00\x11")  # header only, length 17


def test_length_above_default_max_body_raises() -> None:
    assert DEFAULT_MAX_BODY == 1024
    with pytest.raises(ProtocolError):
        Decoder().feed(b"\x14\x00\x01\x04\x01")  # length 1025
    with pytest.raises(ProtocolError):
        Decoder().feed(b"\x11\x00\x01\xff\xff")  # length 65535


def test_length_above_max_body_raises_when_header_completes_bytewise() -> None:
    decoder = Decoder(max_body=16)
    for b in b"\x14\x00\x01\x00":
        assert decoder.feed(bytes([b])) == []
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x11")


def test_body_exactly_max_body_is_accepted() -> None:
    body = bytes(range(16))
    decoder = Decoder(max_body=16)
    assert decoder.feed(encode_body(Command.HARDWARE, 1, body)) == [Frame(20, 1, body)]
    assert decoder.buffered == 0


def test_body_exactly_default_max_body_is_accepted() -> None:
    body = b"x" * DEFAULT_MAX_BODY
    (frame,) = Decoder().feed(encode_body(Command.HARDWARE, 1, body))
    assert frame.body == body


def test_max_body_zero_accepts_only_empty_bodies() -> None:
    decoder = Decoder(max_body=0)
    assert decoder.feed(encode(Command.PING, 1)) == [Frame(6, 1)]
    with pytest.raises(ProtocolError):
        decoder.feed(encode(Command.HARDWARE, 2, "x"))


def test_unknown_command_is_decoded() -> None:
    # Deciding what to do with an unknown command is the caller's business, not the decoder's.
    assert Decoder().feed(b"\xfa\x00\x02\x00\x01z") == [Frame(250, 2, b"z")]


def test_large_body_with_raised_limit() -> None:
    body = b"\x01" * 0xFFFF
    (frame,) = Decoder(max_body=0xFFFF).feed(encode_body(Command.HARDWARE, 1, body))
    assert frame.body == body


# --- msg_id -----------------------------------------------------------------------------------


def test_next_msg_id_steps() -> None:
    assert next_msg_id(1) == 2
    assert next_msg_id(2) == 3
    assert next_msg_id(65534) == 65535
    assert next_msg_id(65535) == 1
    assert next_msg_id(0) == 1  # a fresh counter at 0 starts at 1


def test_next_msg_id_cycles_through_every_id_and_never_yields_zero() -> None:
    seen = set()
    msg_id = 1
    for _ in range(MAX_MSG_ID):
        seen.add(msg_id)
        msg_id = next_msg_id(msg_id)
        assert 1 <= msg_id <= MAX_MSG_ID
    assert msg_id == 1
    assert seen == set(range(1, MAX_MSG_ID + 1))


@pytest.mark.parametrize("msg_id", [0, 65536, -1, 100000])
def test_encode_rejects_out_of_range_msg_id(msg_id: int) -> None:
    with pytest.raises(ValueError):
        encode(Command.PING, msg_id)
    with pytest.raises(ValueError):
        encode_body(Command.HARDWARE, msg_id, b"x")
    with pytest.raises(ValueError):
        encode_response(msg_id, 200)


def test_encode_accepts_the_msg_id_bounds() -> None:
    assert encode(Command.PING, 1) == b"\x06\x00\x01\x00\x00"
    assert encode(Command.PING, 65535) == b"\x06\xff\xff\x00\x00"


def test_encode_rejects_response() -> None:
    with pytest.raises(ValueError):
        encode(Command.RESPONSE, 1)
    with pytest.raises(ValueError):
        encode(0, 1, 200)
    with pytest.raises(ValueError):
        encode_body(Command.RESPONSE, 1, b"")


def test_encode_body_length_limit() -> None:
    assert encode_body(Command.HARDWARE, 1, b"a" * 0xFFFF)[:5] == b"\x14\x00\x01\xff\xff"
    with pytest.raises(ValueError):
        encode_body(Command.HARDWARE, 1, b"a" * 0x10000)


# --- hypothesis -------------------------------------------------------------------------------

commands = st.integers(min_value=1, max_value=255)
msg_ids = st.integers(min_value=1, max_value=MAX_MSG_ID)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@given(
    command=commands,
    msg_id=msg_ids,
    body=st.binary(max_size=DEFAULT_MAX_BODY),
    cuts=st.lists(st.integers(min_value=0, max_value=DEFAULT_MAX_BODY + HEADER_SIZE)),
)
def test_roundtrip_in_arbitrary_chunks(
    command: int, msg_id: int, body: bytes, cuts: list[int]
) -> None:
    wire = encode_body(command, msg_id, body)
    assert len(wire) == HEADER_SIZE + len(body)
    decoder = Decoder()
    frames: list[Frame] = []
    for chunk in chunked(wire, cuts):
        frames += decoder.feed(chunk)
    assert frames == [Frame(command, msg_id, body, 0)]
    assert decoder.buffered == 0


frame_strategy = st.one_of(
    st.builds(
        Frame,
        command=st.just(0),
        msg_id=msg_ids,
        body=st.just(b""),
        status=st.integers(min_value=0, max_value=0xFFFF),
    ),
    st.builds(
        Frame, command=commands, msg_id=msg_ids, body=st.binary(max_size=64), status=st.just(0)
    ),
)


@given(
    frames=st.lists(frame_strategy, max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=20 * (HEADER_SIZE + 64))),
)
def test_roundtrip_of_frame_sequences(frames: list[Frame], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    decoder = Decoder(max_body=64)
    got: list[Frame] = []
    for chunk in chunked(wire, cuts):
        got += decoder.feed(chunk)
    assert got == frames
    assert decoder.buffered == 0


@given(
    command=commands,
    msg_id=msg_ids,
    args=st.lists(
        st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0")),
        min_size=1,
    ),
)
def test_text_args_roundtrip(command: int, msg_id: int, args: list[str]) -> None:
    assume(args != [""])  # a single empty argument is an empty body, i.e. no arguments
    (frame,) = Decoder(max_body=0xFFFF).feed(encode(command, msg_id, *args))
    assert frame.text_args() == args


@given(
    data=st.binary(max_size=2048),
    cuts=st.lists(st.integers(min_value=0, max_value=2048)),
    max_body=st.integers(min_value=0, max_value=2000),
)
def test_arbitrary_bytes_give_frames_or_protocol_error(
    data: bytes, cuts: list[int], max_body: int
) -> None:
    decoder = Decoder(max_body=max_body)
    frames: list[Frame] = []
    try:
        for chunk in chunked(data, cuts):
            frames += decoder.feed(chunk)
    except ProtocolError:
        return
    for frame in frames:
        assert 1 <= frame.msg_id <= MAX_MSG_ID
        assert 0 <= frame.command <= 255
        assert len(frame.body) <= max_body
        if frame.command == Command.RESPONSE:
            assert frame.body == b""
        else:
            assert frame.status == 0
    consumed = sum(HEADER_SIZE + len(f.body) for f in frames)
    assert consumed + decoder.buffered == len(data)
    assert decoder.buffered < HEADER_SIZE + max_body
    for frame in frames:  # text_args either works or raises ProtocolError
        try:
            frame.text_args()
        except ProtocolError:
            pass


@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_bytewise_match_one_feed(data: bytes) -> None:
    def run(feed_all: bool) -> tuple[list[Frame], bool]:
        decoder = Decoder(max_body=64)
        frames: list[Frame] = []
        try:
            if feed_all:
                frames += decoder.feed(data)
            else:
                for i in range(len(data)):
                    frames += decoder.feed(data[i : i + 1])
        except ProtocolError:
            return frames, True
        return frames, False

    whole, whole_failed = run(True)
    bytewise, bytewise_failed = run(False)
    assert whole_failed == bytewise_failed
    if not whole_failed:
        assert whole == bytewise


# --- info helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("40", 40),
        ("1", 1),
        ("100", 100),
        ("0", 1),
        ("-5", 1),
        ("101", 100),
        ("999999999999", 100),
        (None, 10),
        ("", 10),
        ("abc", 10),
        ("4.5", 10),
        ("0x10", 10),
    ],
)
def test_int_or(value: str | None, expected: int) -> None:
    assert int_or(value, 10, 1, 100) == expected


def test_int_or_with_real_fields() -> None:
    info = parse_info(CPP_INFO_ARGS)
    assert int_or(info.get("heartbeat"), 45, 1, 3600) == 40
    assert int_or(info.get("buffer_in"), 256, 64, 65535) == 256
    assert int_or(info.get("missing"), 45, 1, 3600) == 45


@pytest.mark.parametrize("key", sorted(INFO_KEYS))
def test_is_info_true_for_info_keys(key: str) -> None:
    assert is_info([key, "x"])


@pytest.mark.parametrize(
    "args",
    [[], [""], ["rtc"], ["rtc", "123"], ["meta"], ["meta", "k", "v"], ["utc"], ["acon"], ["dbg"]],
)
def test_is_info_false_for_other_internal_messages(args: list[str]) -> None:
    assert not is_info(args)


def test_info_keys_cover_both_generations() -> None:
    for key in ["mcu", "fw-type", "build", "blynk", "h-beat", "buff-in", "dev", "tmpl"]:
        assert key in INFO_KEYS
    for key in ["ver", "fw"]:
        assert key in INFO_KEYS
    assert INFO_KEYS["mcu"] == INFO_KEYS["fw"] == "firmware_version"
    assert INFO_KEYS["blynk"] == INFO_KEYS["ver"] == "library_version"


def test_parse_info_keeps_unknown_keys_and_ignores_unpaired_and_empty_keys() -> None:
    assert parse_info(["dev", "ESP32", "newkey", "v", "", "skipped", "lonely"]) == {
        "board": "ESP32",
        "newkey": "v",
    }
    assert parse_info([]) == {}
    assert parse_info([""]) == {}
    assert parse_info(["mcu"]) == {}
