"""The device agent's state machine (PROTOCOLS.md §2), with no I/O.

Everything that decides states, transitions, timeouts and retries lives here; the rest of the
agent feeds it events (the portal, the radio, the cloud link, the button, timers) and carries out
the actions it returns. Timers are actions too (``StartTimer``/``CancelTimer``) and come back as
``TimerFired`` events, so a test drives the whole machine with a fake clock in milliseconds.

``TRANSITIONS`` is the table: for each state, the events it handles and the handler. An event a
state does not list is ignored (and logged by the agent at debug level).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from wifiprov.wire.errors import ProvisioningError as E


class State(Enum):
    WAIT_CONFIG = "WAIT_CONFIG"  # AP up, nobody has read board info yet
    CONFIGURING = "CONFIGURING"  # AP up, a provisioner is talking to us
    CONNECTING_NET = "CONNECTING_NET"
    CONNECTING_CLOUD = "CONNECTING_CLOUD"
    RETRY_WAIT = "RETRY_WAIT"  # a working config failed; waiting (backoff) before trying again
    RUNNING = "RUNNING"
    RESET_CONFIG = "RESET_CONFIG"
    IDLE = "IDLE"  # nothing to do: no configuration and the AP closed


@dataclass(frozen=True)
class Settings:
    """Timeouts (seconds) and retries; Edgent's values are the defaults."""

    net_timeout: float = 50.0
    cloud_timeout: float = 50.0
    fresh_attempts: int = 1  # a fresh provisioning gets one attempt, as in Edgent
    retry_base: float = 2.0  # a provisioned device retries forever with backoff and jitter
    retry_max: float = 300.0
    config_timeout: float = 600.0  # newer Edgent: AP mode ends after 10 min if configured
    ap_linger: float = 5.0  # keep the AP this long after success, so the provisioner sees it
    ap_and_station: bool = True  # the radio can keep the AP up while the station connects


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boot:
    configured: bool  # the store holds a configuration that has logged in before


@dataclass(frozen=True)
class BoardInfoRead:
    pass


@dataclass(frozen=True)
class ClientsLeft:
    pass


@dataclass(frozen=True)
class ConfigReceived:
    config: Any  # a wire.edgent DeviceConfig; opaque here


@dataclass(frozen=True)
class NetUp:
    pass


@dataclass(frozen=True)
class NetFailed:
    code: int


@dataclass(frozen=True)
class CloudUp:
    pass


@dataclass(frozen=True)
class CloudFailed:
    code: int


@dataclass(frozen=True)
class TokenRejected:
    pass


@dataclass(frozen=True)
class LinkLost:
    pass


@dataclass(frozen=True)
class CloudLost:
    pass


@dataclass(frozen=True)
class ConfigStart:  # "config start" from the cloud console (Reconfigure)
    pass


@dataclass(frozen=True)
class ResetConfig:  # button held 10 s, /reset, or "config erase" from the cloud
    reason: str


@dataclass(frozen=True)
class TimerFired:
    name: str


@dataclass(frozen=True)
class ResetDone:  # internal: RESET_CONFIG has erased the configuration
    pass


Event = (
    Boot
    | BoardInfoRead
    | ClientsLeft
    | ConfigReceived
    | NetUp
    | NetFailed
    | CloudUp
    | CloudFailed
    | TokenRejected
    | LinkLost
    | CloudLost
    | ConfigStart
    | ResetConfig
    | TimerFired
    | ResetDone
)


# --- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartAp:
    pass


@dataclass(frozen=True)
class StopAp:
    pass


@dataclass(frozen=True)
class ConnectNet:
    config: Any  # the configuration to use: the pending one, or the stored one


@dataclass(frozen=True)
class ConnectCloud:
    config: Any


@dataclass(frozen=True)
class Disconnect:
    pass


@dataclass(frozen=True)
class Commit:
    """Save the pending configuration as the working one (first cloud login succeeded)."""

    config: Any


@dataclass(frozen=True)
class RecordError:
    code: int  # last_error to store and show in board info (0 clears it)


@dataclass(frozen=True)
class EraseConfig:
    pass


@dataclass(frozen=True)
class StartTimer:
    name: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Log:
    line: str


Action = (
    StartAp
    | StopAp
    | ConnectNet
    | ConnectCloud
    | Disconnect
    | Commit
    | RecordError
    | EraseConfig
    | StartTimer
    | CancelTimer
    | Log
)

NET_TIMER = "net"
CLOUD_TIMER = "cloud"
RETRY_TIMER = "retry"
CONFIG_TIMER = "config"
AP_LINGER_TIMER = "ap_linger"


@dataclass
class Context:
    """What the machine remembers beside its state."""

    configured: bool = False  # a working configuration is stored
    pending: Any = None  # a configuration being tried (fresh provisioning), else None
    attempt: int = 0  # failed attempts in a row (for backoff; for fresh: against the limit)
    retry: State = State.CONNECTING_NET  # where RETRY_WAIT resumes
    ap_up: bool = False
    history: list[str] = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        return self.pending is not None


