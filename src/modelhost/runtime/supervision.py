"""Pure decisions of the replica supervisor: when to restart, when to give up, what state a service is in.

Nothing here reads a clock, the environment or a process: callers pass ``now`` (seconds) and the
history they observed, so tests replay scenarios with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelhost.runtime.base import ProbeSettings, ReplicaState, ServiceState

__all__ = [
    "CRASH_HEADLINE",
    "Exit",
    "GiveUp",
    "Restart",
    "RestartPolicy",
    "crash_message",
    "decide_restart",
    "service_state",
    "start_deadline_s",
]

CRASH_HEADLINE = (
    "Your container application crashed. This may be caused by errors in your scoring file's init() function."
)


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff between restarts (``base_s``, doubled per crash in a row, at most
    ``cap_s``); a run that stayed up ``reset_after_s`` resets the streak. A replica that exits
    ``max_start_failures`` times in a row before ever answering ``GET /`` is given up."""

    base_s: float = 1.0
    cap_s: float = 30.0
    reset_after_s: float = 60.0
    max_start_failures: int = 3


@dataclass(frozen=True)
class Exit:
    """One observed end of a replica process. ``code`` is None when it is unknown (a process this
    instance did not start, or one killed by the supervisor itself)."""

    at: float
    ran_s: float
    was_ready: bool
    code: int | None


@dataclass(frozen=True)
class Restart:
    delay_s: float
    at: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


def decide_restart(
    history: Sequence[Exit], now: float, policy: RestartPolicy = RestartPolicy()
) -> Restart | GiveUp:
    """Restart after ``base_s * 2**(streak-1)`` (capped), or give up after too many failed starts.

    ``history`` is the replica's exits, oldest first; the last one is the exit being decided on.
    """
    if not history:
        return Restart(0.0, now)
    failed_starts = _trailing(history, lambda e: not e.was_ready)
    if failed_starts >= policy.max_start_failures:
        last = history[-1]
        code = "unknown code" if last.code is None else f"code {last.code}"
        return GiveUp(
            f"the replica exited ({code}) before it became ready on {failed_starts} starts in a row"
        )
    streak = max(1, _trailing(history, lambda e: e.ran_s < policy.reset_after_s))
    delay = min(policy.cap_s, policy.base_s * 2 ** (streak - 1))
    return Restart(delay, now + delay)


def _trailing(history: Sequence[Exit], pred: Callable[[Exit], bool]) -> int:
    count = 0
    for exit_ in reversed(history):
        if not pred(exit_):
            break
        count += 1
    return count


def start_deadline_s(probe: ProbeSettings) -> float:
    """How long a starting replica may take to answer ``GET /`` with 200 (what v1's liveness probe
    allows before it kills the container: the initial delay plus ``failure_threshold`` periods)."""
    return float(probe.initial_delay_seconds + probe.failure_threshold * probe.period_seconds)


def service_state(
    states: Sequence[ReplicaState], desired: int, *, failed: bool, ever_ready: bool
) -> ServiceState:
    """v1's state of a service from its current generation's replica states.

    ``failed``: the runtime gave up on the service. ``ever_ready``: some replica of this generation
    served once (a crash after that is ``Unhealthy``, not ``Transitioning``).
    """
    if failed or "failed" in states:
        return "Failed"
    ready = sum(1 for s in states if s == "ready")
    active = sum(1 for s in states if s != "stopping")
    if ready >= desired and active == desired:
        return "Healthy"
    if ever_ready and "crashed" in states:
        return "Unhealthy"
    return "Transitioning"


def crash_message(service: str, reason: str, last_lines: Sequence[str], log_path: str) -> str:
    """v1's CrashLoopBackOff message, with the replica's last log lines in it."""
    tail = "\n".join(f"\t\t{line}" for line in last_lines) or "\t\t(the replica wrote nothing)"
    return (
        f"{CRASH_HEADLINE}\n"
        f"\t1. Please check the logs for your service: {service}. From the AML SDK, run "
        f"print(service.get_logs()); from the CLI, 'modelhost service logs {service}'.\n"
        f"\t2. modelhost stopped restarting it: {reason}.\n"
        f"\t3. Last lines of the replica's log ({log_path}):\n{tail}"
    )
