"""The autoscaler's pure decider and the replica calculator, replayed against a fake clock."""

from __future__ import annotations

import itertools
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelhost.autoscale as autoscale
from modelhost.autoscale import (
    Action,
    AutoscaleConfig,
    AutoscaleState,
    Decision,
    LoadSample,
    decide,
    replicas_for,
    replicas_formula,
)
from modelhost.errors import ValidationError

# Short windows keep the scenarios readable: refresh 1 s, down-delay 5 s, scale to zero after 10 s idle.
FAST = AutoscaleConfig(refresh_seconds=1.0, scale_down_delay_s=5.0, scale_to_zero_delay_s=10.0)
ZERO = AutoscaleConfig(min_replicas=0, refresh_seconds=1.0, scale_down_delay_s=5.0,
                       scale_to_zero_delay_s=10.0)

Row = tuple[float, int, int, int, int]  # now, ready replicas, busy, queued -> expected replicas


def replay(config: AutoscaleConfig, start: int, rows: list[Row]) -> list[Decision]:
    """Feed one sample per row, stamped ``now``, threading the returned state; check every row."""
    state, decisions = AutoscaleState(replicas=start), []
    for now, ready, busy, queued, expected in rows:
        decision = decide([LoadSample(now, ready, busy, queued)], config, state, now)
        assert decision.replicas == expected, f"t={now}: {decision.reason}"
        decisions.append(decision)
        state = decision.state
    return decisions


def steady(start: float, stop: float, ready: int, busy: int, queued: int, expected: int) -> list[Row]:
    """One row per second from ``start`` to ``stop`` inclusive, all with the same load and outcome."""
    return [(float(t), ready, busy, queued, expected) for t in range(int(start), int(stop) + 1)]


SCENARIOS: dict[str, tuple[AutoscaleConfig, int, list[Row]]] = {
    # 2 busy + 5 queued on 2 replicas = 350 %: desired ceil(7 / 0.7) = 10 at once, not 3.
    "step-up-sized-to-target": (FAST, 2, [(0, 2, 2, 5, 10), (1, 10, 7, 0, 10), (2, 10, 7, 0, 10)]),
    # 41 in hand wants ceil(41 / 0.7) = 59; max_replicas caps it, and it stays capped.
    "burst-clamped-to-max": (FAST, 1, [(0, 1, 1, 40, 10), (1, 10, 10, 30, 10), (2, 10, 10, 12, 10)]),
    # Load 7 wants 10 until t=0, then load 1 (wants 2): nothing moves until t=0 leaves the 5 s window,
    # then at most halving, one step per refresh: 10 -> 5 -> 3 -> 2, where it stays.
    "sustained-low-waits-then-gradual": (FAST, 10, [
        (0, 10, 7, 0, 10), *steady(1, 5, 10, 1, 0, 10),
        (6, 10, 1, 0, 5), (7, 5, 1, 0, 3), (8, 3, 1, 0, 2), *steady(9, 20, 2, 1, 0, 2),
    ]),
    # Load at the target then just below it (wants 10, then 9) never removes a replica.
    "oscillating-at-target-holds": (FAST, 10, [
        (t, 10, 7 if t % 2 == 0 else 6, 0, 10) for t in range(0, 30)
    ]),
    # Swinging 5 <-> 3 (wants 8 <-> 5): up to 8 on the first peak, then the peak recurs inside every
    # 5 s window, so the count never drops back.
    "oscillating-across-target-no-flap": (FAST, 6, [
        (0, 6, 3, 0, 6), *[(t, 8, 5 if t % 3 == 1 else 3, 0, 8) for t in range(1, 40)],
    ]),
    # 2 busy on 3 is 67 %, below 70 %, but 2 replicas would run at 100 %: the one-replica band holds 3.
    "just-below-target-band-holds": (FAST, 3, steady(0, 20, 3, 2, 0, 3)),
    # Idle load still leaves min_replicas running.
    "min-clamp": (AutoscaleConfig(min_replicas=2, refresh_seconds=1, scale_down_delay_s=5), 4, [
        *steady(0, 4, 4, 0, 0, 4), (5, 4, 0, 0, 2), *steady(6, 30, 2, 0, 0, 2),
    ]),
    "max-clamp-holds-at-max": (AutoscaleConfig(max_replicas=3, scale_down_delay_s=5), 3,
                               steady(0, 10, 3, 3, 9, 3)),
    # Idle: down to 1 after the down-delay, to 0 after 10 s idle; a burst of 25 at zero starts exactly
    # one replica and waits for it to be ready before sizing by load (ceil(25 / 0.7) = 36 -> max 10).
    "scale-to-zero-and-back": (ZERO, 2, [
        *steady(0, 4, 2, 0, 0, 2), (5, 2, 0, 0, 1), *steady(6, 9, 1, 0, 0, 1), (10, 1, 0, 0, 0),
        *steady(11, 20, 0, 0, 0, 0),
        (21, 0, 0, 25, 1), (22, 0, 0, 25, 1), (23, 0, 0, 25, 1), (24, 1, 1, 24, 10),
    ]),
    # One request at zero starts one replica; once it is ready, 1 busy of 1 is 100 % > 70 %: 2.
    "single-request-at-zero": (ZERO, 0, [(0, 0, 0, 0, 0), (1, 0, 0, 1, 1), (2, 1, 1, 0, 2)]),
    # A request every 4 s (inside every 5 s down window) keeps 2 replicas and never scales to zero.
    "intermittent-load-stays-up": (ZERO, 1, [(t, 1, 1 if t % 4 == 0 else 0, 0, 2) for t in range(0, 40)]),
}


