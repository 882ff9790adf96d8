"""Unit tests for wifiprov.device.store: format, masking, bad files, atomic saves, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wifiprov.device.store import (
    ConfigError,
    ConfigStore,
    Flags,
    LoadResult,
    Network,
    StaticIp,
    StoredConfig,
    decode,
    encode,
)

TOKEN = "abcdefghijklmnopqrstuvwxyz01WXYZ"  # 32 characters, like a real one
PASSWORD = "hunter2-secret"

CONFIG_A = StoredConfig(
    networks=(Network(b"Home", PASSWORD),),
    token=TOKEN,
    host="cloud.example",
    port=8442,
    port_ssl=8441,
    flags=Flags(valid=True),
)
CONFIG_B = StoredConfig(  # much longer than A, so a torn write could not pass for either
    networks=(
        Network(b"\xff\x00 caf\xc3\xa9 \xe2\x98\x83", "pass word \u00e9\U0001f600", hidden=True),
        Network(b"Office", "o" * 63, identity="alice@example.org", eap="PEAP"),
        *(Network(f"spare-{i}".encode(), "x" * 40) for i in range(20)),
    ),
    token="Z" * 32,
    host="h" * 200,
    port=None,
    port_ssl=443,
    static_ip=StaticIp("192.168.1.50", "255.255.255.0", "192.168.1.1", "1.1.1.1", "9.9.9.9"),
    last_error=722,
    flags=Flags(valid=False),
)


# --- a file system in memory that records, fails and loses power -------------------------------


class InjectedFailure(OSError):
    pass


class PowerLoss(BaseException):
    """Raised by the fake where the power goes: nothing after it runs, not even cleanup."""


class FakeFileSystem:
    """One directory in memory. Records every operation as (name, file). Fails the operation
    named ``fail_on`` with an OSError, and raises PowerLoss in place of the operation numbered
    ``power_off_at``. Models what survives a power loss: only the contents of a file that was
    fsynced, under a name made durable by fsyncing the directory."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, str]] = []
        self.fail_on: str | None = None
        self.power_off_at: int | None = None
        self.names: dict[str, int] = {}  # the directory as seen now: name -> inode
        self.data: dict[int, bytes] = {}  # contents as seen now
        self.durable_names: dict[str, int] = {}
        self.durable_data: dict[int, bytes] = {}
        self.handles: dict[int, int] = {}  # open handle -> inode
        self.next_number = 1

    def _op(self, name: str, path: str) -> None:
        if len(self.ops) == self.power_off_at:
            raise PowerLoss
        self.ops.append((name, path))
        if name == self.fail_on:
            raise InjectedFailure(5, f"injected failure in {name}")

    def _number(self) -> int:
        self.next_number += 1
        return self.next_number

    def power_loss(self) -> None:
        self.names = dict(self.durable_names)
        self.data = {inode: self.durable_data.get(inode, b"") for inode in self.names.values()}
        self.handles.clear()
        self.power_off_at = None

    def read(self, path: Path, limit: int) -> bytes:
        self._op("read", path.name)
        if path.name not in self.names:
            raise FileNotFoundError(2, "No such file", str(path))
        return self.data[self.names[path.name]][: limit + 1]

    def create(self, path: Path) -> int:
        self._op("create", path.name)
        inode = self.names.get(path.name) or self._number()
        self.names[path.name] = inode
        self.data[inode] = b""
        handle = self._number()
        self.handles[handle] = inode
        return handle

    def write(self, handle: int, data: bytes) -> None:
        self._op("write", self._name_of(handle))
        self.data[self.handles[handle]] += data

    def fsync(self, handle: int) -> None:
        self._op("fsync", self._name_of(handle))
        inode = self.handles[handle]
        self.durable_data[inode] = self.data[inode]

    def close(self, handle: int) -> None:
        self._op("close", self._name_of(handle))
        del self.handles[handle]

    def rename(self, src: Path, dst: Path) -> None:
        self._op("rename", f"{src.name} -> {dst.name}")
        self.names[dst.name] = self.names.pop(src.name)

    def fsync_dir(self, path: Path) -> None:
        self._op("fsync_dir", str(path))
        self.durable_names = dict(self.names)

    def remove(self, path: Path) -> None:
        self._op("remove", path.name)
        if path.name not in self.names:
            raise FileNotFoundError(2, "No such file", str(path))
        del self.names[path.name]

    def _name_of(self, handle: int) -> str:
        inode = self.handles[handle]
        return next((name for name, i in self.names.items() if i == inode), "?")


def fake_store(initial: StoredConfig | None = None) -> tuple[ConfigStore, FakeFileSystem]:
    fs = FakeFileSystem()
    store = ConfigStore(Path("/etc/wifiprov/config.json"), fs)
    if initial is not None:
        store.save(initial)
    fs.ops.clear()
    return store, fs


