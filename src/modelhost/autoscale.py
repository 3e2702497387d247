"""Autoscaling decisions: a pure decider and v1's replica calculator.

The decider is a function of load samples, configuration, its own previous state and ``now``::

    decision = decide(samples, config, state, now)
    runtime.scale(service, decision.replicas)      # the caller acts, logs decision.reason
    state = decision.state                          # and hands the state back next time

It does no I/O and reads no clock: the caller (``control/autoscaler.py``) owns both, as Knative's
``pkg/autoscaler`` and Ray Serve's ``autoscaling_policy.py`` keep collection and actuation outside
their deciders. Rules (``docs/autoscaling.md`` has the worked example):

* load = busy replicas + queued requests; utilization = load / ready replicas; desired =
  ceil(load / target), so that utilization lands at the target (exact integer arithmetic);
* **up**, eagerly: the max load over the last ``refresh_seconds`` wants more than the current
  count -> go straight to that many;
* **down**, conservatively: only once the max load over the last ``scale_down_delay_s`` wants fewer
  (and the decider has watched that long), to that window max but at most halving per step and at
  most one step per ``refresh_seconds``. The window max is the hysteresis: a load that swings
  around the target keeps its peak for a whole window, so the count never flaps;
* **zero** (``min_replicas == 0`` only): idle (load 0) for ``scale_to_zero_delay_s`` -> 0; any load
  at 0 -> exactly 1, and no sizing by load until a replica is ready;
* always within [``min_replicas``, ``max_replicas``]; no fresh sample -> hold.

The state keeps a monotonic max-queue of (time, load) over the longest window, so the caller may
hand in only the samples that arrived since the last call, or its whole history again: samples are
folded idempotently, and those older than the longest window or newer than ``now`` are ignored.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from fractions import Fraction
from typing import Final, TypeGuard

from modelhost.errors import ValidationError

__all__ = [
    "CONFIG_KEYS",
    "Action",
    "AutoscaleConfig",
    "AutoscaleState",
    "Decision",
    "LoadSample",
    "decide",
    "replicas_for",
    "replicas_formula",
]

# The deployment-configuration key each AutoscaleConfig field maps to; validation messages name it.
CONFIG_KEYS: Final[dict[str, str]] = {
    "min_replicas": "autoscale_min_replicas",
    "max_replicas": "autoscale_max_replicas",
    "target_utilization": "autoscale_target_utilization",
    "refresh_seconds": "autoscale_refresh_seconds",
    "scale_down_delay_s": "autoscale_scale_down_delay_seconds",
    "scale_to_zero_delay_s": "autoscale_scale_to_zero_delay_seconds",
}

_PREFIX: Final = "Invalid configuration, "
_TIMES: Final = "\N{MULTIPLICATION SIGN}"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _positive(value: object) -> bool:
    return _is_number(value) and value > 0


# ---------------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One observation of a service, stamped with the caller's clock (the clock ``now`` comes from).

    ``replicas`` counts replicas ready to serve; ``busy`` busy replica-equivalents (in-flight
    requests / per-replica limit: with v1's limit of 1, the replicas serving a request, as the router's
    ``ServiceLoad.busy`` reports it); ``queued`` the requests waiting in the router (at zero replicas:
    those waiting for one to start).
    """

    at: float
    replicas: int
    busy: float
    queued: int

    def __post_init__(self) -> None:
        bad = [f"{name}={getattr(self, name)!r}" for name in ("replicas", "queued")
               if not _is_int(getattr(self, name)) or getattr(self, name) < 0]
        if not _is_number(self.busy) or self.busy < 0:
            bad.insert(1, f"busy={self.busy!r}")
        if not _is_number(self.at):
            bad.insert(0, f"at={self.at!r}")
        if bad:
            raise ValidationError(f"Invalid load sample: {', '.join(bad)}",
                                  hint="'at' is a finite time in seconds; 'busy' a number >= 0; "
                                       "'replicas' and 'queued' integers >= 0.")

    @property
    def load(self) -> float:
        """Busy replicas plus queued requests: the replicas' worth of work in hand."""
        return self.busy + self.queued

    @property
    def utilization(self) -> float | None:
        """Load per ready replica (1.0 = 100 %); ``None`` at zero ready replicas."""
        return self.load / self.replicas if self.replicas else None