Handler = Callable[["Machine", Any], State | None]


class Machine:
    def __init__(
        self,
        settings: Settings | None = None,
        stored: Any = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings or Settings()
        self.state = State.IDLE
        self.ctx = Context()
        self.stored = stored  # the working configuration, as last committed
        self._rng = rng
        self._out: list[Action] = []

    # The one entry point.
    def handle(self, event: Event) -> list[Action]:
        self._out = []
        handler = TRANSITIONS[self.state].get(type(event)) or ANY_STATE.get(type(event))
        if handler is None:
            return []
        target = handler(self, event)
        if target is not None and target is not self.state:
            self._enter(target, event)
        return self._out

    # --- helpers used by the handlers ---
    def emit(self, *actions: Action) -> None:
        self._out.extend(actions)

    def _enter(self, target: State, cause: Event) -> None:
        before = self.state
        self.state = target
        self.ctx.history.append(target.value)
        self.emit(Log(f"{before.value} -> {target.value} ({describe(cause)})"))
        enter = ENTER.get(target)
        if enter is not None:
            enter(self)

    def _config(self) -> Any:
        return self.ctx.pending if self.ctx.fresh else self.stored

    def _backoff(self) -> float:
        s = self.settings
        delay: float = min(s.retry_max, s.retry_base * 2.0 ** min(self.ctx.attempt - 1, 16))
        return delay * (0.5 + self._rng() / 2)  # jitter: 50..100% of the delay

    def _failed(self, code: int, retry: State) -> State:
        """An attempt failed: a fresh config gives up at once, a working one retries forever."""
        self.ctx.attempt += 1
        self.emit(CancelTimer(NET_TIMER), CancelTimer(CLOUD_TIMER), Disconnect())
        if self.ctx.fresh:
            if self.ctx.attempt < self.settings.fresh_attempts:
                self.ctx.retry = State.CONNECTING_NET
                return State.RETRY_WAIT
            self.emit(RecordError(code), Log(f"provisioning failed: error {code}"))
            self.ctx.pending = None
            return State.WAIT_CONFIG
        self.ctx.retry = retry
        return State.RETRY_WAIT


# --- entering states ----------------------------------------------------------------------------


def _enter_ap_mode(m: Machine) -> None:
    m.emit(CancelTimer(AP_LINGER_TIMER))
    if not m.ctx.ap_up:
        m.ctx.ap_up = True
        m.emit(StartAp())
    if m.ctx.configured:  # came here with a working config: resume it if nobody configures us
        m.emit(StartTimer(CONFIG_TIMER, m.settings.config_timeout))


def _enter_connecting_net(m: Machine) -> None:
    # Classic Edgent drops its AP here; with AP+station we keep it while trying a fresh config,
    # so the provisioner can watch the outcome live.
    if m.ctx.ap_up and not (m.ctx.fresh and m.settings.ap_and_station):
        m.ctx.ap_up = False
        m.emit(StopAp())
    config = m._config()
    networks = max(1, len(getattr(config, "networks", ())))  # one timeout per saved network
    m.emit(
        CancelTimer(CONFIG_TIMER),
        ConnectNet(config),
        StartTimer(NET_TIMER, m.settings.net_timeout * networks),
    )


def _enter_connecting_cloud(m: Machine) -> None:
    m.emit(ConnectCloud(m._config()), StartTimer(CLOUD_TIMER, m.settings.cloud_timeout))


def _enter_retry_wait(m: Machine) -> None:
    delay = 0.0 if m.ctx.fresh else m._backoff()
    m.emit(
        Log(f"attempt {m.ctx.attempt} failed; next try in {delay:.1f} s"),
        StartTimer(RETRY_TIMER, delay),
    )


def _enter_running(m: Machine) -> None:
    m.ctx.attempt = 0
    if m.ctx.ap_up:
        m.emit(StartTimer(AP_LINGER_TIMER, m.settings.ap_linger))


def _enter_reset(m: Machine) -> None:
    m.ctx.configured = False
    m.ctx.pending = None
    m.stored = None
    m.emit(
        CancelTimer(NET_TIMER),
        CancelTimer(CLOUD_TIMER),
        CancelTimer(RETRY_TIMER),
        CancelTimer(CONFIG_TIMER),
        Disconnect(),
        EraseConfig(),
        RecordError(0),
    )
    m._enter(State.WAIT_CONFIG, ResetDone())


ENTER: dict[State, Callable[[Machine], None]] = {
    State.WAIT_CONFIG: _enter_ap_mode,
    State.CONNECTING_NET: _enter_connecting_net,
    State.CONNECTING_CLOUD: _enter_connecting_cloud,
    State.RETRY_WAIT: _enter_retry_wait,
    State.RUNNING: _enter_running,
    State.RESET_CONFIG: _enter_reset,
}


# --- handlers -----------------------------------------------------------------------------------


def _boot(m: Machine, ev: Boot) -> State:
    m.ctx.configured = ev.configured
    return State.CONNECTING_NET if ev.configured else State.WAIT_CONFIG


def _configure(m: Machine, ev: ConfigReceived) -> State:
    m.ctx.pending = ev.config
    m.ctx.attempt = 0
    m.emit(CancelTimer(CONFIG_TIMER), RecordError(0))
    return State.CONNECTING_NET


def _net_up(m: Machine, ev: NetUp) -> State:
    m.emit(CancelTimer(NET_TIMER))
    return State.CONNECTING_CLOUD


def _cloud_up(m: Machine, ev: CloudUp) -> State:
    m.emit(CancelTimer(CLOUD_TIMER))
    if m.ctx.fresh:
        m.stored = m.ctx.pending
        m.ctx.pending = None
        m.ctx.configured = True
        m.emit(Commit(m.stored), RecordError(0))
    return State.RUNNING


def _net_failed(m: Machine, ev: NetFailed) -> State:
    return m._failed(ev.code, retry=State.CONNECTING_NET)


def _cloud_failed(m: Machine, ev: CloudFailed) -> State:
    return m._failed(ev.code, retry=State.CONNECTING_CLOUD)


def _token_rejected(m: Machine, ev: TokenRejected) -> State:
    m.emit(
        CancelTimer(CLOUD_TIMER),
        Disconnect(),
        RecordError(E.TOKEN_REJECTED),
        Log("the cloud rejected the token (status 9): back to provisioning"),
    )
    m.ctx.pending = None
    return State.WAIT_CONFIG


def _net_timer(m: Machine, ev: TimerFired) -> State | None:
    if ev.name == NET_TIMER:
        return m._failed(E.NETWORK_TIMEOUT, retry=State.CONNECTING_NET)
    return None


def _cloud_timer(m: Machine, ev: TimerFired) -> State | None:
    if ev.name == CLOUD_TIMER:
        return m._failed(E.CLOUD_TIMEOUT, retry=State.CONNECTING_CLOUD)
    return None


def _retry_timer(m: Machine, ev: TimerFired) -> State | None:
    return m.ctx.retry if ev.name == RETRY_TIMER else None


def _running_timer(m: Machine, ev: TimerFired) -> State | None:
    if ev.name == AP_LINGER_TIMER and m.ctx.ap_up:
        m.ctx.ap_up = False
        m.emit(StopAp())
    return None


def _ap_timer(m: Machine, ev: TimerFired) -> State | None:
    if ev.name == CONFIG_TIMER and m.ctx.configured:
        m.emit(Log("nobody configured the device: resuming its stored configuration"))
        return State.CONNECTING_NET
    return None


def _link_lost(m: Machine, ev: LinkLost) -> State:
    m.emit(CancelTimer(CLOUD_TIMER), Disconnect())
    return State.CONNECTING_NET


def _cloud_lost(m: Machine, ev: CloudLost) -> State:
    m.emit(Disconnect())
    return State.CONNECTING_CLOUD


def _config_start(m: Machine, ev: ConfigStart) -> State:
    m.emit(CancelTimer(NET_TIMER), CancelTimer(CLOUD_TIMER), CancelTimer(RETRY_TIMER), Disconnect())
    m.ctx.pending = None
    return State.WAIT_CONFIG


def _reset(m: Machine, ev: ResetConfig) -> State:
    return State.RESET_CONFIG


def _to(state: State) -> Handler:
    return lambda m, ev: state


TRANSITIONS: dict[State, dict[type, Handler]] = {
    State.IDLE: {Boot: _boot},
    State.WAIT_CONFIG: {
        BoardInfoRead: _to(State.CONFIGURING),
        ConfigReceived: _configure,
        TimerFired: _ap_timer,
    },
    State.CONFIGURING: {
        ClientsLeft: _to(State.WAIT_CONFIG),
        ConfigReceived: _configure,
        TimerFired: _ap_timer,
    },
    State.CONNECTING_NET: {
        NetUp: _net_up,
        NetFailed: _net_failed,
        TimerFired: _net_timer,
        ConfigReceived: _configure,  # a provisioner corrects its input while we still try
    },
    State.RETRY_WAIT: {TimerFired: _retry_timer},
    State.CONNECTING_CLOUD: {
        CloudUp: _cloud_up,
        CloudFailed: _cloud_failed,
        TokenRejected: _token_rejected,
        LinkLost: _link_lost,
        TimerFired: _cloud_timer,
    },
    State.RUNNING: {
        LinkLost: _link_lost,
        CloudLost: _cloud_lost,
        TokenRejected: _token_rejected,
        TimerFired: _running_timer,
    },
    State.RESET_CONFIG: {},
}
# Events every state obeys (the cloud's "config start" can only arrive while connected).
ANY_STATE: dict[type, Handler] = {ResetConfig: _reset, ConfigStart: _config_start}


def describe(event: Any) -> str:
    """An event in words for the one-line log (never with secrets: configs are not printed)."""
    name = type(event).__name__
    code = getattr(event, "code", None)
    if code is not None:
        return f"{name} {code}"
    if isinstance(event, ResetConfig):
        return f"reset: {event.reason}"
    if isinstance(event, TimerFired):
        return f"{event.name} timer"
    return name
