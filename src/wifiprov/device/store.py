"""The device agent's persistent configuration: atomic, versioned, never half-written.

The file is JSON (ASCII, escapes for the rest)::

    {"format": "wifiprov-device-config", "version": 1,
     "networks": [{"ssid": "<hex>", "password": "...", "identity": "", "eap": "", "hidden": false}],
     "token": "...", "host": "...", "port": 8442, "port_ssl": 8441,
     "static_ip": null, "last_error": 0, "flags": {"valid": true},
     "candidate": null}

``candidate`` is a configuration saved with Edgent's ``save=1`` that has not logged in yet (the
same fields as the top level, without ``last_error``, ``flags`` and ``candidate``): the agent
retries it with its AP open until it works once, and never mistakes it for the working one. A
file without the field (written before it existed) loads with no candidate.

SSIDs are hex because they are arbitrary bytes; networks are in priority order. Passwords and the
token are stored as they are (the file is mode 0600); the ``repr`` of every object here masks them.

Saving writes ``<name>.tmp`` in the same directory, fsyncs it, renames it over the file and fsyncs
the directory, so after a crash or a power loss at any instant the file holds the old configuration
or the new one, whole. ``load`` reads only the file itself: a torn temp file is never taken for the
configuration, and the next save overwrites it. The temp name is fixed: one process (the agent)
owns a store. The directory must exist.

``erase`` removes the file and any temp file, then fsyncs the directory: a missing file loads as
the empty configuration with no problem, and no copy of the credentials is left behind in the
directory (what the flash keeps in freed blocks is beyond a file's reach).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

FORMAT = "wifiprov-device-config"
SCHEMA_VERSION = 1
MAX_SIZE = 256 * 1024  # bytes; far above any real configuration

T = TypeVar("T")


def _masked_token(token: str) -> str:
    if not token:
        return "''"
    return f"<…{token[-4:]}>" if len(token) >= 16 else "<set>"


@dataclass(frozen=True, repr=False)
class Network:
    ssid: bytes
    password: str
    identity: str = ""  # EAP user name
    eap: str = ""  # EAP method, "" for a PSK or open network
    hidden: bool = False
    wired: bool = False  # Ethernet (Edgent's if=eth): no SSID, no password

    def __repr__(self) -> str:
        password = "<hidden>" if self.password else "''"
        return (
            f"Network(ssid={self.ssid!r}, password={password}, identity={self.identity!r}, "
            f"eap={self.eap!r}, hidden={self.hidden!r}, wired={self.wired!r})"
        )


@dataclass(frozen=True)
class StaticIp:
    ip: str
    mask: str
    gw: str
    dns: str = ""
    dns2: str = ""


@dataclass(frozen=True)
class Flags:
    valid: bool = False  # this configuration logged in to the cloud at least once


@dataclass(frozen=True, repr=False)
class StoredConfig:
    version: int = SCHEMA_VERSION
    networks: tuple[Network, ...] = ()
    token: str = ""
    host: str = ""
    port: int | None = None
    port_ssl: int | None = None
    static_ip: StaticIp | None = None
    last_error: int = 0  # a provisioning error code, 0 = none
    flags: Flags = field(default_factory=Flags)
    candidate: StoredConfig | None = None  # saved with save=1, has not logged in yet

    @classmethod
    def empty(cls) -> StoredConfig:
        return cls()

    @property
    def is_configured(self) -> bool:
        return self.flags.valid and bool(self.token)

    def __repr__(self) -> str:
        return (
            f"StoredConfig(version={self.version!r}, networks={self.networks!r}, "
            f"token={_masked_token(self.token)}, host={self.host!r}, port={self.port!r}, "
            f"port_ssl={self.port_ssl!r}, static_ip={self.static_ip!r}, "
            f"last_error={self.last_error!r}, flags={self.flags!r}, candidate={self.candidate!r})"
        )


@dataclass(frozen=True)
class LoadResult:
    config: StoredConfig
    problem: str | None = None  # why a present file was not used; never contains a secret


class ConfigError(ValueError):
    """These bytes are not a configuration this agent can use; the message says why."""


# --- encoding ---------------------------------------------------------------------------------


def encode(config: StoredConfig) -> bytes:
    """The file's bytes. Raises ValueError for a config that would not load back as itself."""
    if config.version != SCHEMA_VERSION:
        raise ValueError(f"can only write schema version {SCHEMA_VERSION}")
    candidate = config.candidate
    if candidate is not None and candidate.candidate is not None:
        raise ValueError("a candidate configuration cannot hold a candidate")
    doc = {
        "format": FORMAT,
        "version": SCHEMA_VERSION,
        **_settings(config),
        "last_error": config.last_error,
        "flags": asdict(config.flags),
        "candidate": None if candidate is None else _settings(candidate),
    }
    data = (json.dumps(doc, indent=2) + "\n").encode("ascii")
    if decode(data) != config:  # wrong field types: refuse to write what load would reject
        raise ValueError("configuration does not survive encoding (check its field types)")
    return data


