"""The FastProd router's self-scaling decision (pure): the pods' /-/load answers, a fake clock, the
services' decider with the FastProd floor of 3."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.autoscale import Action, AutoscaleState
from modelhost.control.router_scaler import RouterScalePolicy, decide_router, router_sample
from modelhost.errors import ValidationError
from modelhost.runtime.k8s_render_router import FAST_PROD_REPLICAS

POLICY = RouterScalePolicy(capacity=10, max_replicas=8, scale_down_delay_s=30.0)


def _load(in_flight: int, queued: int = 0, services: int = 1) -> dict[str, Any]:
    """One pod's GET /-/load answer, its requests spread over ``services``."""
    return {"services": {f"s{i}": {"replicas": 1, "busy": 1.0, "in_flight": in_flight if i == 0 else 0,
                                   "queued": queued if i == 0 else 0} for i in range(services)}}


def _pods(*holding: int | None) -> dict[str, dict[str, Any] | None]:
    return {f"router-{i}": (None if h is None else _load(h, services=2)) for i, h in enumerate(holding)}


def test_sample_sums_in_flight_and_queued_over_answering_pods() -> None:
    sample = router_sample({"a": _load(6, 4), "b": _load(5), "c": None}, 12.0, capacity=10)
    assert sample is not None
    assert (sample.at, sample.replicas, sample.busy, sample.queued) == (12.0, 2, 1.5, 0)
    assert router_sample({"a": None}, 1.0, 10) is None
    assert router_sample({}, 1.0, 10) is None


def test_high_load_scales_up_at_once_and_down_only_after_the_delay_never_below_three() -> None:
    clock = 100.0
    state: AutoscaleState | None = None
    current = FAST_PROD_REPLICAS
    # 3 pods holding 20 requests each, capacity 10: load 6 pods' worth at 70 % -> ceil(6 / 0.7) = 9 -> max 8
    decision = decide_router(_pods(20, 20, 20), current, POLICY, state, clock)
    assert decision.action == Action.UP and decision.replicas == 8, decision.reason
    state, current = decision.state, decision.replicas
    # idle: held for the scale-down delay, then halving steps, never under the floor
    seen = []
    for _ in range(120):
        clock += 1.0
        decision = decide_router(_pods(*([0] * current)), current, POLICY, state, clock)
        state, current = decision.state, decision.replicas
        seen.append(current)
    assert seen[:25] == [8] * 25  # within the 30 s window after the peak
    assert min(seen) == FAST_PROD_REPLICAS and seen[-1] == FAST_PROD_REPLICAS
    assert 4 in seen  # 8 -> 4 -> 3: at most halving per step


def test_no_answer_holds_and_an_outside_change_is_adopted() -> None:
    decision = decide_router(_pods(None, None, None), 3, POLICY, None, 5.0)
    assert decision.replicas == 3 and decision.action == Action.HOLD
    # someone scaled the Deployment to 5 meanwhile: the decider starts from 5, not from its own 3
    again = decide_router(_pods(1, 1, 1, 1, 1), 5, POLICY, decision.state, 6.0)
    assert again.replicas == 5 and again.action == Action.HOLD
    # below the floor (a hand edit to 1): clamped back to 3
    low = decide_router(_pods(0), 1, POLICY, None, 7.0)
    assert low.replicas == FAST_PROD_REPLICAS and low.action == Action.CLAMP


def test_policy_from_env() -> None:
    env = {"MODELHOST_ROUTER_CAPACITY": "2", "MODELHOST_ROUTER_MAX_REPLICAS": "5"}
    policy = RouterScalePolicy.from_env(env)
    assert (policy.capacity, policy.max_replicas, policy.min_replicas) == (2, 5, FAST_PROD_REPLICAS)
    assert RouterScalePolicy.from_env({}) == RouterScalePolicy()
    with pytest.raises(ValidationError) as caught:
        RouterScalePolicy.from_env({"MODELHOST_ROUTER_CAPACITY": "0"})
    assert "MODELHOST_ROUTER_CAPACITY" in caught.value.message and caught.value.hint
