"""``warm.py GO ARGS...``: run ``wifiprov ARGS...`` through its own entry point
(``wifiprov.__main__.main``, what ``python -m wifiprov`` runs) once the file GO appears, with
the CLI's imports done beforehand. A CLI start costs 15-30 s of the guest's one emulated CPU;
started ahead, that time overlaps with waits on the radios (an AP coming back, NetworkManager
scanning) instead of adding to the group's run. Gives up after 10 minutes without GO.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import wifiprov.cli  # noqa: F401 - the imports, ahead of GO
import wifiprov.provisioner.wifi.nm  # noqa: F401 - `provision --wifi nm` imports it when run
from wifiprov.__main__ import main

if __name__ == "__main__":
    go = Path(sys.argv[1])
    for _ in range(6000):
        if go.exists():
            break
        time.sleep(0.1)
    else:
        sys.exit(f"warm.py: {go} never appeared")
    sys.argv = ["wifiprov", *sys.argv[2:]]
    main()
