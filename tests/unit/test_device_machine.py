"""The device state machine (PROTOCOLS.md §2), driven by events and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wifiprov.device import machine as sm
from wifiprov.device.machine import Machine, Settings, State
from wifiprov.wire.errors import ProvisioningError as E

CONFIG = "new-config"
STORED = "stored-config"


class Driver:
    """Feeds the machine and runs its timers on a fake clock."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.now = 0.0
        self.timers: dict[str, float] = {}
        self.actions: list[Any] = []

    def send(self, event: Any) -> list[Any]:
        actions = self.m.handle(event)
        self.actions += actions
        for a in actions:
            if isinstance(a, sm.StartTimer):
                self.timers[a.name] = self.now + a.seconds
            elif isinstance(a, sm.CancelTimer):
                self.timers.pop(a.name, None)
        return actions

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.timers:
            name, due = min(self.timers.items(), key=lambda kv: kv[1])
            if due > end:
                break
            del self.timers[name]
            self.now = due
            self.send(sm.TimerFired(name))
        self.now = end

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]


def configs(actions: list[Any]) -> list[Any]:
    return [a.config for a in actions]


def fresh(settings: Settings | None = None) -> Driver:
    d = Driver(Machine(settings, rng=lambda: 1.0))
    d.send(sm.Boot(configured=False))
    return d


def provisioned(settings: Settings | None = None) -> Driver:
    d = Driver(Machine(settings, stored=STORED, rng=lambda: 1.0))
    d.send(sm.Boot(configured=True))
    d.send(sm.NetUp())
    d.send(sm.CloudUp())
    assert d.m.state is State.RUNNING
    d.actions.clear()
    return d


def test_unconfigured_boot_opens_the_ap_and_waits() -> None:
    d = fresh()
    assert d.m.state is State.WAIT_CONFIG
    assert d.of(sm.StartAp) and not d.of(sm.ConnectNet)
    d.send(sm.BoardInfoRead())
    assert d.m.state is State.CONFIGURING
    d.send(sm.ClientsLeft())
    assert d.m.state is State.WAIT_CONFIG
    d.advance(3600)  # classic: no timeout without a working configuration
    assert d.m.state is State.WAIT_CONFIG


def test_fresh_provisioning_succeeds_and_commits_on_first_login() -> None:
    d = fresh()
    d.send(sm.BoardInfoRead())
    d.send(sm.ConfigReceived(CONFIG))
    assert d.m.state is State.CONNECTING_NET
    assert configs(d.of(sm.ConnectNet)) == [CONFIG]
    assert not d.of(sm.StopAp)  # AP + station: the AP stays up while we try
    d.send(sm.NetUp())
    assert d.m.state is State.CONNECTING_CLOUD and configs(d.of(sm.ConnectCloud)) == [CONFIG]
    assert not d.of(sm.Commit)  # nothing saved before the cloud accepts the token
    d.send(sm.CloudUp())
    assert d.m.state is State.RUNNING
    assert d.of(sm.Commit) == [sm.Commit(CONFIG)] and sm.RecordError(0) in d.actions
    assert not d.of(sm.StopAp)
    d.advance(Settings().ap_linger)  # the AP lingers so the provisioner can read the result
    assert d.of(sm.StopAp)


def test_classic_radio_drops_the_ap_before_connecting() -> None:
    d = fresh(Settings(ap_and_station=False))
    d.send(sm.ConfigReceived(CONFIG))
    assert d.actions.index(sm.StopAp()) < d.actions.index(d.of(sm.ConnectNet)[0])
    d.send(sm.NetFailed(E.AUTH_FAILED))
    assert d.m.state is State.WAIT_CONFIG and d.of(sm.StartAp)[-1] == sm.StartAp()
    assert len(d.of(sm.StartAp)) == 2


@pytest.mark.parametrize(
    "failure,code",
    [
        (sm.NetFailed(E.AUTH_FAILED), 722),
        (sm.NetFailed(E.NETWORK_NOT_FOUND), 720),
        (sm.NetFailed(E.NO_ADDRESS), 723),
    ],
)
def test_fresh_network_failure_returns_to_ap_with_the_code(failure: Any, code: int) -> None:
    d = fresh()
    d.send(sm.ConfigReceived(CONFIG))
    d.send(failure)
    assert d.m.state is State.WAIT_CONFIG
    assert sm.RecordError(code) in d.actions
    assert not d.of(sm.Commit) and not d.of(sm.EraseConfig)
    assert d.m.ctx.pending is None