# --- format and round trips --------------------------------------------------------------------

texts = st.text(max_size=80)
networks = st.builds(
    Network,
    ssid=st.binary(max_size=32),
    password=texts,
    identity=texts,
    eap=texts,
    hidden=st.booleans(),
    wired=st.booleans(),
)
ports = st.none() | st.integers(1, 65535)
settings_only = st.builds(
    StoredConfig,
    networks=st.lists(networks, max_size=5).map(tuple),
    token=texts,
    host=texts,
    port=ports,
    port_ssl=ports,
    static_ip=st.none() | st.builds(StaticIp, texts, texts, texts, texts, texts),
)
configs = st.builds(
    lambda base, last_error, flags, candidate: replace(
        base, last_error=last_error, flags=flags, candidate=candidate
    ),
    settings_only,
    st.integers(0, 10**6),
    st.builds(Flags, st.booleans()),
    st.none() | settings_only,
)


@given(configs)
def test_round_trip_any_config(config: StoredConfig) -> None:
    assert decode(encode(config)) == config
    store, fs = fake_store()
    store.save(config)
    assert store.load() == LoadResult(config)
    fs.power_loss()
    assert store.load() == LoadResult(config)


def test_round_trip_on_disk(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config.json")
    for config in (CONFIG_A, CONFIG_B, StoredConfig.empty()):
        store.save(config)
        assert store.load() == LoadResult(config)
    assert os.listdir(tmp_path) == ["config.json"]  # no temp file left
    assert stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode) == 0o600


def test_file_format() -> None:
    doc = json.loads(encode(CONFIG_A))
    assert doc == {
        "format": "wifiprov-device-config",
        "version": 1,
        "networks": [
            {
                "ssid": "486f6d65",
                "password": PASSWORD,
                "identity": "",
                "eap": "",
                "hidden": False,
                "wired": False,
            }
        ],
        "token": TOKEN,
        "host": "cloud.example",
        "port": 8442,
        "port_ssl": 8441,
        "static_ip": None,
        "last_error": 0,
        "flags": {"valid": True},
        "candidate": None,
    }
    assert encode(CONFIG_B).isascii()


def test_a_candidate_is_kept_beside_the_working_config_and_never_taken_for_it() -> None:
    unverified = replace(CONFIG_B, flags=Flags(), last_error=0)
    both = replace(CONFIG_A, candidate=unverified)
    doc = json.loads(encode(both))
    assert doc["candidate"]["token"] == CONFIG_B.token
    assert set(doc["candidate"]) == {"networks", "token", "host", "port", "port_ssl", "static_ip"}
    loaded = decode(encode(both))
    assert loaded == both and loaded.is_configured and loaded.token == CONFIG_A.token
    alone = StoredConfig(candidate=unverified)
    assert decode(encode(alone)) == alone and not alone.is_configured
    with pytest.raises(ValueError, match="cannot hold a candidate"):
        encode(replace(CONFIG_A, candidate=both))


def test_a_file_written_before_candidates_existed_loads() -> None:
    doc = json.loads(encode(CONFIG_A))
    del doc["candidate"]
    del doc["networks"][0]["wired"]
    assert decode(json.dumps(doc).encode()) == CONFIG_A
    doc["candidate"] = {"token": 5}
    with pytest.raises(ConfigError):
        decode(json.dumps(doc).encode())


def test_empty_and_is_configured() -> None:
    empty = StoredConfig.empty()
    assert empty == StoredConfig() and empty.version == 1 and empty.networks == ()
    assert not empty.is_configured
    assert CONFIG_A.is_configured
    assert not CONFIG_B.is_configured  # never logged in
    assert not StoredConfig(token="", flags=Flags(valid=True)).is_configured