def _settings(config: StoredConfig) -> dict[str, Any]:
    return {
        "networks": [{**asdict(n), "ssid": n.ssid.hex()} for n in config.networks],
        "token": config.token,
        "host": config.host,
        "port": config.port,
        "port_ssl": config.port_ssl,
        "static_ip": None if config.static_ip is None else asdict(config.static_ip),
    }


def decode(data: bytes) -> StoredConfig:
    """Parse the file's bytes. Raises ConfigError (and nothing else) for anything unusable."""
    if len(data) > MAX_SIZE:
        raise ConfigError(f"larger than {MAX_SIZE} bytes")
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError):  # undecodable text, absurd nesting
        raise ConfigError("not JSON text") from None
    if not isinstance(doc, dict):
        raise ConfigError("not a JSON object")
    if doc.get("format") != FORMAT:
        raise ConfigError(f"no format marker {FORMAT!r}: a foreign file")
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise ConfigError("no valid schema version")
    if version > SCHEMA_VERSION:
        raise ConfigError(f"schema version {version} is newer than this agent's ({SCHEMA_VERSION})")
    candidate = _nullable(doc, "candidate", dict) if "candidate" in doc else None
    return replace(
        _decode_settings(doc, version),
        last_error=_field(doc, "last_error", int),
        flags=Flags(valid=_field(_field(doc, "flags", dict), "valid", bool)),
        candidate=None if candidate is None else _decode_settings(candidate, version),
    )


def _decode_settings(doc: dict[str, Any], version: int) -> StoredConfig:
    ip = _nullable(doc, "static_ip", dict)
    return StoredConfig(
        version=version,
        networks=tuple(_network(n) for n in _field(doc, "networks", list)),
        token=_field(doc, "token", str),
        host=_field(doc, "host", str),
        port=_port(doc, "port"),
        port_ssl=_port(doc, "port_ssl"),
        static_ip=None if ip is None else StaticIp(*(_field(ip, k, str) for k in _IP_FIELDS)),
    )


_IP_FIELDS = ("ip", "mask", "gw", "dns", "dns2")
_KINDS = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "an object"}


def _field(obj: dict[str, Any], key: str, kind: type[T]) -> T:
    value = obj.get(key)
    if type(value) is not kind:  # exact: JSON true is no port number
        raise ConfigError(f"field {key!r} is missing or not {_KINDS[kind]}")
    return value


def _nullable(obj: dict[str, Any], key: str, kind: type[T]) -> T | None:
    if key not in obj:
        raise ConfigError(f"field {key!r} is missing")
    return None if obj[key] is None else _field(obj, key, kind)


def _port(obj: dict[str, Any], key: str) -> int | None:
    port = _nullable(obj, key, int)
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"field {key!r} is not a port number")
    return port


def _network(obj: object) -> Network:
    if not isinstance(obj, dict):
        raise ConfigError("a network is not an object")
    ssid = _field(obj, "ssid", str)
    try:
        raw_ssid = bytes.fromhex(ssid)
    except ValueError:
        raise ConfigError("a network's 'ssid' is not hex") from None
    return Network(
        ssid=raw_ssid,
        password=_field(obj, "password", str),
        identity=_field(obj, "identity", str),
        eap=_field(obj, "eap", str),
        hidden=_field(obj, "hidden", bool),
        wired=_field(obj, "wired", bool) if "wired" in obj else False,  # absent before Ethernet
    )