@pytest.mark.parametrize(("config", "start", "rows"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenario(config: AutoscaleConfig, start: int, rows: list[Row]) -> None:
    replay(config, start, rows)


def test_step_up_reason_states_inputs() -> None:
    [decision] = replay(FAST, 1, [(0, 1, 1, 40, 10)])
    assert decision.action is Action.UP
    for part in ("up 1 -> 10", "load 41", "max over last 1s", "= 4100% of 1 ready", "target 70%",
                 "ceil(41 / 0.70) = 59", "clamped to autoscale_max_replicas 10"):
        assert part in decision.reason


def test_down_reason_states_window_and_limit() -> None:
    decisions = replay(FAST, 10, [(0, 10, 7, 0, 10), *steady(1, 5, 10, 1, 0, 10), (6, 10, 1, 0, 5)])
    assert decisions[-2].action is Action.HOLD
    assert "within target 70%: max load 7 over 5s wants 10" in decisions[-2].reason  # t=0's peak
    assert decisions[-1].action is Action.DOWN
    for part in ("down 10 -> 5", "max load 1 over the last 5s", "= 2", "at most halving per step"):
        assert part in decisions[-1].reason


def test_waits_a_full_window_after_a_restart() -> None:
    # A fresh state (control plane restarted) sees low load but has not watched for a window yet.
    state = AutoscaleState(replicas=8)
    for now in range(100, 105):
        decision = decide([LoadSample(now, 8, 0, 0)], FAST, state, now)
        assert decision.replicas == 8, decision.reason
        state = decision.state
    assert "low for 4s of the 5s" in decision.reason
    assert decide([LoadSample(105, 8, 0, 0)], FAST, state, 105).replicas == 4


def test_steps_down_at_most_once_per_refresh() -> None:
    state = replay(FAST, 10, steady(0, 4, 10, 0, 0, 10))[-1].state
    first = decide([LoadSample(5.0, 10, 0, 0)], FAST, state, 5.0)
    again = decide([LoadSample(5.5, 5, 0, 0)], FAST, first.state, 5.5)
    later = decide([LoadSample(6.0, 5, 0, 0)], FAST, again.state, 6.0)
    assert (first.replicas, again.replicas, later.replicas) == (5, 5, 3)
    assert "steps are 1s apart" in again.reason


def test_no_samples_holds() -> None:
    decision = decide([], FAST, AutoscaleState(replicas=3), now=50.0)
    assert (decision.replicas, decision.action) == (3, Action.HOLD)
    assert "no load sample in the last 1s" in decision.reason


def test_no_fresh_sample_holds_despite_earlier_load() -> None:
    earlier = decide([LoadSample(0.0, 2, 1, 0)], FAST, AutoscaleState(replicas=2), now=0.0)
    assert earlier.replicas == 2
    decision = decide([LoadSample(0.5, 2, 2, 30)], FAST, earlier.state, now=3.0)
    assert decision.replicas == 2, decision.reason
    assert "no load sample" in decision.reason


def test_stale_and_future_samples_are_ignored() -> None:
    stale = LoadSample(10.0, 2, 2, 500)  # 90 s old: outside every window
    future = LoadSample(101.0, 2, 2, 500)  # from a clock ahead of ours
    decision = decide([stale, future, LoadSample(100.0, 2, 1, 0)], FAST, AutoscaleState(replicas=2), 100.0)
    assert (decision.replicas, decision.action) == (2, Action.HOLD), decision.reason
    assert decision.state.watching_since == 100.0  # the stale sample does not count as watching
    only_stale = decide([stale], FAST, AutoscaleState(replicas=2), 100.0)
    assert "no load sample" in only_stale.reason


def test_a_long_gap_restarts_the_watch() -> None:
    state = replay(FAST, 6, steady(0, 3, 6, 0, 0, 6))[-1].state
    # 60 s without samples: the next low sample starts a new watch, so no step down yet.
    decision = decide([LoadSample(63.0, 6, 0, 0)], FAST, state, 63.0)
    assert decision.replicas == 6, decision.reason
    assert decision.state.watching_since == 63.0


def test_config_change_clamps_at_once() -> None:
    decision = decide([LoadSample(0.0, 12, 1, 0)], FAST, AutoscaleState(replicas=12), 0.0)
    assert (decision.replicas, decision.action) == (10, Action.CLAMP)
    assert "clamp 12 -> 10" in decision.reason


def test_samples_may_be_handed_in_again() -> None:
    # The caller may pass its whole history every time: folding is idempotent.
    loads = [3, 3, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    history = [LoadSample(float(t), 4, load, 0) for t, load in enumerate(loads)]
    incremental, cumulative = AutoscaleState(replicas=4), AutoscaleState(replicas=4)
    for i, sample in enumerate(history):
        a = decide([sample], FAST, incremental, sample.at)
        b = decide(history[: i + 1], FAST, cumulative, sample.at)
        assert (a.replicas, a.reason) == (b.replicas, b.reason)
        incremental, cumulative = a.state, b.state


@pytest.mark.parametrize(("busy", "desired"), [
    (7 / 3, 4),  # 7 in flight at a limit of 3: ceil(2.33 / 0.7) = 4
    (21 / 10, 3),  # 2.1 / 0.7 is 3.0000000000000004 in floats; still 3
    (2.0, 3),
], ids=["fraction-of-limit", "float-noise-at-boundary", "whole-float"])
def test_fractional_busy_replica_equivalents(busy: float, desired: int) -> None:
    assert FAST.desired_for(busy) == desired
    decision = decide([LoadSample(0.0, 1, busy, 0)], FAST, AutoscaleState(replicas=1), 0.0)
    assert decision.replicas == desired, decision.reason


def test_state_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        AutoscaleState(replicas=1).replicas = 2  # type: ignore[misc]


@pytest.mark.parametrize(("fields", "bad"), [
    ({"replicas": -1, "busy": 0, "queued": 0}, "replicas=-1"),
    ({"replicas": 1, "busy": 0, "queued": 1.5}, "queued=1.5"),
    ({"replicas": 1, "busy": True, "queued": 0}, "busy=True"),
    ({"replicas": 1, "busy": -0.5, "queued": 0}, "busy=-0.5"),
    ({"replicas": 1, "busy": float("nan"), "queued": 0}, "busy=nan"),
], ids=["negative-replicas", "fractional-queue", "bool-busy", "negative-busy", "nan-busy"])
def test_load_sample_rejects_bad_counts(fields: dict[str, object], bad: str) -> None:
    with pytest.raises(ValidationError, match=bad):
        LoadSample(0.0, **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Configuration


def test_defaults_match_v1() -> None:
    config = AutoscaleConfig.checked()
    assert (config.min_replicas, config.max_replicas, config.target_utilization, config.refresh_seconds) == (
        1, 10, 70, 1.0)
    assert (config.scale_down_delay_s, config.scale_to_zero_delay_s) == (60.0, 300.0)
    assert config.validate() == []


P = "Invalid configuration, "
CONFIG_CASES: dict[str, tuple[dict[str, object], list[str]]] = {
    "negative-min": ({"min_replicas": -1}, [
        P + "autoscale_min_replicas must be an integer >= 0 (0 enables scale to zero), got -1."]),
    "zero-max": ({"max_replicas": 0}, [P + "autoscale_max_replicas must be an integer >= 1, got 0."]),
    "min-above-max": ({"min_replicas": 5, "max_replicas": 3}, [
        P + "autoscale_min_replicas (5) must be <= autoscale_max_replicas (3); allowed range 0..3."]),
    "target-zero": ({"target_utilization": 0}, [
        P + "autoscale_target_utilization must be an integer percentage from 1 to 100, got 0."]),
    "target-above-100": ({"target_utilization": 150}, [
        P + "autoscale_target_utilization must be an integer percentage from 1 to 100, got 150."]),
    "target-as-fraction": ({"target_utilization": 0.7}, [
        P + "autoscale_target_utilization must be an integer percentage from 1 to 100, got 0.7."]),
    "refresh-zero": ({"refresh_seconds": 0}, [
        P + "autoscale_refresh_seconds must be a number of seconds > 0, got 0."]),
    "down-delay-shorter-than-refresh": ({"refresh_seconds": 2.0, "scale_down_delay_s": 1.0}, [
        P + "autoscale_scale_down_delay_seconds must be >= autoscale_refresh_seconds (2), got 1.0."]),
    "zero-delay-shorter-than-down-delay": ({"min_replicas": 0, "scale_to_zero_delay_s": 30.0}, [
        P + "autoscale_scale_to_zero_delay_seconds must be >= autoscale_scale_down_delay_seconds (60), "
        "got 30.0."]),
    "zero-delay-ignored-without-scale-to-zero": ({"scale_to_zero_delay_s": 30.0}, []),
    "nan-delay": ({"scale_down_delay_s": float("nan")}, [
        P + "autoscale_scale_down_delay_seconds must be a number of seconds > 0, got nan."]),
    "every-violation-listed": ({"min_replicas": -1, "max_replicas": 0, "target_utilization": 0,
                                "refresh_seconds": -1}, [
        P + "autoscale_min_replicas must be an integer >= 0 (0 enables scale to zero), got -1.",
        P + "autoscale_max_replicas must be an integer >= 1, got 0.",
        P + "autoscale_target_utilization must be an integer percentage from 1 to 100, got 0.",
        P + "autoscale_refresh_seconds must be a number of seconds > 0, got -1."]),
}


@pytest.mark.parametrize(("fields", "expected"), CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_config_validation(fields: dict[str, object], expected: list[str]) -> None:
    assert AutoscaleConfig(**fields).validate() == expected  # type: ignore[arg-type]
    if expected:
        with pytest.raises(ValidationError) as caught:
            AutoscaleConfig.checked(**fields)  # type: ignore[arg-type]
        assert caught.value.details == expected
        assert str(caught.value) == "\n".join(expected)
        assert caught.value.status_code == 400


def test_scale_to_zero_needs_min_zero() -> None:
    config = AutoscaleConfig.checked(min_replicas=0, scale_down_delay_s=60, scale_to_zero_delay_s=300)
    assert config.min_replicas == 0


# ---------------------------------------------------------------------------------------------------------
# Replica calculator


X = "\N{MULTIPLICATION SIGN}"
CALCULATIONS = {
    "v1-docs-example": ((20, 10, 0.7, 1), 286, f"ceil(20 rps {X} 10 s / 0.7 / 1) = ceil(285.71) = 286"),
    "exact-stays-exact": ((7, 1, 0.7, 1), 10, f"ceil(7 rps {X} 1 s / 0.7 / 1) = ceil(10) = 10"),
    "concurrency-divides": ((100, 0.5, 0.7, 4), 18, f"ceil(100 rps {X} 0.5 s / 0.7 / 4) = ceil(17.86) = 18"),
    "tiny-load-needs-one": ((1, 0.001, 1.0, 1), 1, f"ceil(1 rps {X} 0.001 s / 1 / 1) = ceil(0.00) = 1"),
    "float-rps": ((2.5, 2, 0.5, 2), 5, f"ceil(2.5 rps {X} 2 s / 0.5 / 2) = ceil(5) = 5"),
}


@pytest.mark.parametrize(("args", "replicas", "formula"), CALCULATIONS.values(), ids=CALCULATIONS.keys())
def test_replica_calculator(args: tuple[float, float, float, int], replicas: int, formula: str) -> None:
    assert replicas_for(*args) == replicas
    assert replicas_formula(*args) == formula


BAD_CALCULATIONS = {
    "zero-rps": ((0, 10, 0.7, 1), "rps must be a number > 0, got 0."),
    "negative-seconds": ((20, -1, 0.7, 1), "request_seconds must be a number > 0, got -1."),
    "percent-not-fraction": ((20, 10, 70, 1), "target_utilization must be a fraction in (0, 1], got 70."),
    "zero-target": ((20, 10, 0.0, 1), "target_utilization must be a fraction in (0, 1], got 0.0."),
    "zero-concurrency": ((20, 10, 0.7, 0), "max_concurrent must be an integer >= 1, got 0."),
    "fractional-concurrency": ((20, 10, 0.7, 1.5), "max_concurrent must be an integer >= 1, got 1.5."),
    "infinite-rps": ((float("inf"), 10, 0.7, 1), "rps must be a number > 0, got inf."),
}


@pytest.mark.parametrize(("args", "message"), BAD_CALCULATIONS.values(), ids=BAD_CALCULATIONS.keys())
def test_replica_calculator_rejects(args: tuple[float, float, float, int], message: str) -> None:
    for function in (replicas_for, replicas_formula):
        with pytest.raises(ValidationError) as caught:
            function(*args)
        assert caught.value.details == [message]
        assert "0.7 for 70 %" in caught.value.hint


# ---------------------------------------------------------------------------------------------------------
# Properties


@st.composite
def configs(draw: st.DrawFn) -> AutoscaleConfig:
    low = draw(st.integers(0, 5))
    down = draw(st.integers(1, 8))
    return AutoscaleConfig.checked(
        min_replicas=low, max_replicas=draw(st.integers(max(low, 1), 15)),
        target_utilization=draw(st.integers(1, 100)), refresh_seconds=1.0,
        scale_down_delay_s=float(down), scale_to_zero_delay_s=float(down + draw(st.integers(0, 8))))


busy_values = st.one_of(st.integers(0, 20), st.floats(0.0, 20.0))  # busy replica-equivalents
loads = st.tuples(st.integers(0, 20), busy_values, st.integers(0, 60))  # ready, busy, queued


@settings(max_examples=300, deadline=None, database=None)
@given(configs(), st.integers(0, 30), st.lists(st.tuples(st.floats(0.0, 3.0), loads), max_size=40))
def test_decision_always_within_bounds(config: AutoscaleConfig, start: int,
                                       ticks: list[tuple[float, tuple[int, float, int]]]) -> None:
    state, now = AutoscaleState(replicas=start), 0.0
    for gap, (ready, busy, queued) in ticks:
        now += gap
        samples = [LoadSample(now, ready, busy, queued)] if gap < 2.5 else []  # sometimes none
        decision = decide(samples, config, state, now)
        assert config.min_replicas <= decision.replicas <= config.max_replicas, decision.reason
        state = decision.state


@settings(max_examples=200, deadline=None, database=None)
@given(configs(), st.integers(0, 30), st.integers(0, 40))
def test_constant_load_settles_and_stays(config: AutoscaleConfig, start: int, load: int) -> None:
    # The actuator applies each decision at once; the load (busy + queued) never changes.
    state, ready, seen = AutoscaleState(replicas=start), start, []
    for now in range(int(config.scale_to_zero_delay_s + config.scale_down_delay_s) + 30):
        busy = min(load, ready)
        decision = decide([LoadSample(float(now), ready, busy, load - busy)], config, state, float(now))
        seen.append(decision.replicas)
        state, ready = decision.state, decision.replicas
    settled = config.clamp(config.desired_for(load))
    assert seen[-15:] == [settled] * 15, (settled, seen)
    moves = [b - a for a, b in itertools.pairwise(seen) if b != a]
    assert all(m > 0 for m in moves) or all(m < 0 for m in moves), seen  # one direction, no flapping


def test_public_surface() -> None:
    assert set(autoscale.__all__) == {
        "CONFIG_KEYS", "Action", "AutoscaleConfig", "AutoscaleState", "Decision", "LoadSample",
        "decide", "replicas_for", "replicas_formula",
    }
