"""wifiprov: open WiFi provisioning for Linux devices, wire-compatible with Blynk.Edgent."""

from __future__ import annotations

import os
import sys


def _installed_version() -> str:
    """The version in the installed package's metadata (setuptools-scm wrote it from git when
    the package was built), found the way importlib.metadata finds it (first on sys.path), but
    without its imports (email, zipfile, csv ...: about 1 MB more for the device agent)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or os.curdir)
        except OSError:
            continue
        for name in names:
            if not (name.startswith("wifiprov-") and name.endswith(".dist-info")):
                continue
            try:
                with open(os.path.join(entry, name, "METADATA"), encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("Version:"):
                            return line.partition(":")[2].strip()
                        if not line.strip():  # the end of the headers
                            break
            except OSError:
                continue
    return "0+unknown"  # a source tree that was never installed


def __getattr__(name: str) -> str:
    if name == "__version__":  # read once, when first asked
        globals()["__version__"] = version = _installed_version()
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