# --- the file system --------------------------------------------------------------------------


class FileSystem(Protocol):
    """The few file operations the store needs; a test substitutes a recording fake."""

    def read(self, path: Path, limit: int) -> bytes:
        """The file's bytes, at most limit + 1 of them. FileNotFoundError when absent."""
        ...

    def create(self, path: Path) -> int:
        """Create or truncate a file for writing, mode 0600; returns its handle."""
        ...

    def write(self, handle: int, data: bytes) -> None: ...
    def fsync(self, handle: int) -> None: ...
    def close(self, handle: int) -> None: ...

    def rename(self, src: Path, dst: Path) -> None:
        """Atomically replace dst with src."""
        ...

    def fsync_dir(self, path: Path) -> None: ...

    def remove(self, path: Path) -> None:
        """FileNotFoundError when absent."""
        ...


class OsFileSystem:
    def read(self, path: Path, limit: int) -> bytes:
        with open(path, "rb") as f:
            return f.read(limit + 1)

    def create(self, path: Path) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a stale file keeps its old mode through O_TRUNC
        except BaseException:
            os.close(fd)
            raise
        return fd

    def write(self, handle: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view) :]

    def fsync(self, handle: int) -> None:
        os.fsync(handle)

    def close(self, handle: int) -> None:
        os.close(handle)

    def rename(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, path: Path) -> None:
        os.unlink(path)


# --- the store --------------------------------------------------------------------------------


class ConfigStore:
    def __init__(self, path: str | os.PathLike[str], fs: FileSystem | None = None) -> None:
        self.path = Path(path)
        self.temp_path = self.path.with_name(self.path.name + ".tmp")
        self._fs: FileSystem = fs if fs is not None else OsFileSystem()

    def load(self) -> LoadResult:
        """The stored config; the empty one, with the reason, when the file is unusable."""
        try:
            data = self._fs.read(self.path, MAX_SIZE)
        except FileNotFoundError:
            return LoadResult(StoredConfig.empty())
        except OSError as exc:
            return LoadResult(
                StoredConfig.empty(),
                f"{self.path}: unreadable ({exc.strerror or type(exc).__name__})",
            )
        try:
            return LoadResult(decode(data))
        except ConfigError as exc:
            return LoadResult(StoredConfig.empty(), f"{self.path}: {exc}")

    def save(self, config: StoredConfig) -> None:
        """Replace the stored config atomically and durably. OSError on failure (the old config
        stays); ValueError for a config that would not load back."""
        data = encode(config)
        fs = self._fs
        handle = fs.create(self.temp_path)
        try:
            try:
                fs.write(handle, data)
                fs.fsync(handle)
            finally:
                fs.close(handle)
            fs.rename(self.temp_path, self.path)
        except BaseException:
            self._remove(self.temp_path)
            raise
        fs.fsync_dir(self.path.parent)

    def check_writable(self) -> str | None:
        """Why a save would fail now (a directory in the file's place, a read-only or missing
        directory, no permission), or None. It creates and removes the temp file, and leaves the
        stored configuration as it was."""
        if self.path.is_dir():
            return f"{self.path} is a directory"
        try:
            self._fs.close(self._fs.create(self.temp_path))
            self._fs.remove(self.temp_path)
        except OSError as exc:
            return f"{self.path.parent}: cannot write there ({exc.strerror or type(exc).__name__})"
        return None

    def erase(self) -> None:
        """Remove the stored config (and any temp file); it then loads as empty."""
        try:
            self._fs.remove(self.path)
        except FileNotFoundError:
            pass
        self._remove(self.temp_path)
        self._fs.fsync_dir(self.path.parent)

    def _remove(self, path: Path) -> None:
        try:
            self._fs.remove(path)
        except OSError:  # best effort: a leftover temp file is never read, and is overwritten
            pass
