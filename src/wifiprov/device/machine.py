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
    candidate_retry: float = 120.0  # AP window between attempts of a saved, never-working config
    idle_timeout: float = 180.0  # CONFIGURING ends after this long without a portal request
    ap_and_station: bool = True  # the radio can keep the AP up while the station connects


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boot:
    configured: bool  # the store holds a configuration that has logged in before
    candidate: Any = None  # a configuration saved with save=1 that has not logged in yet


@dataclass(frozen=True)
class BoardInfoRead:
    pass


@dataclass(frozen=True)
class ClientsLeft:  # the last station left the AP
    pass


@dataclass(frozen=True)
class PortalActivity:  # a request reached the portal
    pass


@dataclass(frozen=True)
class ConfigReceived:
    config: Any  # the configuration to try; opaque here
    save: bool = False  # Edgent's save=1: the agent stored it; retry it until it works once
    remote: bool = False  # the cloud console's "connect": taken in RUNNING too


# The outcomes of an attempt carry the ``attempt`` id of the ConnectNet / ConnectCloud action
# they answer; the machine ignores an outcome of an attempt it has since replaced. ``None``
# (tests, radio callbacks) means "the current attempt".
@dataclass(frozen=True)
class NetUp:
    attempt: int | None = None


@dataclass(frozen=True)
class NetFailed:
    code: int
    attempt: int | None = None


@dataclass(frozen=True)
class CloudUp:
    attempt: int | None = None


@dataclass(frozen=True)
class CloudFailed:
    code: int
    attempt: int | None = None


@dataclass(frozen=True)
class TokenRejected:
    attempt: int | None = None


@dataclass(frozen=True)
class LinkLost:
    pass


@dataclass(frozen=True)
class CloudLost:
    attempt: int | None = None


@dataclass(frozen=True)
class ConfigStart:  # "config start" from the cloud console (Reconfigure)
    pass


@dataclass(frozen=True)
class ConfigStop:  # "config stop" from the console: leave AP mode for the working config
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
    | PortalActivity
    | ConfigReceived
    | NetUp
    | NetFailed
    | CloudUp
    | CloudFailed
    | TokenRejected
    | LinkLost
    | CloudLost
    | ConfigStart
    | ConfigStop
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
    attempt: int = 0  # the id its outcome events carry


@dataclass(frozen=True)
class ConnectCloud:
    config: Any
    attempt: int = 0


@dataclass(frozen=True)
class Disconnect:
    """End the attempt: the cloud connection and the network."""


@dataclass(frozen=True)
class DropCloud:
    """Close the cloud connection only; the network stays joined."""


@dataclass(frozen=True)
class Commit:
    """Save the pending configuration as the working one (first cloud login succeeded)."""

    config: Any


@dataclass(frozen=True)
class DiscardCandidate:
    """Forget the saved, never-working configuration (the working one stays)."""


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
    | DropCloud
    | Commit
    | DiscardCandidate
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
CANDIDATE_TIMER = "candidate"
IDLE_TIMER = "idle"


@dataclass
class Context:
    """What the machine remembers beside its state."""

    configured: bool = False  # a working configuration is stored
    pending: Any = None  # a configuration being tried (fresh provisioning), else None
    keep: bool = False  # pending is saved (save=1): retried with the AP open until it works
    from_boot: bool = False  # pending was loaded at boot (not sent by a provisioner just now)
    run: int = 0  # id of the latest ConnectNet / ConnectCloud
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
        self._again = False  # the handler restarts the current state (enter it once more)

    # The one entry point.
    def handle(self, event: Event) -> list[Action]:
        self._out = []
        self._again = False
        handler = TRANSITIONS[self.state].get(type(event)) or ANY_STATE.get(type(event))
        if handler is None:
            return []
        attempt = getattr(event, "attempt", None)
        if attempt is not None and attempt != self.ctx.run:
            return [Log(f"ignored {describe(event)}: it answers an attempt since replaced")]
        target = handler(self, event)
        if target is not None and (target is not self.state or self._again):
            self._enter(target, event)
        return self._out

    def accepts_config(self) -> bool:
        """Whether a ``/config`` is taken now: while the AP waits for one, and while a fresh
        configuration is being tried (the new one replaces it and the attempt restarts).
        Otherwise (a working configuration in use) the portal answers 409."""
        if self.state in (State.WAIT_CONFIG, State.CONFIGURING):
            return True
        return self.ctx.fresh and self.state in ATTEMPT_STATES

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
        """An attempt failed: a working config retries forever (AP closed: it has worked). A
        fresh config gives up after its attempts: back to the AP, where a saved one (save=1)
        that never worked is tried again every ``candidate_retry`` seconds until it does; one
        that fails beside a working config is dropped, and the working config resumes."""
        self.ctx.attempt += 1
        self.emit(CancelTimer(NET_TIMER), CancelTimer(CLOUD_TIMER))
        if not self.ctx.fresh:  # a working config retries the step that failed
            self.emit(Disconnect() if retry is State.CONNECTING_NET else DropCloud())
            self.ctx.retry = retry
            return State.RETRY_WAIT
        self.emit(Disconnect())
        if self.ctx.attempt < self.settings.fresh_attempts:
            self.ctx.retry = State.CONNECTING_NET
            return State.RETRY_WAIT
        self.emit(RecordError(code), Log(f"provisioning failed: error {code}"))
        if self.ctx.keep and not self.ctx.configured:
            self.emit(
                Log(
                    "the saved configuration has not worked yet: the access point stays open "
                    f"and it is tried again in {self.settings.candidate_retry:.0f} s"
                )
            )
            return State.WAIT_CONFIG
        if self._drop_pending():
            self._again = True  # (from CONNECTING_NET: start over with the working config)
            return State.CONNECTING_NET
        return State.WAIT_CONFIG

    def _drop_pending(self) -> bool:
        """Forget the fresh configuration (and its saved copy); True when it was loaded at boot
        beside a working configuration, which then resumes at once."""
        if self.ctx.keep:
            self.emit(DiscardCandidate())
            if self.ctx.configured:
                self.emit(Log("the new configuration did not work: keeping the working one"))
        resume = self.ctx.from_boot and self.ctx.configured
        self.ctx.pending = None
        self.ctx.keep = self.ctx.from_boot = False
        return resume