@pytest.mark.parametrize("code", [702, 710, 711])
def test_fresh_cloud_failure_returns_to_ap_with_the_code(code: int) -> None:
    d = fresh()
    d.send(sm.ConfigReceived(CONFIG))
    d.send(sm.NetUp())
    d.send(sm.CloudFailed(code))
    assert d.m.state is State.WAIT_CONFIG and sm.RecordError(code) in d.actions


def test_timeouts_give_701_and_702() -> None:
    d = fresh()
    d.send(sm.ConfigReceived(CONFIG))
    d.advance(49.9)
    assert d.m.state is State.CONNECTING_NET
    d.advance(0.2)
    assert d.m.state is State.WAIT_CONFIG and sm.RecordError(701) in d.actions
    d.send(sm.ConfigReceived(CONFIG))
    d.send(sm.NetUp())
    d.advance(50.1)
    assert d.m.state is State.WAIT_CONFIG and sm.RecordError(702) in d.actions


def test_token_rejected_goes_to_ap_keeps_config_and_resumes_after_timeout() -> None:
    d = provisioned()
    d.send(sm.CloudLost())
    assert d.m.state is State.CONNECTING_CLOUD
    d.send(sm.TokenRejected())
    assert d.m.state is State.WAIT_CONFIG
    assert sm.RecordError(E.TOKEN_REJECTED) in d.actions and d.of(sm.StartAp)
    assert not d.of(sm.EraseConfig) and d.m.stored == STORED
    d.advance(599)
    assert d.m.state is State.WAIT_CONFIG
    d.advance(2)
    assert d.m.state is State.CONNECTING_NET
    assert d.of(sm.ConnectNet)[-1].config == STORED and d.of(sm.StopAp)


def test_config_start_from_the_cloud_keeps_the_configuration() -> None:
    d = provisioned()
    d.send(sm.ConfigStart())
    assert d.m.state is State.WAIT_CONFIG and d.of(sm.StartAp) and not d.of(sm.EraseConfig)
    d.send(sm.BoardInfoRead())
    d.send(sm.ConfigReceived(CONFIG))  # someone configures it: the new config is tried
    d.send(sm.NetFailed(E.AUTH_FAILED))
    assert d.m.state is State.WAIT_CONFIG and d.m.stored == STORED  # old one kept
    d.advance(601)
    assert d.m.state is State.CONNECTING_NET and d.of(sm.ConnectNet)[-1].config == STORED


def test_provisioned_device_retries_forever_with_backoff_and_no_ap() -> None:
    d = provisioned(Settings(retry_base=2, retry_max=60))
    d.send(sm.LinkLost())
    delays = []
    for _ in range(12):
        assert d.m.state is State.CONNECTING_NET
        d.send(sm.NetFailed(E.NETWORK_NOT_FOUND))
        assert d.m.state is State.RETRY_WAIT
        delays.append(d.timers[sm.RETRY_TIMER] - d.now)
        d.advance(delays[-1])
    assert delays[:6] == [2, 4, 8, 16, 32, 60] and max(delays) == 60
    assert not d.of(sm.StartAp) and not d.of(sm.RecordError)
    d.send(sm.NetUp())
    d.send(sm.CloudUp())
    assert d.m.state is State.RUNNING and d.m.ctx.attempt == 0


def test_backoff_has_jitter() -> None:
    draws = iter([0.0, 1.0])
    d = Driver(Machine(Settings(retry_base=10), stored=STORED, rng=lambda: next(draws)))
    d.send(sm.Boot(configured=True))
    d.send(sm.NetFailed(720))
    first = d.timers[sm.RETRY_TIMER]
    assert first == 5.0  # 50% of 10 s
    d.advance(first)
    d.send(sm.NetFailed(720))
    assert d.timers[sm.RETRY_TIMER] - d.now == 20.0  # 100% of 20 s


def test_cloud_loss_retries_the_cloud_not_the_network() -> None:
    d = provisioned()
    d.send(sm.CloudLost())
    d.send(sm.CloudFailed(702))
    assert d.m.state is State.RETRY_WAIT
    d.advance(10)
    assert d.m.state is State.CONNECTING_CLOUD