@pytest.mark.parametrize(
    "config",
    [
        StoredConfig(version=2),
        StoredConfig(port=True),  # a bool is no port number
        StoredConfig(port=70000),
        StoredConfig(networks=[Network(b"x", "y")]),  # type: ignore[arg-type]
        StoredConfig(token=b"bytes"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_what_load_would_reject(config: StoredConfig) -> None:
    with pytest.raises((ValueError, TypeError)):
        encode(config)


# --- secrets never reach a log -------------------------------------------------------------------


def test_repr_masks_secrets() -> None:
    for config in (CONFIG_A, CONFIG_B):
        for text in (repr(config), str(config), f"{config}", repr(LoadResult(config))):
            assert "WXYZ" in text or "ZZZZ" in text  # the last 4 characters of the token
            assert TOKEN[:-4] not in text and "Z" * 5 not in text
            assert PASSWORD not in text and "hunter" not in text and "o" * 8 not in text
            assert "x" * 5 not in text and "\\U0001f600" not in text and "pass word" not in text
    network = Network(b"Home", PASSWORD)
    assert repr(network) == str(network)
    assert repr(network) == (
        "Network(ssid=b'Home', password=<hidden>, identity='', eap='', hidden=False, wired=False)"
    )
    assert "token=''" in repr(StoredConfig.empty())
    assert "token=<set>" in repr(StoredConfig(token="abcd"))  # too short to show any of it


# --- bad files: the empty config and a reason, never an exception ------------------------------

BAD_FILES = {
    "truncated": (encode(CONFIG_A)[:40], "not JSON"),
    "empty file": (b"", "not JSON"),
    "random bytes": (bytes(random.Random(1).randrange(256) for _ in range(500)), "not JSON"),
    "a JSON list": (b"[1, 2, 3]", "not a JSON object"),
    "a foreign object": (b'{"ssid": "Home", "pass": "x"}', "foreign"),
    "a newer version": (
        encode(CONFIG_A).replace(b'"version": 1', b'"version": 2'),
        "schema version 2 is newer than this agent's (1)",
    ),
    "no version": (b'{"format": "wifiprov-device-config"}', "no valid schema version"),
    "a field of the wrong type": (
        encode(CONFIG_A).replace(b'"port": 8442', b'"port": "8442"'),
        "'port' is missing or not an integer",
    ),
    "a missing field": (encode(CONFIG_A).replace(b'"token"', b'"tok"'), "'token' is missing"),
    "a bad SSID": (encode(CONFIG_A).replace(b"486f6d65", b"Home"), "not hex"),
    "deep nesting": (b"[" * 100_000, "not JSON"),
    "too large": (b" " * (300 * 1024), "larger than"),
    "not UTF-8": (b'{"format": "\xff"}', "not JSON"),
}


@pytest.mark.parametrize("content, reason", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file_loads_as_empty_with_a_problem(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    result = ConfigStore(path).load()
    assert result.config == StoredConfig.empty()
    assert result.problem is not None and reason in result.problem
    assert str(path) in result.problem
    assert TOKEN not in result.problem and PASSWORD not in result.problem


def test_missing_file_is_empty_without_a_problem(tmp_path: Path) -> None:
    assert ConfigStore(tmp_path / "config.json").load() == LoadResult(StoredConfig.empty())


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    result = ConfigStore(tmp_path / "config.json").load()
    assert result.config == StoredConfig.empty()
    assert result.problem is not None and "unreadable" in result.problem


@given(st.binary(max_size=2000))
def test_decode_random_bytes_raises_only_config_error(data: bytes) -> None:
    try:
        decode(data)
    except ConfigError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=10,
)
fields = ("networks", "token", "host", "port", "port_ssl", "static_ip", "last_error", "flags")


@given(st.fixed_dictionaries({}, optional={k: json_values for k in fields}), st.data())
def test_decode_mangled_documents_raises_only_config_error(
    mangled: dict[str, object], data: st.DataObject
) -> None:
    doc = json.loads(encode(data.draw(st.sampled_from([CONFIG_A, CONFIG_B]))))
    doc.update(mangled)
    try:
        assert decode(json.dumps(doc).encode()) is not None
    except ConfigError:
        pass


# --- atomic saves: the order of operations, failures, power loss --------------------------------

SAVE_OPS = [
    ("create", "config.json.tmp"),
    ("write", "config.json.tmp"),
    ("fsync", "config.json.tmp"),
    ("close", "config.json.tmp"),
    ("rename", "config.json.tmp -> config.json"),
    ("fsync_dir", "/etc/wifiprov"),
]


def test_save_order_of_operations() -> None:
    store, fs = fake_store(CONFIG_A)
    store.save(CONFIG_B)
    assert fs.ops == SAVE_OPS
    assert list(fs.names) == ["config.json"]


@pytest.mark.parametrize("step", [name for name, _ in SAVE_OPS])
def test_failure_at_each_step_keeps_a_whole_config(step: str) -> None:
    store, fs = fake_store(CONFIG_A)
    fs.fail_on = step
    with pytest.raises(InjectedFailure):
        store.save(CONFIG_B)
    fs.fail_on = None
    # Before the rename the old config stands; after it (only fsync_dir is left) the new one.
    expected = CONFIG_B if step == "fsync_dir" else CONFIG_A
    assert store.load() == LoadResult(expected)
    assert "config.json.tmp" not in fs.names  # the temp file was cleaned up
    fs.power_loss()
    assert store.load() in (LoadResult(CONFIG_A), LoadResult(CONFIG_B))


@pytest.mark.parametrize("initial", [CONFIG_A, None], ids=["over A", "first save"])
def test_power_loss_at_every_instant(initial: StoredConfig | None) -> None:
    outcomes = set()
    for survived in range(len(SAVE_OPS) + 1):  # the power goes after `survived` operations
        store, fs = fake_store(initial)
        fs.power_off_at = survived
        try:
            store.save(CONFIG_B)
        except PowerLoss:
            pass
        fs.power_loss()
        result = store.load()
        assert result.problem is None
        assert result.config in (initial or StoredConfig.empty(), CONFIG_B)
        outcomes.add(result.config)
    assert len(outcomes) == 2  # the new config is durable only once the directory is fsynced


def test_power_loss_model_catches_a_missing_fsync() -> None:
    """The fake is strict enough to matter: without fsync of the temp file, a power loss right
    after the directory fsync leaves an empty file (ext4's zero-length-file case)."""
    store, fs = fake_store(CONFIG_A)
    fs.fsync = lambda handle: None  # type: ignore[method-assign]
    store.save(CONFIG_B)
    fs.power_loss()
    assert store.load().problem is not None


def test_stale_temp_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config.json")
    store.save(CONFIG_A)
    store.temp_path.write_bytes(encode(CONFIG_B)[:100])  # what a crash mid-save leaves
    store.temp_path.chmod(0o644)
    assert store.load() == LoadResult(CONFIG_A)
    store.save(CONFIG_B)
    assert store.load() == LoadResult(CONFIG_B)
    assert os.listdir(tmp_path) == ["config.json"]
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


# --- erase ---------------------------------------------------------------------------------------


def test_erase_on_disk(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config.json")
    store.erase()  # nothing to erase: fine
    store.save(CONFIG_A)
    store.temp_path.write_bytes(b"torn")
    store.erase()
    assert os.listdir(tmp_path) == []
    assert store.load() == LoadResult(StoredConfig.empty())


def test_erase_order_of_operations() -> None:
    store, fs = fake_store(CONFIG_A)
    store.erase()
    assert fs.ops == [
        ("remove", "config.json"),
        ("remove", "config.json.tmp"),
        ("fsync_dir", "/etc/wifiprov"),
    ]
    fs.power_loss()
    assert store.load() == LoadResult(StoredConfig.empty())


# --- the real thing: SIGKILL a process that saves in a loop -------------------------------------

CHILD = """
import sys
from wifiprov.device.store import ConfigStore, decode

store = ConfigStore(sys.argv[1])
configs = [decode(arg.encode()) for arg in sys.argv[2:]]
store.save(configs[0])
print("ready", flush=True)
while True:
    for config in configs:
        store.save(config)
"""


def test_sigkill_during_saves_leaves_a_or_b(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    store = ConfigStore(path)
    args = [
        sys.executable,
        "-c",
        CHILD,
        str(path),
        encode(CONFIG_A).decode(),
        encode(CONFIG_B).decode(),
    ]
    rng = random.Random()
    seen: list[StoredConfig] = []
    killed_mid_save = 0
    started = time.monotonic()
    for _ in range(50):
        child = subprocess.Popen(args, stdout=subprocess.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0, 0.030))
        child.kill()
        assert child.wait(timeout=5) == -signal.SIGKILL  # it was alive, saving, when killed
        child.stdout.close()
        killed_mid_save += store.temp_path.exists()
        result = store.load()
        assert result.problem is None
        assert result.config in (CONFIG_A, CONFIG_B)
        seen.append(result.config)
    assert time.monotonic() - started < 20
    assert CONFIG_A in seen and CONFIG_B in seen
    assert killed_mid_save > 0  # some kills did land between creating the temp file and renaming it


def test_check_writable_names_what_stops_a_save(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "config.json")
    assert store.check_writable() is None
    assert os.listdir(tmp_path) == []  # the probe leaves nothing behind
    store.save(CONFIG_A)
    assert store.check_writable() is None and store.load() == LoadResult(CONFIG_A)
    in_the_way = ConfigStore(tmp_path / "dir")
    (tmp_path / "dir").mkdir()
    assert in_the_way.check_writable() == f"{tmp_path / 'dir'} is a directory"
    missing = ConfigStore(tmp_path / "nowhere" / "config.json")
    assert "cannot write there (No such file or directory)" in (missing.check_writable() or "")


def test_check_writable_on_a_read_only_file_system() -> None:
    store, fs = fake_store(CONFIG_A)

    def refuse(path: Path) -> int:
        raise OSError(30, "Read-only file system")

    fs.create = refuse  # type: ignore[method-assign]
    assert "cannot write there (Read-only file system)" in (store.check_writable() or "")
    assert store.load() == LoadResult(CONFIG_A)