# --- entering states ----------------------------------------------------------------------------


def _enter_ap_mode(m: Machine) -> None:
    m.emit(CancelTimer(AP_LINGER_TIMER), CancelTimer(IDLE_TIMER))
    if not m.ctx.ap_up:
        m.ctx.ap_up = True
        m.emit(StartAp())
    if m.ctx.configured:  # came here with a working config: resume it if nobody configures us
        m.emit(StartTimer(CONFIG_TIMER, m.settings.config_timeout))
    elif m.ctx.keep:  # a saved config that never worked: try it again after an AP window
        m.emit(StartTimer(CANDIDATE_TIMER, m.settings.candidate_retry))


def _enter_configuring(m: Machine) -> None:
    m.emit(StartTimer(IDLE_TIMER, m.settings.idle_timeout))


def _enter_connecting_net(m: Machine) -> None:
    # Classic Edgent drops its AP here; with AP+station we keep it while trying a fresh config,
    # so the provisioner can watch the outcome live.
    if m.ctx.ap_up and not (m.ctx.fresh and m.settings.ap_and_station):
        m.ctx.ap_up = False
        m.emit(StopAp())
    config = m._config()
    networks = max(1, len(getattr(config, "networks", ())))  # one timeout per saved network
    m.ctx.run += 1
    m.emit(
        CancelTimer(CONFIG_TIMER),
        CancelTimer(CANDIDATE_TIMER),
        CancelTimer(IDLE_TIMER),
        ConnectNet(config, m.ctx.run),
        StartTimer(NET_TIMER, m.settings.net_timeout * networks),
    )


def _enter_connecting_cloud(m: Machine) -> None:
    m.ctx.run += 1
    m.emit(ConnectCloud(m._config(), m.ctx.run), StartTimer(CLOUD_TIMER, m.settings.cloud_timeout))


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
    m.ctx.keep = m.ctx.from_boot = False
    m.stored = None
    m.emit(
        CancelTimer(NET_TIMER),
        CancelTimer(CLOUD_TIMER),
        CancelTimer(RETRY_TIMER),
        CancelTimer(CONFIG_TIMER),
        CancelTimer(CANDIDATE_TIMER),
        CancelTimer(IDLE_TIMER),
        Disconnect(),
        EraseConfig(),
        RecordError(0),
    )
    m._enter(State.WAIT_CONFIG, ResetDone())


ENTER: dict[State, Callable[[Machine], None]] = {
    State.WAIT_CONFIG: _enter_ap_mode,
    State.CONFIGURING: _enter_configuring,
    State.CONNECTING_NET: _enter_connecting_net,
    State.CONNECTING_CLOUD: _enter_connecting_cloud,
    State.RETRY_WAIT: _enter_retry_wait,
    State.RUNNING: _enter_running,
    State.RESET_CONFIG: _enter_reset,
}


# --- handlers -----------------------------------------------------------------------------------


def _boot(m: Machine, ev: Boot) -> State:
    m.ctx.configured = ev.configured
    if ev.candidate is not None:  # saved with save=1, never logged in: try it first
        m.ctx.pending = ev.candidate
        m.ctx.keep = m.ctx.from_boot = True
        if not ev.configured and m.settings.ap_and_station:  # nothing has worked: AP open too
            m.ctx.ap_up = True
            m.emit(StartAp())
        return State.CONNECTING_NET
    return State.CONNECTING_NET if ev.configured else State.WAIT_CONFIG