@pytest.mark.parametrize("state_events", [[], [sm.LinkLost()], [sm.ConfigStart()]])
def test_reset_erases_from_any_state(state_events: list[Any]) -> None:
    d = provisioned()
    for ev in state_events:
        d.send(ev)
    d.send(sm.ResetConfig("button held 10 s"))
    assert d.m.state is State.WAIT_CONFIG and d.of(sm.EraseConfig)
    assert d.m.stored is None and not d.m.ctx.configured
    d.advance(3600)
    assert d.m.state is State.WAIT_CONFIG  # nothing to resume after an erase
    assert "RESET_CONFIG" in d.m.ctx.history


def test_every_transition_is_logged_without_the_config() -> None:
    d = fresh()
    d.send(sm.ConfigReceived("SECRET-PASSWORD"))
    d.send(sm.NetFailed(722))
    lines = [a.line for a in d.of(sm.Log)]
    assert "WAIT_CONFIG -> CONNECTING_NET (ConfigReceived)" in lines
    assert "CONNECTING_NET -> WAIT_CONFIG (NetFailed 722)" in lines
    assert not any("SECRET" in line for line in lines)


def test_events_a_state_does_not_handle_are_ignored() -> None:
    d = fresh()
    assert d.send(sm.CloudUp()) == [] and d.m.state is State.WAIT_CONFIG
    assert d.send(sm.NetUp()) == []


# --- a saved configuration that never worked (save=1) ----------------------------------------


def test_unverified_saved_config_is_retried_with_the_ap_open_until_it_works() -> None:
    d = fresh()
    d.send(sm.ConfigReceived(CONFIG, save=True))
    d.send(sm.NetFailed(E.AUTH_FAILED))
    assert d.m.state is State.WAIT_CONFIG and d.m.ctx.ap_up and not d.of(sm.StopAp)
    assert not d.of(sm.DiscardCandidate) and sm.RecordError(E.AUTH_FAILED) in d.actions
    s = Settings()
    d.advance(s.candidate_retry - 1)
    assert d.m.state is State.WAIT_CONFIG
    d.advance(2)  # the AP window ends: one more attempt, the AP still open (AP + station)
    assert d.m.state is State.CONNECTING_NET and configs(d.of(sm.ConnectNet)) == [CONFIG] * 2
    d.advance(s.net_timeout + 1)  # the network is still not there
    assert d.m.state is State.WAIT_CONFIG and d.m.ctx.ap_up
    d.send(sm.BoardInfoRead())  # a phone is talking to us: no attempt under its feet
    d.advance(s.candidate_retry + 1)
    assert d.m.state is State.CONFIGURING
    d.send(sm.ClientsLeft())
    d.advance(s.candidate_retry + 1)
    assert d.m.state is State.CONNECTING_NET
    d.send(sm.NetUp())
    d.send(sm.CloudUp())
    assert d.m.state is State.RUNNING and d.of(sm.Commit) == [sm.Commit(CONFIG)]
    assert not d.m.ctx.keep and not d.of(sm.StopAp)[:-1]


def test_unverified_config_alternates_ap_window_and_attempt_on_a_single_radio() -> None:
    s = Settings(ap_and_station=False)
    d = fresh(s)
    d.send(sm.ConfigReceived(CONFIG, save=True))
    for _ in range(3):
        assert d.m.state is State.CONNECTING_NET and not d.m.ctx.ap_up
        d.advance(s.net_timeout + 1)
        assert d.m.state is State.WAIT_CONFIG and d.m.ctx.ap_up  # the AP reopens
        d.advance(s.candidate_retry + 1)
    assert len(d.of(sm.StartAp)) == 4 and len(d.of(sm.StopAp)) == 4  # boot AP + 3 reopened


def test_boot_with_only_an_unverified_config_opens_the_ap_and_tries_it() -> None:
    d = Driver(Machine(rng=lambda: 1.0))
    d.send(sm.Boot(configured=False, candidate=CONFIG))
    assert d.m.state is State.CONNECTING_NET and d.of(sm.StartAp)
    assert configs(d.of(sm.ConnectNet)) == [CONFIG]
    d.send(sm.NetFailed(E.AUTH_FAILED))
    assert d.m.state is State.WAIT_CONFIG and d.m.ctx.keep and not d.of(sm.StopAp)


