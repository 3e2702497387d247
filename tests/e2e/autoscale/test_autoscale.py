"""The autoscaler end to end: real router, real LocalRuntime replicas, the real loop in a thread.

Deadlines are generous (the machine is shared); the only lower bound asserted is the down delay,
which a slow machine can only lengthen.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from modelhost.autoscale import AutoscaleConfig
from modelhost.types import ServiceName
from tests.e2e.autoscale.conftest import Answer, Clients, Stack, post
from tests.support.net import wait_until

pytestmark = pytest.mark.slow

DOWN_DELAY = 3.0
OVERLOADED = "Too many requests for service {name} (overloaded)"


def only_documented_failures(answers: list[Answer], name: str) -> Counter[tuple[int, str | None]]:
    """Every answer is a 200 or the router's documented 503 queue timeout; returns the counts."""
    counts = Counter((a.status, a.message) for a in answers)
    unexpected = {k: n for k, n in counts.items() if k[0] != 200 and k != (503, OVERLOADED.format(name=name))}
    assert not unexpected, f"requests failed otherwise than by the 503 queue timeout: {unexpected}"
    return counts


def test_load_step_scales_up_and_back_down_after_the_delay(make_stack: Callable[..., Stack]) -> None:
    name = "step"
    config = AutoscaleConfig.checked(min_replicas=1, max_replicas=4, target_utilization=70,
                                     refresh_seconds=0.5, scale_down_delay_s=DOWN_DELAY)
    stack = make_stack({name: (config, {"max_queue_wait_ms": 500})})
    clients = Clients(stack.score_url(name))
    try:
        clients.resize(1)
        wait_until(lambda: len(clients.answers) >= 5, 30, what="first answers at 1 client")
        clients.resize(8)  # 8 busy-or-queued on 1 replica wants ceil(8 / 0.7) = 12, clamped to 4
        wait_until(lambda: stack.ready(name) >= 3, 60, what="replicas raised under the load step")
        wait_until(lambda: stack.ready(name) == 4 and stack.router_load(name)["replicas"] == 4, 60,
                   what="4 replicas routed")
        served_by = {a.replica for a in clients.answers[-40:] if a.replica}
        wait_until(lambda: len({a.replica for a in clients.answers if a.replica}) >= 4, 30,
                   what="new replicas serving")
        up = stack.decisions.of(name, "up")
        assert up and "up 1 -> " in up[0].getMessage()

        clients.resize(1)  # one client left: busy <= 1 wants ceil(1 / 0.7) = 2
        light_since = time.time()
        wait_until(lambda: stack.runtime.status(ServiceName(name)).desired_replicas == 2, 60,
                   what="replicas lowered after the down delay")
        first_down = stack.decisions.of(name, "down")[0]
        # the window max must have held the step's peak for the whole delay (a sample interval of slack)
        assert first_down.created >= light_since + DOWN_DELAY - 0.5, first_down.getMessage()
        # the drained replicas stopped and left; the light client kept being served meanwhile
        wait_until(lambda: len(stack.runtime.status(ServiceName(name)).replicas) == 2, 60,
                   what="drained replicas gone")
        count_at_two = len(clients.answers)
        wait_until(lambda: len(clients.answers) >= count_at_two + 10, 30, what="answers at 2 replicas")
    finally:
        clients.resize(0)
    counts = only_documented_failures(clients.answers, name)
    assert counts[(200, None)] > 50
    assert served_by  # sanity: the step was served
    snapshot = stack.loop.snapshot()[ServiceName(name)]
    assert snapshot.desired == 2 and snapshot.current == 2
    assert sum("drained and stopped" in r.getMessage() for r in stack.decisions.of(name)) == 2


def test_scale_to_zero_and_back(make_stack: Callable[..., Stack]) -> None:
    name = "zero"
    config = AutoscaleConfig.checked(min_replicas=0, max_replicas=2, refresh_seconds=0.5,
                                     scale_down_delay_s=1.0, scale_to_zero_delay_s=2.0)
    stack = make_stack({name: (config, {"scale_to_zero": True, "cold_start_wait_ms": 30000})})
    wait_until(lambda: not stack.runtime.status(ServiceName(name)).replicas, 60, what="scaled to zero")
    assert stack.router_load(name)["replicas"] == 0
    assert stack.decisions.of(name, "to_zero")

    def one(_: int) -> Answer:
        with httpx.Client(timeout=60) as client:
            return post(client, stack.score_url(name))

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(one, range(3)))  # the first requests wait while one replica starts
    assert [a.status for a in answers] == [200, 200, 200], answers
    activations = stack.decisions.of(name, "activate")
    assert len(activations) == 1 and "activate 0 -> 1" in activations[0].getMessage()
    after_zero = [r for r in stack.decisions.of(name) if r.created >= activations[0].created
                  and getattr(r, "action", None) is not None]
    assert getattr(after_zero[0], "replicas", None) == 1  # a burst at zero starts one replica