def _configure(m: Machine, ev: ConfigReceived) -> State | None:
    if not (m.accepts_config() or ev.remote):
        m.emit(Log("ignored a configuration: the device is not in provisioning mode"))
        return None
    if m.state in ATTEMPT_STATES or m.state is State.RUNNING:  # replace it, and start over
        m.emit(
            CancelTimer(NET_TIMER),
            CancelTimer(CLOUD_TIMER),
            CancelTimer(RETRY_TIMER),
            Disconnect(),
            Log("a new configuration replaces the one being tried"),
        )
        m._again = True
    m.ctx.pending = ev.config
    m.ctx.keep = ev.save
    m.ctx.from_boot = False
    m.ctx.attempt = 0
    m.emit(CancelTimer(CONFIG_TIMER), CancelTimer(CANDIDATE_TIMER), RecordError(0))
    return State.CONNECTING_NET


def _net_up(m: Machine, ev: NetUp) -> State:
    m.emit(CancelTimer(NET_TIMER))
    return State.CONNECTING_CLOUD


def _cloud_up(m: Machine, ev: CloudUp) -> State:
    m.emit(CancelTimer(CLOUD_TIMER))
    if m.ctx.fresh:
        m.stored = m.ctx.pending
        m.ctx.pending = None
        m.ctx.keep = m.ctx.from_boot = False
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
    m._drop_pending()  # a rejected token never works: nothing to retry
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
        m._drop_pending()
        return State.CONNECTING_NET
    if ev.name == CANDIDATE_TIMER and m.ctx.keep and m.state is State.WAIT_CONFIG:
        m.emit(Log("trying the saved configuration again"))
        m.ctx.attempt = 0
        return State.CONNECTING_NET  # (in CONFIGURING a phone is busy: WAIT_CONFIG re-arms it)
    if ev.name == IDLE_TIMER and m.state is State.CONFIGURING:
        m.emit(Log(f"no portal request for {m.settings.idle_timeout:.0f} s: the app has gone"))
        return State.WAIT_CONFIG
    return None


def _portal_activity(m: Machine, ev: PortalActivity) -> None:
    m.emit(StartTimer(IDLE_TIMER, m.settings.idle_timeout))


def _link_lost(m: Machine, ev: LinkLost) -> State:
    m.emit(CancelTimer(CLOUD_TIMER), Disconnect())
    return State.CONNECTING_NET


def _cloud_lost(m: Machine, ev: CloudLost) -> State:
    m.emit(DropCloud())
    return State.CONNECTING_CLOUD


def _config_start(m: Machine, ev: ConfigStart) -> State:
    m.emit(CancelTimer(NET_TIMER), CancelTimer(CLOUD_TIMER), CancelTimer(RETRY_TIMER), Disconnect())
    m.ctx.pending = None
    m.ctx.keep = m.ctx.from_boot = False
    return State.WAIT_CONFIG


def _config_stop(m: Machine, ev: ConfigStop) -> State | None:
    """Edgent-Arduino: with a working configuration, connect with it; without one it would
    switch the radios off (IDLE), which would brick the device: the AP stays open instead."""
    if m.state not in (State.WAIT_CONFIG, State.CONFIGURING):
        return None
    if not m.ctx.configured:
        m.emit(Log("config stop: no configuration has worked yet, so the access point stays open"))
        return None
    m.emit(Log("config stop: leaving configuration mode"))
    m._drop_pending()
    return State.CONNECTING_NET


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
        PortalActivity: _portal_activity,
        ConfigReceived: _configure,
        TimerFired: _ap_timer,
    },
    # While a fresh configuration is tried, a new one replaces it (see accepts_config).
    State.CONNECTING_NET: {
        NetUp: _net_up,
        NetFailed: _net_failed,
        TimerFired: _net_timer,
        ConfigReceived: _configure,
    },
    State.RETRY_WAIT: {TimerFired: _retry_timer, ConfigReceived: _configure},
    State.CONNECTING_CLOUD: {
        CloudUp: _cloud_up,
        CloudFailed: _cloud_failed,
        TokenRejected: _token_rejected,
        LinkLost: _link_lost,
        TimerFired: _cloud_timer,
        ConfigReceived: _configure,
    },
    State.RUNNING: {
        LinkLost: _link_lost,
        CloudLost: _cloud_lost,
        TokenRejected: _token_rejected,
        TimerFired: _running_timer,
        ConfigReceived: _configure,  # only the console's connect (remote); the portal gets 409
    },
    State.RESET_CONFIG: {},
}
# The states of an attempt: a configuration arriving in one of them restarts the attempt.
ATTEMPT_STATES = frozenset({State.CONNECTING_NET, State.CONNECTING_CLOUD, State.RETRY_WAIT})
# Events every state obeys (the cloud's "config start" can only arrive while connected).
ANY_STATE: dict[type, Handler] = {
    ResetConfig: _reset,
    ConfigStart: _config_start,
    ConfigStop: _config_stop,
}


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
