"""The virtual air: a folder of JSON files, shared between processes, that describes a WiFi world.

    <air>/networks/<id>.json    networks a station can join, each with scripted faults
    <air>/aps/<device>.json     access points opened by sim devices, with their portal's address
    <air>/stations/<name>.json  who joined what: a device's station on a network, a phone on an AP

A file's name (without ``.json``) is its id; names are unique within the air. Every file is
written whole and atomically (a temp file, then a rename, or a link when the name must be new),
so a reader never sees half a file; a file that does not parse (someone is editing it by hand) is
skipped with a warning. When two processes edit the same file at once, the last writer wins.

A network file, as written (``ssid_text`` is for people reading it; ``ssid_hex`` wins, and a
hand-written file may give ``ssid_text`` alone)::

    {"ssid_hex": "486f6d65", "ssid_text": "Home", "security": "WPA2", "password": "...",
     "rssi": -50, "channel": 6, "bssid": "02:…", "hidden": false,
     "faults": {"wrong_password": false, "not_found": false, "dhcp_fail": false,
                "assoc_delay": 0.0}, "identity": ""}

The files hold WiFi passwords: they are created readable by their owner only (mode 0600).
Readers wait for changes with ``wait_for_change()`` or their own ``changes()`` feed (inotify,
see ``wifiprov.sim.watch``), which may name the entries they care about (``changes(("stations",
"dev-1"))``), so a radio is woken by its own network and station, not by every change in the air.
The methods here do small synchronous file I/O. Listings (``networks()``, ``aps()``,
``stations()``) are kept in an index fed by the same inotify events: a listing re-reads only the
files that changed since the previous one, so many radios sharing one ``Air`` cost work in
proportion to what changed, not to the size of the air.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from wifiprov.sim.watch import ChangeFeed, FolderWatcher, WatchUnavailable

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_Parse = Callable[[str, Mapping[str, Any]], _T]

# `sec` values of Edgent's /wifi_scan.json (PROTOCOLS.md §1).
SECURITIES = (
    "OPEN",
    "WEP",
    "WPA",
    "WPA2",
    "WPA+WPA2",
    "WPA2-EAP",
    "WPA2 ENT",
    "WPA3",
    "WPA2+WPA3",
    "WAPI",
    "OWE",
    "unknown",
)
OPEN_SECURITIES = frozenset({"OPEN", "OWE"})  # no password
AP_ADDRESS = "192.168.4.1"
MAX_SSID = 32  # bytes, 802.11

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
FOLDERS = ("networks", "aps", "stations", "buttons")


def default_directory() -> Path:
    """The air used when none is given, so that sim devices, phones and ``wifiprov air`` meet:
    ``$WIFIPROV_AIR``, else ``$XDG_RUNTIME_DIR/wifiprov/air``, else ``/tmp/wifiprov-<uid>/air``."""
    if os.environ.get("WIFIPROV_AIR"):
        return Path(os.environ["WIFIPROV_AIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "wifiprov" / "air"
    return Path(tempfile.gettempdir()) / f"wifiprov-{os.getuid()}" / "air"


class AirError(Exception):
    """The air has no such entry, or refused an edit (the message says which, in words)."""


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} must be 1-64 letters, digits, '_', '.' or '-' "
            "(not starting with '.' or '-')"
        )
    return name


def derived_mac(seed: str) -> str:
    """A stable, locally administered unicast MAC (02:…) derived from ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def next_mac(mac: str) -> str:
    """``mac`` + 1 (as ESP32s number their soft-AP interface after the station's)."""
    value = (int(mac.replace(":", ""), 16) + 1) % (1 << 48)
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def address_in(prefix: str, seed: str) -> str:
    """A stable host address ``prefix.N`` (N in 2..254) derived from ``seed``."""
    return f"{prefix}.{2 + hashlib.sha256(seed.encode()).digest()[0] % 253}"


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit() and len(port) <= 5):
        raise ValueError(f"{text!r} is not HOST:PORT")
    if not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Faults:
    """What goes wrong when a station joins this network."""

    wrong_password: bool = False  # every password is rejected (722)
    not_found: bool = False  # out of range: absent from scans, joining fails (720)
    dhcp_fail: bool = False  # association works, no address comes (723)
    assoc_delay: float = 0.0  # seconds association takes (701 when past the caller's timeout)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.assoc_delay) and self.assoc_delay >= 0):
            raise ValueError("assoc_delay must be a number of seconds >= 0")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        return cls(
            wrong_password=_bool(data.get("wrong_password", False)),
            not_found=_bool(data.get("not_found", False)),
            dhcp_fail=_bool(data.get("dhcp_fail", False)),
            assoc_delay=float(data.get("assoc_delay", 0.0)),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Network:
    """A WiFi network in the air. Several networks may share an SSID (like a mesh)."""

    id: str
    ssid: bytes
    security: str = "WPA2"
    password: str = ""
    rssi: int = -50
    channel: int = 6
    bssid: str = ""  # add_network() derives one from the id when empty
    hidden: bool = False
    faults: Faults = field(default_factory=Faults)
    identity: str = ""  # enterprise networks: the only identity accepted ("": any)

    def __post_init__(self) -> None:
        check_name(self.id, "network id")
        if not 1 <= len(self.ssid) <= MAX_SSID:
            raise ValueError(f"an SSID is 1 to {MAX_SSID} bytes, not {len(self.ssid)}")
        if self.security not in SECURITIES:
            raise ValueError(f"security {self.security!r} is not one of {', '.join(SECURITIES)}")
        if not -120 <= self.rssi <= 0:
            raise ValueError(f"rssi {self.rssi} dBm is outside -120..0")
        if not 1 <= self.channel <= 233:
            raise ValueError(f"channel {self.channel} is outside 1..233")
        if self.bssid and not _MAC.fullmatch(self.bssid):
            raise ValueError(f"bssid {self.bssid!r} is not a lower-case MAC aa:bb:cc:dd:ee:ff")

    @property
    def open(self) -> bool:
        return self.security in OPEN_SECURITIES

    @property
    def enterprise(self) -> bool:
        return "EAP" in self.security or "ENT" in self.security

    @classmethod
    def from_json(cls, network_id: str, data: Mapping[str, Any]) -> Network:
        if "ssid_hex" in data:
            ssid = bytes.fromhex(data["ssid_hex"])
        else:
            ssid = str(data["ssid_text"]).encode()
        return cls(
            id=network_id,
            ssid=ssid,
            security=str(data.get("security", "WPA2")),
            password=str(data.get("password", "")),
            rssi=int(data.get("rssi", -50)),
            channel=int(data.get("channel", 6)),
            bssid=str(data.get("bssid", "")).lower() or derived_mac(f"network:{network_id}"),
            hidden=_bool(data.get("hidden", False)),
            faults=Faults.from_json(data.get("faults") or {}),
            identity=str(data.get("identity", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ssid_hex": self.ssid.hex(),
            "ssid_text": self.ssid.decode("utf-8", "replace"),
            "security": self.security,
            "password": self.password,
            "rssi": self.rssi,
            "channel": self.channel,
            "bssid": self.bssid,
            "hidden": self.hidden,
            "faults": self.faults.to_json(),
            "identity": self.identity,
        }


@dataclass(frozen=True)
class AccessPoint:
    """An access point a sim device opened; ``portal`` is where its portal really listens."""

    device: str
    ssid: str
    bssid: str
    address: str = AP_ADDRESS
    portal: tuple[str, int] | None = None  # None until the device's portal is listening
    passphrase: str | None = None  # None: an open AP
    captive: bool = False  # its DNS answers every name (a captive portal)

    def __post_init__(self) -> None:
        check_name(self.device, "device id")

    @property
    def open(self) -> bool:
        return self.passphrase is None

    @property
    def portal_url(self) -> str | None:
        """``http://host:port`` of the portal, where a real phone would use http://192.168.4.1."""
        return None if self.portal is None else f"http://{format_address(self.portal)}"

    @classmethod
    def from_json(cls, device: str, data: Mapping[str, Any]) -> AccessPoint:
        portal = data.get("portal")
        passphrase = data.get("passphrase")
        return cls(
            device=device,
            ssid=str(data["ssid"]),
            bssid=str(data["bssid"]),
            address=str(data.get("address", AP_ADDRESS)),
            portal=None if portal is None else parse_address(str(portal)),
            passphrase=None if passphrase is None else str(passphrase),
            captive=_bool(data.get("captive", False)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ssid": self.ssid,
            "bssid": self.bssid,
            "address": self.address,
            "portal": None if self.portal is None else format_address(self.portal),
            "passphrase": self.passphrase,
            "captive": self.captive,
        }


@dataclass(frozen=True)
class Station:
    """A station that joined a network (``network``) or a device's access point (``ap``)."""

    name: str
    mac: str
    ip: str
    ssid: bytes
    bssid: str
    network: str | None = None  # network id
    ap: str | None = None  # device id of the access point

    def __post_init__(self) -> None:
        check_name(self.name, "station name")

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> Station:
        network, ap = data.get("network"), data.get("ap")
        return cls(
            name=name,
            mac=str(data["mac"]),
            ip=str(data["ip"]),
            ssid=bytes.fromhex(data["ssid_hex"]),
            bssid=str(data["bssid"]),
            network=None if network is None else str(network),
            ap=None if ap is None else str(ap),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mac": self.mac,
            "ip": self.ip,
            "ssid_hex": self.ssid.hex(),
            "ssid_text": self.ssid.decode("utf-8", "replace"),
            "bssid": self.bssid,
            "network": self.network,
            "ap": self.ap,
        }


class Air:
    """The virtual air in ``directory`` (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        for name in FOLDERS:
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        self._watcher: FolderWatcher | None = None
        self._feed: ChangeFeed | None = None
        self._indexed = True  # listings come from the index while this is True (not closed)
        self._listings: dict[str, _Listing[Any]] = {
            "networks": _Listing(self, "networks", Network.from_json),
            "aps": _Listing(self, "aps", AccessPoint.from_json),
            "stations": _Listing(self, "stations", Station.from_json),
        }

    def __repr__(self) -> str:
        return f"Air({str(self.directory)!r})"

    # -- devices running in this air

    def claim_device(self, preferred: str = "device", limit: int = 100) -> tuple[str, int]:
        """A device id no running process holds in this air: ``preferred``, else
        ``preferred-2``, ``-3`` ... Returns the id and a file descriptor whose lock (``flock``)
        holds it until the process ends or closes it, so two sim devices started without ids
        get their own name (and MAC, and AP name). A lock dies with its process: a crashed
        device frees its id."""
        folder = self.directory / "devices"
        folder.mkdir(exist_ok=True)
        for n in range(1, limit + 1):
            name = check_name(preferred if n == 1 else f"{preferred}-{n}", "device id")
            fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return name, fd
        raise AirError(f"{limit} devices named like {preferred!r} are running in this air")

    # -- networks

    def add_network(
        self,
        ssid: bytes | str,
        password: str = "",
        *,
        security: str | None = None,
        rssi: int = -50,
        channel: int = 6,
        bssid: str | None = None,
        hidden: bool = False,
        faults: Faults | None = None,
        identity: str = "",
        network_id: str | None = None,
    ) -> Network:
        """Add a network; security defaults to WPA2 with a password, OPEN without.

        Without ``network_id`` the id is made from the SSID (``home-wifi``, then ``home-wifi-2``
        ...); an explicit id that exists already is an AirError."""
        raw = ssid.encode() if isinstance(ssid, str) else bytes(ssid)
        base = network_id or _slug(raw)
        for attempt in range(1, 1000):
            candidate = base if attempt == 1 else f"{base}-{attempt}"
            network = Network(
                id=candidate,
                ssid=raw,
                security=security or ("WPA2" if password else "OPEN"),
                password=password,
                rssi=rssi,
                channel=channel,
                bssid=(bssid or derived_mac(f"network:{candidate}")).lower(),
                hidden=hidden,
                faults=faults or Faults(),
                identity=identity,
            )
            try:
                _write(self._path("networks", candidate), network.to_json(), exclusive=True)
            except FileExistsError:
                if network_id is not None:
                    raise AirError(f"the air already has a network {network_id!r}") from None
                continue
            return network
        raise AirError(f"too many networks named like {base!r}")

    def network(self, network_id: str) -> Network | None:
        """The network ``network_id``; None when there is none (AirError: it does not parse)."""
        return self._get("networks", network_id, Network.from_json)

    def networks(self) -> list[Network]:
        return self._list("networks")

    def update_network(self, network_id: str, **changes: Any) -> Network:
        """Change some fields of a network (``rssi=-80``, ``password="…"``, ``faults=Faults()``)."""
        if "id" in changes:
            raise AirError("a network's id cannot change: remove it and add it again")
        if isinstance(changes.get("ssid"), str):
            changes["ssid"] = changes["ssid"].encode()
        network = replace(self._existing(network_id), **changes)
        _write(self._path("networks", network_id), network.to_json())
        return network

    def set_faults(self, network_id: str, **faults: Any) -> Network:
        """Script faults, keeping the others: ``set_faults("home", wrong_password=True)``."""
        network = self._existing(network_id)
        return self.update_network(network_id, faults=replace(network.faults, **faults))

    def remove_network(self, network_id: str) -> None:
        if not _remove(self._path("networks", network_id)):
            raise AirError(f"the air has no network {network_id!r}")

    # -- access points opened by sim devices

    def publish_ap(self, ap: AccessPoint) -> None:
        _write(self._path("aps", ap.device), ap.to_json())

    def withdraw_ap(self, device: str) -> bool:
        """Remove a device's access point; False when it had none."""
        return _remove(self._path("aps", device))

    def ap(self, device: str) -> AccessPoint | None:
        return self._get("aps", device, AccessPoint.from_json)

    def aps(self) -> list[AccessPoint]:
        return self._list("aps")

    # -- stations

    def record_station(self, station: Station) -> None:
        _write(self._path("stations", station.name), station.to_json())

    def remove_station(self, name: str) -> bool:
        """Forget a station; False when there was none."""
        return _remove(self._path("stations", name))

    def station(self, name: str) -> Station | None:
        return self._get("stations", name, Station.from_json)

    def stations(self) -> list[Station]:
        return self._list("stations")

    # -- changes

    def changes(self, *entries: tuple[str, str | None]) -> ChangeFeed:
        """A feed of changes to the air from now on, for one consumer (see ``ChangeFeed``): to
        anything, or only to ``entries`` — ``(folder, id)``, or ``(folder, None)`` for any entry
        of that folder: ``changes(("networks", "home"), ("aps", None))``."""
        self._indexed = True
        keys = None
        if entries:
            for folder, _ in entries:
                if folder not in FOLDERS:
                    raise AirError(f"the air has no folder {folder!r} (it has {FOLDERS})")
            keys = {(f, None if n is None else f"{check_name(n)}.json") for f, n in entries}
        return self._watching().subscribe(keys)

    def _watching(self) -> FolderWatcher:
        if self._watcher is None:
            folders = [self.directory / name for name in FOLDERS]
            self._watcher = FolderWatcher(folders, accept=_is_entry)
            self._watcher.listen(self._changed)
            for listing in self._listings.values():
                listing.forget()  # changes before the watcher started were not heard
        return self._watcher

    def _changed(self, folder: str | None, name: str | None) -> None:
        if folder is None or name is None:
            for listing in self._listings.values():
                listing.forget()
        elif folder in self._listings:
            self._listings[folder].stale(name.removesuffix(".json"))

    def _list(self, folder: str) -> list[Any]:
        listing = self._listings[folder]
        if not self._indexed:
            return self._load(folder, listing.parse)
        try:
            self._watching().poll()
        except WatchUnavailable as exc:  # no inotify (left): read the whole folder each time
            log.debug("listing %s without an index: %s", folder, exc)
            return self._load(folder, listing.parse)
        return listing.entries()

    def watch(self) -> None:
        """Start watching now, so that changes from now on wake the next ``wait_for_change()``
        (its first call does this too)."""
        if self._feed is None:
            self._feed = self.changes()

    async def wait_for_change(self, timeout: float | None = None) -> bool:
        """Wait until the air changes: True, or False after ``timeout`` seconds.

        Changes since the previous call returned (or since ``watch()``) count, so a loop of
        "read, then wait" misses nothing. The air's own feed serves one consumer: code that shares
        this ``Air`` with others takes its own ``changes()``."""
        self.watch()
        assert self._feed is not None
        return await self._feed.wait(timeout)

    def close(self) -> None:
        """Stop watching (the files stay)."""
        if self._watcher is not None:
            self._watcher.close()
        self._watcher = self._feed = None
        self._indexed = False  # a closed air keeps no watcher: listings read the folders

    def __enter__(self) -> Air:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- buttons (a sim device's reset button, pressed from outside its process)

    def press_button(self, device: str, seconds: float) -> None:
        """Press ``device``'s button and release it ``seconds`` later."""
        _write(self._path("buttons", device), {"held": float(seconds)})

    def take_button_press(self, device: str) -> float | None:
        """How long the button was held, if it was pressed since the last call."""
        path = self._path("buttons", device)
        try:
            held = float(json.loads(path.read_bytes())["held"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        path.unlink(missing_ok=True)
        return held

    # -- files

    def _path(self, folder: str, name: str) -> Path:
        return self.directory / folder / f"{check_name(name)}.json"

    def _existing(self, network_id: str) -> Network:
        network = self.network(network_id)
        if network is None:
            raise AirError(f"the air has no network {network_id!r}")
        return network

    def _get(self, folder: str, name: str, parse: _Parse[_T]) -> _T | None:
        path = self._path(folder, name)
        try:
            data = json.loads(path.read_bytes())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return parse(name, data)
        except FileNotFoundError:
            return None
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise AirError(f"cannot read {path}: {exc}") from exc

    def _load(self, folder: str, parse: _Parse[_T]) -> list[_T]:
        found: list[_T] = []
        for path in sorted((self.directory / folder).glob("*.json")):
            if not _NAME.fullmatch(path.stem):
                continue
            try:
                entry = self._get(folder, path.stem, parse)
            except AirError as exc:  # being edited by hand, perhaps: the next change tells
                log.warning("skipping %s", exc)
                continue
            if entry is not None:
                found.append(entry)
        return found


class _Listing(Generic[_T]):
    """One folder's parsed entries, kept up to date by the air's change events: ``entries()``
    re-reads only the files named in events since its previous call (all of them at first, and
    after lost events)."""

    def __init__(self, air: Air, folder: str, parse: _Parse[_T]) -> None:
        self.air = air
        self.folder = folder
        self.parse = parse
        self._entries: dict[str, _T] = {}
        self._stale: set[str] | None = None  # None: the whole folder

    def forget(self) -> None:
        self._stale = None

    def stale(self, name: str) -> None:
        if self._stale is not None:
            self._stale.add(name)

    def entries(self) -> list[_T]:
        if self._stale is None:
            self._entries = {}
            folder = self.air.directory / self.folder
            names: set[str] = {p.stem for p in folder.glob("*.json")}
        else:
            names = self._stale
        self._stale = set()
        for name in names:
            entry = None
            if _NAME.fullmatch(name):
                try:
                    entry = self.air._get(self.folder, name, self.parse)
                except AirError as exc:  # being edited by hand, perhaps: the next change tells
                    log.warning("skipping %s", exc)
            if entry is None:
                self._entries.pop(name, None)
            else:
                self._entries[name] = entry
        return [self._entries[name] for name in sorted(self._entries)]


def _is_entry(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, not {value!r}")
    return value


def _slug(ssid: bytes) -> str:
    ascii_text = unicodedata.normalize("NFKD", ssid.decode("utf-8", "replace")).encode(
        "ascii", "ignore"
    )
    text = re.sub(r"[^a-z0-9]+", "-", ascii_text.decode().lower()).strip("-")
    return text[:40].rstrip("-") or "network"


def _write(path: Path, data: Mapping[str, Any], *, exclusive: bool = False) -> None:
    """Write ``path`` whole or not at all; with ``exclusive``, FileExistsError if it exists."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        if exclusive:
            os.link(tmp, path)  # atomic, and fails when the name is taken
        else:
            os.replace(tmp, path)
    finally:
        with suppress(FileNotFoundError):  # already renamed into place
            os.unlink(tmp)


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