def test_boot_with_a_working_and_an_unverified_config_falls_back_to_the_working_one() -> None:
    d = Driver(Machine(stored=STORED, rng=lambda: 1.0))
    d.send(sm.Boot(configured=True, candidate=CONFIG))
    assert configs(d.of(sm.ConnectNet)) == [CONFIG] and not d.of(sm.StartAp)
    d.send(sm.NetFailed(E.AUTH_FAILED))
    assert d.of(sm.DiscardCandidate) and d.m.state is State.CONNECTING_NET
    assert configs(d.of(sm.ConnectNet)) == [CONFIG, STORED]


def test_a_failed_new_config_beside_a_working_one_is_dropped() -> None:
    d = provisioned()
    d.send(sm.ConfigStart())
    d.send(sm.ConfigReceived(CONFIG, save=True))
    d.send(sm.NetFailed(E.AUTH_FAILED))
    assert d.m.state is State.WAIT_CONFIG and d.of(sm.DiscardCandidate)
    d.advance(Settings().config_timeout + 1)
    assert d.of(sm.ConnectNet)[-1].config == STORED


def test_a_rejected_token_drops_the_saved_config() -> None:
    d = fresh()
    d.send(sm.ConfigReceived(CONFIG, save=True))
    d.send(sm.NetUp())
    d.send(sm.TokenRejected())
    assert d.m.state is State.WAIT_CONFIG and d.of(sm.DiscardCandidate)
    d.advance(3600)
    assert d.m.state is State.WAIT_CONFIG and len(d.of(sm.ConnectNet)) == 1


# --- a second /config while the first is being tried ------------------------------------------


def _into(d: Driver, state: State) -> None:
    """Drive a fresh attempt of CONFIG into ``state``."""
    d.send(sm.ConfigReceived(CONFIG))
    if state in (State.CONNECTING_CLOUD, State.RETRY_WAIT):
        d.send(sm.NetUp())
    if state is State.RETRY_WAIT:
        d.send(sm.CloudFailed(E.CLOUD_OTHER))
    assert d.m.state is state


@pytest.mark.parametrize("state", [State.CONNECTING_NET, State.CONNECTING_CLOUD, State.RETRY_WAIT])
def test_a_second_config_replaces_the_attempt_and_stale_outcomes_are_ignored(
    state: State,
) -> None:
    d = fresh(Settings(fresh_attempts=2))
    _into(d, state)
    old_net = d.of(sm.ConnectNet)[-1].attempt
    old_cloud = d.of(sm.ConnectCloud)[-1].attempt if d.of(sm.ConnectCloud) else old_net
    assert d.m.accepts_config()
    d.send(sm.ConfigReceived("second-config"))
    assert d.m.state is State.CONNECTING_NET
    new = d.of(sm.ConnectNet)[-1]
    assert new.config == "second-config" and new.attempt not in (old_net, old_cloud)
    assert d.actions.index(d.of(sm.Disconnect)[-1]) < d.actions.index(new)
    # The first attempt's outcomes, late, change nothing.
    for stale in (
        sm.NetUp(old_net),
        sm.NetFailed(E.AUTH_FAILED, old_net),
        sm.CloudUp(old_cloud),
        sm.TokenRejected(old_cloud),
    ):
        d.send(stale)
        assert d.m.state is State.CONNECTING_NET and not d.of(sm.Commit)
    d.send(sm.NetUp(new.attempt))
    cloud = d.of(sm.ConnectCloud)[-1]
    assert cloud.config == "second-config"
    d.send(sm.CloudUp(cloud.attempt))
    assert d.of(sm.Commit) == [sm.Commit("second-config")]


def test_config_is_refused_while_a_working_config_is_in_use() -> None:
    d = provisioned()
    assert not d.m.accepts_config()
    d.send(sm.ConfigReceived(CONFIG))
    assert d.m.state is State.RUNNING and not d.of(sm.ConnectNet)
    d.send(sm.LinkLost())  # retrying the working config: not a provisioning attempt
    assert d.m.state is State.CONNECTING_NET and not d.m.accepts_config()


