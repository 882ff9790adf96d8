"""The device's UID: a random UUID kept across reboots, as Edgent-Arduino keeps one.

Edgent-Arduino (``src/BlynkSysUtils.cpp``, ``systemGetDeviceUID`` for ESP32/ESP8266) takes 16
random bytes, sets the version (4) and variant (RFC 4122) bits, writes them as lowercase
``8-4-4-4-12`` hex and keeps the string in its preferences; it changes only when the flash is
erased. Edgent reports it as ``uid`` in its board info and BLE ``info``, and sends it after login
as INTERNAL ``meta set "Device UID"``.

Here it lives in a small file of its own (one line: the UUID), mode 0644: it names the device,
it is no secret. The agent keeps it beside its store, not in it, so that erasing the
configuration keeps the device's identity. A missing, unreadable or malformed file gets a new
UID, written atomically (a temp file in the same directory, fsync, rename, fsync of the
directory): a crash leaves the old file or the new one. When the file cannot be written, the new
UID serves this run, with a warning; the next start makes another. The UID is never empty and
nothing here raises.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

log = logging.getLogger("wifiprov.device.identity")

MODE = 0o644
MAX_READ = 256  # bytes; a UID file is 37
UID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def new_uid() -> str:
    """A random version-4 UUID in Edgent's form: lowercase, 8-4-4-4-12 hex digits."""
    return str(uuid.uuid4())


def is_uid(text: str) -> bool:
    return UID_PATTERN.fullmatch(text) is not None


def load_or_create_uid(path: Path) -> str:
    """The UID stored at ``path``; a new one (stored there if possible) when there is none."""
    try:
        with open(path, "rb") as f:
            stored = f.read(MAX_READ).decode("ascii").strip()
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # a directory, no permission, not ASCII ...
        log.warning("cannot read the device UID from %s (%s); making a new one", path, exc)
    else:
        if is_uid(stored):
            return stored
        log.warning("%s does not hold a device UID; replacing it with a new one", path)
    uid = new_uid()
    try:
        _write(path, uid + "\n")
    except (OSError, ValueError) as exc:
        log.warning(
            "cannot store the device UID in %s (%s): %s serves this run only, and the next "
            "start will make another",
            path,
            exc,
            uid,
        )
    else:
        log.info("new device UID %s, stored in %s", uid, path)
    return uid


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MODE)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            os.fchmod(f.fileno(), MODE)  # the umask may have taken bits away
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # the rename is done; durability of the directory entry is best effort
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