@dataclass(frozen=True, slots=True)
class AutoscaleConfig:
    """A service's autoscale settings. Build with :meth:`checked` to validate.

    ``target_utilization`` is a percentage (v1's int, 1..100). ``min_replicas=0`` enables scale to
    zero (v1 requires >= 1). The two delays are seconds of ``now``.
    """

    min_replicas: int = 1
    max_replicas: int = 10
    target_utilization: int = 70
    refresh_seconds: float = 1.0
    scale_down_delay_s: float = 60.0
    scale_to_zero_delay_s: float = 300.0

    @classmethod
    def checked(
        cls,
        *,
        min_replicas: int = 1,
        max_replicas: int = 10,
        target_utilization: int = 70,
        refresh_seconds: float = 1.0,
        scale_down_delay_s: float = 60.0,
        scale_to_zero_delay_s: float = 300.0,
    ) -> AutoscaleConfig:
        """The config, or ``ValidationError`` whose message and details list every violation."""
        config = cls(min_replicas, max_replicas, target_utilization, refresh_seconds,
                     scale_down_delay_s, scale_to_zero_delay_s)
        problems = config.validate()
        if problems:
            raise ValidationError("\n".join(problems), details=problems,
                                  hint="Correct the autoscale settings named above and deploy again.")
        return config

    def validate(self) -> list[str]:
        """Every violation, one message each, prefixed ``Invalid configuration, `` as v1 does."""
        problems = self._replica_problems()
        if not _is_int(self.target_utilization) or not 1 <= self.target_utilization <= 100:
            problems.append(f"{_PREFIX}{CONFIG_KEYS['target_utilization']} must be an integer "
                            f"percentage from 1 to 100, got {self.target_utilization!r}.")
        return problems + self._timing_problems()

    def _replica_problems(self) -> list[str]:
        low, high = CONFIG_KEYS["min_replicas"], CONFIG_KEYS["max_replicas"]
        problems: list[str] = []
        if not _is_int(self.min_replicas) or self.min_replicas < 0:
            problems.append(f"{_PREFIX}{low} must be an integer >= 0 (0 enables scale to zero), "
                            f"got {self.min_replicas!r}.")
        if not _is_int(self.max_replicas) or self.max_replicas < 1:
            problems.append(f"{_PREFIX}{high} must be an integer >= 1, got {self.max_replicas!r}.")
        elif not problems and self.min_replicas > self.max_replicas:
            problems.append(f"{_PREFIX}{low} ({self.min_replicas}) must be <= {high} "
                            f"({self.max_replicas}); allowed range 0..{self.max_replicas}.")
        return problems

    def _timing_problems(self) -> list[str]:
        names = ["refresh_seconds", "scale_down_delay_s"]
        if self.min_replicas == 0:
            names.append("scale_to_zero_delay_s")  # the zero delay matters only with scale to zero
        problems = [f"{_PREFIX}{CONFIG_KEYS[name]} must be a number of seconds > 0, "
                    f"got {getattr(self, name)!r}." for name in names if not _positive(getattr(self, name))]
        if problems:
            return problems
        # Each delay covers the one before it: a down window shorter than one refresh would act on a
        # single sample, and scale to zero is the last step down, never sooner than the others.
        return [f"{_PREFIX}{CONFIG_KEYS[longer]} must be >= {CONFIG_KEYS[shorter]} "
                f"({getattr(self, shorter):g}), got {getattr(self, longer)!r}."
                for shorter, longer in itertools.pairwise(names)
                if getattr(self, longer) < getattr(self, shorter)]

    @property
    def history_s(self) -> float:
        """The longest window the decider looks back over; older samples are ignored."""
        zero = self.scale_to_zero_delay_s if self.min_replicas == 0 else 0.0
        return max(self.refresh_seconds, self.scale_down_delay_s, zero)

    def desired_for(self, load: float) -> int:
        """ceil(load / (target / 100)), so that 7 busy at 70 % gives 10, not 11 from float noise."""
        if isinstance(load, int):
            return -(-load * 100 // self.target_utilization)
        # Fractional busy (in-flight / limit): round off float noise before the ceiling.
        return math.ceil(round(load * 100 / self.target_utilization, 9))

    def clamp(self, replicas: int) -> int:
        """``replicas`` moved into [min_replicas, max_replicas]."""
        return min(max(replicas, self.min_replicas), self.max_replicas)


class Action(StrEnum):
    """What a decision does, for logs and metrics."""

    HOLD = "hold"
    UP = "up"
    DOWN = "down"
    ACTIVATE = "activate"  # 0 -> 1 on the first request
    TO_ZERO = "to_zero"
    CLAMP = "clamp"  # moved into [min, max] after a config change


@dataclass(frozen=True, slots=True)
class AutoscaleState:
    """The decider's memory. Start with ``AutoscaleState(replicas=<current count>)``; then pass back
    ``decision.state``. The other fields are the decider's own business.

    ``peaks`` is a max-queue: times ascending, loads strictly descending, so the max load over any
    window ending now is the load of the first entry inside it.
    """

    replicas: int
    peaks: tuple[tuple[float, float], ...] = ()
    newest: LoadSample | None = None
    watching_since: float | None = None
    last_down_at: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The replica count to run, the state to hand back, and why (inputs included, for the log)."""

    replicas: int
    state: AutoscaleState
    reason: str
    action: Action = Action.HOLD


# ---------------------------------------------------------------------------------------------------------
# The decider


def decide(samples: Iterable[LoadSample], config: AutoscaleConfig, state: AutoscaleState,
           now: float) -> Decision:
    """The replica count for ``now`` given new ``samples``, a valid ``config`` and the last ``state``."""
    state = _observe(state, samples, config, now)
    current = config.clamp(state.replicas)
    newest = state.newest
    if newest is None or newest.at < now - config.refresh_seconds:
        return _hold(state, current, f"no load sample in the last {config.refresh_seconds:g}s")
    up_load = _max_since(state.peaks, now - config.refresh_seconds) or 0
    if current == 0:
        return _from_zero(state, up_load, config)
    if _idle_for_zero(state, config, now):
        return _to_zero(state, config)
    if newest.replicas == 0:
        return _hold(state, current, f"load {newest.load:g} waiting, no ready replica yet; "
                                     "sizing waits for one")
    desired = config.desired_for(up_load)
    if desired > current:
        return _up(state, current, desired, up_load, config)
    return _maybe_down(state, current, config, now)


def _observe(state: AutoscaleState, samples: Iterable[LoadSample], config: AutoscaleConfig,
             now: float) -> AutoscaleState:
    """Fold ``samples`` into the state; drop what fell out of the longest window."""
    horizon = now - config.history_s
    peaks = [peak for peak in state.peaks if peak[0] >= horizon]
    # An empty window means nothing was seen for a whole window: watching starts again.
    watching = state.watching_since if peaks else None
    newest = state.newest if state.newest is not None and state.newest.at >= horizon else None
    for sample in samples:
        if not horizon <= sample.at <= now:
            continue
        _insert_peak(peaks, sample.at, sample.load)
        watching = sample.at if watching is None else min(watching, sample.at)
        if newest is None or sample.at >= newest.at:
            newest = sample
    return replace(state, peaks=tuple(peaks), newest=newest, watching_since=watching)


def _insert_peak(peaks: list[tuple[float, float]], at: float, load: float) -> None:
    """Insert into the max-queue, keeping only samples no later sample outweighs."""
    i = bisect.bisect_left(peaks, at, key=lambda peak: peak[0])
    if i < len(peaks) and peaks[i][1] >= load:
        return
    j = i
    while j > 0 and peaks[j - 1][1] <= load:
        j -= 1
    peaks[j:i] = [(at, load)]


def _max_since(peaks: tuple[tuple[float, float], ...], start: float) -> float | None:
    i = bisect.bisect_left(peaks, start, key=lambda peak: peak[0])
    return peaks[i][1] if i < len(peaks) else None


def _watched(state: AutoscaleState, seconds: float, now: float) -> bool:
    return state.watching_since is not None and state.watching_since <= now - seconds


def _idle_for_zero(state: AutoscaleState, config: AutoscaleConfig, now: float) -> bool:
    delay = config.scale_to_zero_delay_s
    return (config.min_replicas == 0 and _watched(state, delay, now)
            and _max_since(state.peaks, now - delay) == 0)


def _from_zero(state: AutoscaleState, up_load: float, config: AutoscaleConfig) -> Decision:
    if up_load == 0:
        return _hold(state, 0, "idle at zero replicas")
    reason = (f"activate 0 -> 1: load {up_load:g} at zero replicas in the last "
              f"{config.refresh_seconds:g}s; one replica starts, sizing waits until it is ready")
    return _decision(state, 1, Action.ACTIVATE, reason)


def _to_zero(state: AutoscaleState, config: AutoscaleConfig) -> Decision:
    reason = (f"to zero {state.replicas} -> 0: load 0 for the last {config.scale_to_zero_delay_s:g}s "
              f"({CONFIG_KEYS['scale_to_zero_delay_s']})")
    return _decision(state, 0, Action.TO_ZERO, reason)


def _up(state: AutoscaleState, current: int, desired: int, load: float, config: AutoscaleConfig) -> Decision:
    target = config.clamp(desired)
    ready = state.newest.replicas if state.newest is not None else 0
    inputs = (f"load {load:g} (max over last {config.refresh_seconds:g}s) = {_percent(load, ready)} of "
              f"{ready} ready, target {config.target_utilization}%; desired "
              f"ceil({load:g} / {config.target_utilization / 100:.2f}) = {desired}")
    if target == current:
        return _hold(state, current, f"{inputs}; already at {CONFIG_KEYS['max_replicas']} {current}")
    clamp = f", clamped to {CONFIG_KEYS['max_replicas']} {target}" if target != desired else ""
    return _decision(state, target, Action.UP, f"up {current} -> {target}: {inputs}{clamp}")


def _maybe_down(state: AutoscaleState, current: int, config: AutoscaleConfig, now: float) -> Decision:
    delay = config.scale_down_delay_s
    window_load = _max_since(state.peaks, now - delay) or 0
    desired = config.desired_for(window_load)
    util = f"utilization {_percent(window_load, state.newest.replicas if state.newest else 0)}"
    if desired >= current:
        return _hold(state, current, f"within target {config.target_utilization}%: max load "
                                     f"{window_load:g} over {delay:g}s wants {desired}, {util}")
    if not _watched(state, delay, now):
        low = now - _low_since(state, current, config)
        return _hold(state, current, f"below target: max load {window_load:g} wants {desired}, low for "
                                     f"{low:g}s of the {delay:g}s {CONFIG_KEYS['scale_down_delay_s']}")
    if state.last_down_at is not None and now - state.last_down_at < config.refresh_seconds:
        return _hold(state, current, f"below target, last step down {now - state.last_down_at:g}s ago; "
                                     f"steps are {config.refresh_seconds:g}s apart")
    return _down(state, current, desired, window_load, config, now)


def _low_since(state: AutoscaleState, current: int, config: AutoscaleConfig) -> float:
    """When the load last wanted ``current`` or more (peaks are load-descending: a prefix does)."""
    high = [at for at, load in state.peaks if config.desired_for(load) >= current]
    start = state.watching_since if state.watching_since is not None else math.inf
    return max(high[-1], start) if high else start


def _down(state: AutoscaleState, current: int, desired: int, load: float, config: AutoscaleConfig,
          now: float) -> Decision:
    half = -(-current // 2)
    floor = max(config.min_replicas, 1)  # the last replica goes only through scale to zero
    target = max(desired, half, floor)
    inputs = (f"max load {load:g} over the last {config.scale_down_delay_s:g}s wants "
              f"ceil({load:g} / {config.target_utilization / 100:.2f}) = {desired}")
    if target >= current:
        until = (f"1 replica stays until idle for {config.scale_to_zero_delay_s:g}s"
                 if config.min_replicas == 0 else f"at {CONFIG_KEYS['min_replicas']} {current}")
        return _hold(state, current, f"below target: {inputs}; {until}")
    floor_note = (f"{CONFIG_KEYS['min_replicas']} {config.min_replicas}" if config.min_replicas
                  else "the last replica leaves only by scale to zero")
    limits = [note for value, note in ((half, "at most halving per step"), (floor, floor_note))
              if target == value and value > desired]
    limited = f", limited to {target} ({'; '.join(limits)})" if limits else ""
    new_state = replace(state, last_down_at=now)
    return _decision(new_state, target, Action.DOWN, f"down {current} -> {target}: {inputs}{limited}")


def _hold(state: AutoscaleState, current: int, why: str) -> Decision:
    if current != state.replicas:
        return _decision(state, current, Action.CLAMP,
                         f"clamp {state.replicas} -> {current} into [{CONFIG_KEYS['min_replicas']}, "
                         f"{CONFIG_KEYS['max_replicas']}]; {why}")
    return _decision(state, current, Action.HOLD, f"hold {current}: {why}")


def _decision(state: AutoscaleState, replicas: int, action: Action, reason: str) -> Decision:
    return Decision(replicas, replace(state, replicas=replicas), reason, action)


def _percent(load: float, replicas: int) -> str:
    return f"{100 * load / replicas:.0f}%" if replicas else "n/a"


# ---------------------------------------------------------------------------------------------------------
# The replica calculator (v1's sizing rule)


def replicas_for(rps: float, request_seconds: float, target_utilization: float, max_concurrent: int) -> int:
    """ceil(rps * request_seconds / target_utilization / max_concurrent), computed exactly.

    ``target_utilization`` is a fraction in (0, 1] (0.7, not 70). Raises ``ValidationError`` naming
    every bad input.
    """
    return math.ceil(_replica_exact(rps, request_seconds, target_utilization, max_concurrent))


def replicas_formula(rps: float, request_seconds: float, target_utilization: float,
                     max_concurrent: int) -> str:
    """The calculation with its numbers: ``ceil(20 rps \N{MULTIPLICATION SIGN} 10 s / 0.7 / 1) =
    ceil(285.71) = 286`` (the intermediate to two decimals, or exact when whole)."""
    exact = _replica_exact(rps, request_seconds, target_utilization, max_concurrent)
    shown = str(exact.numerator) if exact.denominator == 1 else f"{float(exact):.2f}"
    return (f"ceil({_plain(rps)} rps {_TIMES} {_plain(request_seconds)} s / {_plain(target_utilization)} / "
            f"{max_concurrent}) = ceil({shown}) = {math.ceil(exact)}")


def _replica_exact(rps: float, request_seconds: float, target_utilization: float,
                   max_concurrent: int) -> Fraction:
    problems = [f"{name} must be a number > 0, got {value!r}."
                for name, value in (("rps", rps), ("request_seconds", request_seconds))
                if not _is_number(value) or value <= 0]
    if not _is_number(target_utilization) or not 0 < target_utilization <= 1:
        problems.append(f"target_utilization must be a fraction in (0, 1], got {target_utilization!r}.")
    if not _is_int(max_concurrent) or max_concurrent < 1:
        problems.append(f"max_concurrent must be an integer >= 1, got {max_concurrent!r}.")
    if problems:
        raise ValidationError("Invalid replica calculation: " + " ".join(problems), details=problems,
                              hint="Use positive numbers; give the target as a fraction (0.7 for 70 %).")
    return _fraction(rps) * _fraction(request_seconds) / _fraction(target_utilization) / max_concurrent


def _fraction(value: float) -> Fraction:
    # repr() is the shortest decimal that round-trips: the number the user typed (0.7 -> 7/10).
    return Fraction(value) if _is_int(value) else Fraction(repr(float(value)))


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
