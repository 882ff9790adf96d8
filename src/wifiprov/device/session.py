"""The one provisioning session, whatever the transport (the SoftAP portal, Bluetooth LE).

Both transports hand a parsed configuration to ``Session.configure``: the same checks (the
password against the last scan, the interface), the same "not in provisioning mode" refusal,
the same saved candidate and the same ``ConfigReceived`` to the one state machine, so
``last_error`` and its codes are the same whichever way the device was provisioned.

Busy rule: the transport (and, for BLE, the central) that last configured, reset or talked to
the device holds the session while it keeps talking; another transport's ``set``/``connect``/
``/config``/``/reset`` is refused as busy until the holder has been silent for ``HOLD`` seconds
or has left (a BLE central disconnecting, the attempt ending in RUNNING). Reads (board info,
scans, status) are never refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from wifiprov.device import machine as sm
from wifiprov.device.store import Network, StaticIp, StoredConfig
from wifiprov.wire import edgent

if TYPE_CHECKING:
    from wifiprov.device.agent import Agent

log = logging.getLogger("wifiprov.device")

HOLD = 60.0  # seconds of silence after which the session's holder loses it
PORTAL = "portal"
TRANSPORT_WORDS = {PORTAL: "over its access point (HTTP)", "ble": "over Bluetooth"}


@dataclass(frozen=True)
class Refusal:
    kind: str  # "invalid", "busy", "not_provisioning" or "store"
    message: str  # for the user; never a secret


def mask(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) > 8 else "****"


class Session:
    def __init__(self, agent: Agent, clock: Callable[[], float] = time.monotonic) -> None:
        self.agent = agent
        self.clock = clock
        self.holder: str | None = None  # "portal" or "ble:<central>"
        self._last = 0.0

    # --- who holds it ---
    def busy_for(self, who: str) -> str | None:
        """Why ``who`` cannot act now (another transport holds the session), else None."""
        if self.holder is None or self.holder == who:
            return None
        if self.clock() - self._last >= HOLD:
            return None
        kind = self.holder.split(":", 1)[0]
        return (
            "busy: another provisioner is configuring this device "
            f"{TRANSPORT_WORDS.get(kind, kind)}; try again when it is done "
            f"(or after {HOLD:.0f} s without it)"
        )

    def seen(self, who: str) -> None:
        """``who`` talked to the device: it keeps (or takes, when free) the session."""
        if self.busy_for(who) is None:
            self.holder, self._last = who, self.clock()

    def claim(self, who: str) -> str | None:
        """``who`` wants to act: None and the session is its, or the busy message."""
        busy = self.busy_for(who)
        if busy is None:
            self.holder, self._last = who, self.clock()
        return busy

    def release(self, who: str) -> None:
        if self.holder == who:
            self.holder = None

    # --- configuring ---
    def defaults(self) -> edgent.ConfigDefaults:
        c = self.agent.config
        return edgent.ConfigDefaults(host=c.host, port=c.port, port_ssl=c.port_ssl)

    def configure(self, parsed: edgent.DeviceConfig, who: str) -> Refusal | None:
        """Take a configuration and try it; None when taken, else why not (nothing changed).
        Runs without awaiting from the checks to the dispatch, so it is atomic."""
        agent = self.agent
        security = next((e.security for e in agent._scan if e.ssid == parsed.ssid), None)
        try:
            if parsed.interface == "wifi":
                edgent.check_password(
                    parsed.password, security or ("WPA2-EAP" if parsed.eap else None)
                )
            self._check_interface(parsed)
        except edgent.ConfigError as exc:
            log.info("rejected a configuration (%s): %s", who.split(":")[0], exc)
            return Refusal("invalid", str(exc))
        busy = self.busy_for(who)
        if busy is not None:
            return Refusal("busy", busy)
        if not agent.machine.accepts_config():
            return Refusal(
                "not_provisioning",
                f"the device is not in provisioning mode ({agent.machine.state.value}): "
                "reset it (hold its button 10 s, or Reconfigure in the console) first",
            )
        pending = stored_config(parsed)
        if parsed.interface == "wifi" and security is None:
            # Not in the last scan: a hidden network, joined by probing its name.
            pending = replace(pending, networks=(replace(pending.networks[0], hidden=True),))
        problem = self.keep_candidate(pending if parsed.save else None)
        if problem:
            log.error("refused a configuration: %s", problem)
            return Refusal("store", problem)
        self.claim(who)
        log.info(
            "configuration received %s: %s, token %s, cloud %s%s",
            TRANSPORT_WORDS.get(who.split(":")[0], who),
            f"network {parsed.ssid.decode('utf-8', 'replace')!r}"
            if parsed.interface == "wifi"
            else "Ethernet",
            mask(parsed.token),
            parsed.host,
            " (saved: retried until it logs in)" if parsed.save else "",
        )
        agent.dispatch(sm.ConfigReceived(pending, save=parsed.save))
        return None

    def _check_interface(self, parsed: edgent.DeviceConfig) -> None:
        if parsed.interface == "eth" and self.agent.radio.wired_mac is None:
            raise edgent.ConfigError("if", "this device has no Ethernet interface")
        if parsed.interface not in ("wifi", "eth"):
            raise edgent.ConfigError("if", f"'{parsed.interface}' is not available on this device")
        # A static address that cannot work fails the attempt with 700, as in Edgent.

    def keep_candidate(self, candidate: StoredConfig | None) -> str | None:
        """Store ``candidate`` (save=1) beside the working configuration, or forget an earlier
        one; None when done, else why it could not be (nothing then changed)."""
        store = self.agent.store
        self.agent.store_problem = store.check_writable()
        if self.agent.store_problem:  # it could not keep the configuration once it logs in
            return f"the device cannot save a configuration: {self.agent.store_problem}"
        current = store.load().config
        if candidate is None and current.candidate is None:
            return None
        try:
            store.save(replace(current, candidate=candidate))
        except (OSError, ValueError) as exc:
            return f"the device cannot save the configuration: {exc}"
        return None


def stored_config(parsed: edgent.DeviceConfig) -> StoredConfig:
    static = None
    if parsed.static_ip:
        static = StaticIp(
            ip=parsed.ip or "",
            mask=parsed.mask or "",
            gw=parsed.gw or "",
            dns=parsed.dns or "",
            dns2=parsed.dns2 or "",
        )
    return StoredConfig(
        networks=(
            Network(
                ssid=parsed.ssid,
                password=parsed.password,
                identity=parsed.identity or "",
                eap=parsed.eap or "",
                wired=parsed.interface == "eth",
            ),
        ),
        token=parsed.token,
        host=parsed.host,
        port=parsed.port,
        port_ssl=parsed.port_ssl,
        static_ip=static,
    )