# --- the app leaving ---------------------------------------------------------------------------


def test_configuring_ends_when_the_app_goes_quiet() -> None:
    s = Settings()
    d = fresh(s)
    d.send(sm.BoardInfoRead())
    d.advance(s.idle_timeout - 10)
    d.send(sm.PortalActivity())  # still talking
    d.advance(s.idle_timeout - 10)
    assert d.m.state is State.CONFIGURING
    d.advance(11)
    assert d.m.state is State.WAIT_CONFIG


# --- the rule: never the AP closed with only a configuration that never worked ----------------

EVENTS = [
    sm.BoardInfoRead(),
    sm.ClientsLeft(),
    sm.PortalActivity(),
    sm.ConfigReceived(CONFIG),
    sm.ConfigReceived("saved-config", save=True),
    sm.NetUp(),
    sm.NetFailed(E.AUTH_FAILED),
    sm.CloudUp(),
    sm.CloudFailed(E.CLOUD_OTHER),
    sm.TokenRejected(),
    sm.LinkLost(),
    sm.CloudLost(),
    sm.ConfigStart(),
    sm.ResetConfig("test"),
]


@given(
    ap_sta=st.booleans(),
    boot=st.sampled_from(["none", "candidate"]),
    steps=st.lists(
        st.one_of(st.sampled_from(EVENTS), st.floats(min_value=0.1, max_value=700)), max_size=40
    ),
)
@settings(max_examples=300, deadline=None)
def test_never_bricked(ap_sta: bool, boot: str, steps: list[Any]) -> None:
    """Whatever happens, while no configuration has worked the machine either has its AP open
    or is in a bounded attempt (a timer running that ends it); it never rests with the AP shut."""
    s = Settings(ap_and_station=ap_sta)
    d = Driver(Machine(s, rng=lambda: 1.0))
    d.send(sm.Boot(configured=False, candidate="saved-config" if boot == "candidate" else None))
    for step in steps:
        if isinstance(step, float):
            d.advance(step)
        else:
            d.send(step)
        if d.m.ctx.configured:
            continue
        if d.m.state in (State.WAIT_CONFIG, State.CONFIGURING):
            assert d.m.ctx.ap_up
        else:
            assert d.m.state in sm.ATTEMPT_STATES, d.m.state
            assert d.m.ctx.ap_up or not ap_sta
            assert {sm.NET_TIMER, sm.CLOUD_TIMER, sm.RETRY_TIMER} & d.timers.keys()


# --- the cloud console ---------------------------------------------------------------------


def test_a_lost_cloud_connection_keeps_the_network() -> None:
    d = provisioned()
    d.send(sm.CloudLost())
    assert d.m.state is State.CONNECTING_CLOUD
    assert d.of(sm.DropCloud) and not d.of(sm.Disconnect)
    d.send(sm.CloudFailed(E.CLOUD_OTHER))  # a working config: retry the login, not the join
    assert d.m.ctx.retry is State.CONNECTING_CLOUD and not d.of(sm.Disconnect)


def test_console_connect_is_taken_while_running_and_falls_back_on_failure() -> None:
    d = provisioned()
    d.send(sm.ConfigReceived(CONFIG))  # the portal's: refused while running
    assert d.m.state is State.RUNNING and not d.of(sm.ConnectNet)
    d.send(sm.ConfigReceived(CONFIG, remote=True))
    assert d.m.state is State.CONNECTING_NET and d.of(sm.Disconnect)
    assert configs(d.of(sm.ConnectNet)) == [CONFIG]
    d.send(sm.NetFailed(E.AUTH_FAILED))
    assert d.m.state is State.WAIT_CONFIG and d.m.ctx.ap_up
    d.advance(Settings().config_timeout + 1)
    assert d.of(sm.ConnectNet)[-1].config == STORED


def test_config_stop_resumes_a_working_config_and_never_closes_an_only_ap() -> None:
    d = provisioned()
    d.send(sm.ConfigStart())
    d.send(sm.ConfigStop())
    assert d.m.state is State.CONNECTING_NET and d.of(sm.ConnectNet)[-1].config == STORED
    f = fresh()
    f.send(sm.ConfigStop())
    assert f.m.state is State.WAIT_CONFIG and f.m.ctx.ap_up and not f.of(sm.StopAp)
