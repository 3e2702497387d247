"""The supervisor's pure decisions, replayed with a fake clock."""

from __future__ import annotations

import pytest

from modelhost.runtime.base import ProbeSettings
from modelhost.runtime.supervision import (
    CRASH_HEADLINE,
    Exit,
    GiveUp,
    Restart,
    RestartPolicy,
    crash_message,
    decide_restart,
    service_state,
    start_deadline_s,
)

POLICY = RestartPolicy(base_s=1.0, cap_s=30.0, reset_after_s=60.0, max_start_failures=3)


def _crash(at: float, ran_s: float = 5.0, was_ready: bool = True, code: int | None = -9) -> Exit:
    return Exit(at=at, ran_s=ran_s, was_ready=was_ready, code=code)


def test_backoff_doubles_up_to_the_cap() -> None:
    history: list[Exit] = []
    delays = []
    now = 100.0
    for _ in range(8):
        history.append(_crash(now))
        decision = decide_restart(history, now, POLICY)
        assert isinstance(decision, Restart)
        assert decision.at == now + decision.delay_s
        delays.append(decision.delay_s)
        now += decision.delay_s + 5
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_long_run_resets_the_backoff() -> None:
    history = [_crash(10), _crash(20), _crash(30), _crash(200, ran_s=120), _crash(210)]
    assert decide_restart(history[:4], 200, POLICY) == Restart(1.0, 201.0)
    assert decide_restart(history, 210, POLICY) == Restart(1.0, 211.0)


@pytest.mark.parametrize(
    ("history", "gives_up"),
    [
        ([_crash(1, was_ready=False, code=3)], False),
        ([_crash(1, was_ready=False, code=3), _crash(3, was_ready=False, code=3)], False),
        ([_crash(1, was_ready=False, code=3)] * 3, True),
        ([_crash(1, was_ready=False, code=1)] * 3, True),  # any exit before ready counts
        ([_crash(1, was_ready=False, code=3)] * 2 + [_crash(9, was_ready=True)], False),
        ([_crash(1, was_ready=True)] + [_crash(2, was_ready=False, code=3)] * 2, False),
        ([_crash(i, was_ready=True) for i in range(50)], False),  # crashes after serving never give up
    ],
    ids=[
        "one",
        "two",
        "three-init-failures",
        "three-other-exits",
        "ready-last",
        "two-after-ready",
        "many-ready",
    ],
)
def test_giving_up(history: list[Exit], gives_up: bool) -> None:
    decision = decide_restart(history, 100.0, POLICY)
    assert isinstance(decision, GiveUp) is gives_up


def test_give_up_reason_names_the_exit_code() -> None:
    decision = decide_restart([_crash(1, was_ready=False, code=3)] * 3, 10, POLICY)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "the replica exited (code 3) before it became ready on 3 starts in a row"


def test_start_deadline_is_v1s_liveness_allowance() -> None:
    assert start_deadline_s(ProbeSettings()) == 310 + 3 * 10
    assert (
        start_deadline_s(ProbeSettings(initial_delay_seconds=5, period_seconds=2, failure_threshold=4)) == 13
    )


@pytest.mark.parametrize(
    ("states", "desired", "failed", "ever_ready", "expected"),
    [
        (["ready", "ready"], 2, False, True, "Healthy"),
        ([], 0, False, False, "Healthy"),
        (["ready", "starting"], 2, False, True, "Transitioning"),
        (["starting"], 1, False, False, "Transitioning"),
        (["ready", "ready", "stopping"], 2, False, True, "Healthy"),
        (["ready", "ready", "ready"], 2, False, True, "Transitioning"),  # scaling down
        (["ready", "crashed"], 2, False, True, "Unhealthy"),
        (["crashed"], 1, False, False, "Transitioning"),  # never served yet: still deploying
        (["failed"], 1, False, False, "Failed"),
        (["ready"], 1, True, True, "Failed"),
    ],
)
def test_service_state(
    states: list[str], desired: int, failed: bool, ever_ready: bool, expected: str
) -> None:
    assert service_state(states, desired, failed=failed, ever_ready=ever_ready) == expected  # type: ignore[arg-type]


def test_crash_message_has_v1s_headline_and_the_last_lines() -> None:
    msg = crash_message("svc", "init() failed", ["Traceback", "RuntimeError: boom"], "/logs/r.log")
    assert msg.startswith(CRASH_HEADLINE)
    assert "RuntimeError: boom" in msg
    assert "/logs/r.log" in msg
    assert "svc" in msg
