"""The CLI's saved sign-in: cloud URL and bearer token in the user's config directory, mode 0600."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir


def config_dir() -> Path:
    return Path(os.environ.get("WIFIPROV_CONFIG_DIR") or user_config_dir("wifiprov"))


def session_path() -> Path:
    return config_dir() / "session.json"


def save(cloud: str, token: str, email: str) -> Path:
    """Write the session atomically; the file is never readable by others, not even briefly."""
    path = session_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"cloud": cloud, "token": token, "email": email}, f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def load() -> dict[str, Any] | None:
    try:
        data = json.loads(session_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "token" in data else None


def clear() -> bool:
    try:
        session_path().unlink()
        return True
    except FileNotFoundError:
        return False
