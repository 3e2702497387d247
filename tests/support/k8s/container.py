"""One container of a pod as a kubelet tracks it: its state (waiting / running / terminated), restarts
with back-off, probes (startup, liveness, readiness) and the ``containerStatuses`` entry it reports."""

from __future__ import annotations

import datetime
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.k8s.process import ProcessRun, run_probe

__all__ = ["Container", "Launcher", "Timings", "rfc3339"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class Timings:
    """The agent's clocks. A kubelet backs off 10 s doubling to 300 s; tests want seconds, not minutes."""

    backoff_base_s: float = 1.0
    backoff_max_s: float = 8.0
    image_backoff_s: float = 1.0
    tick_s: float = 0.1


def rfc3339(ts: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if ts is None else ts, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _ProbeState:
    spec: Obj
    started: float
    successes: int = 0
    failures: int = 0
    next_at: float = 0.0
    passed: bool = False

    def __post_init__(self) -> None:
        self.next_at = self.started + float(self.spec.get("initialDelaySeconds") or 0)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, now: float) -> None:
        """Count consecutive results; ``passed`` flips at the success / failure thresholds."""
        self.next_at = now + float(self.spec.get("periodSeconds") or 10)
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.spec.get("successThreshold") or 1):
                self.passed = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= int(self.spec.get("failureThreshold") or 3):
                self.passed = False

    @property
    def failed(self) -> bool:
        return self.failures >= int(self.spec.get("failureThreshold") or 3)


Launcher = Callable[["Container"], ProcessRun]


@dataclass
class Container:
    """State of one container; the pod worker calls ``step`` every tick."""

    spec: Obj
    image_id: str
    log_dir: Path
    timings: Timings
    restart_policy: str
    is_init: bool = False
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    run: ProcessRun | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    restart_count: int = 0
    started_at: float = 0.0
    last_terminated: Obj | None = None
    terminated: Obj | None = None  # set while it stays terminated (no restart due or allowed)
    runs: list[Path] = field(default_factory=list)
    next_start: float = 0.0
    delay_s: float = 0.0
    ready: bool = False
    probes: dict[str, _ProbeState] = field(default_factory=dict)
    kill_reason: str | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.run is not None

    @property
    def succeeded(self) -> bool:
        return self.terminated is not None and self.terminated.get("exitCode") == 0

    def can_start(self, now: float) -> bool:
        return self.run is None and self.terminated is None and now >= self.next_start

    def start(self, launcher: Launcher, now: float) -> None:
        """Start a run (``launcher`` may raise; the caller turns that into a waiting reason)."""
        self.log_path_for_next().parent.mkdir(parents=True, exist_ok=True)
        self.run = launcher(self)
        if self.runs:
            self.restart_count += 1
        self.runs.append(self.run.log_path)
        self.started_at = time.time()
        self.ready = False
        self.kill_reason = None
        self.probes = {
            k: _ProbeState(self.spec[k], now)
            for k in ("startupProbe", "livenessProbe", "readinessProbe")
            if not self.is_init and self.spec.get(k)
        }

    def log_path_for_next(self) -> Path:
        return self.log_dir / self.name / f"{len(self.runs)}.log"

    def step(self, now: float, pod_ip: str, ports: Mapping[str, int]) -> None:
        """Notice an exit (and schedule the restart), or run the probes that are due."""
        if self.run is None:
            return
        code = self.run.poll()
        if code is not None:
            self._exited(code, now)
            return
        self._probe(now, pod_ip, ports)

    def _exited(self, code: int, now: float) -> None:
        assert self.run is not None
        if code < 0:  # killed by a signal: report it the way container runtimes do
            code = 128 - code
        self.run.kill()  # whatever the leader left in its group goes too
        record = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else (self.kill_reason or "Error"),
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(),
            "containerID": self.container_id,
        }
        ran_s = time.time() - self.started_at
        self.run, self.ready = None, False
        restart = self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)
        if self.is_init and code == 0:
            restart = False
        if not restart:
            self.terminated = record
            return
        self.last_terminated = record
        if ran_s > 2 * self.timings.backoff_max_s:  # a long healthy run resets the back-off
            self.delay_s = 0.0
        self.next_start = now + self.delay_s
        self.waiting_reason = "CrashLoopBackOff"
        self.waiting_message = f"back-off {self.delay_s:g}s restarting failed container={self.name}"
        self.delay_s = min(max(self.delay_s * 2, self.timings.backoff_base_s), self.timings.backoff_max_s)

    def _probe(self, now: float, pod_ip: str, ports: Mapping[str, int]) -> None:
        assert self.run is not None
        startup = self.probes.get("startupProbe")
        if startup is not None and not startup.passed:
            if startup.due(now):
                startup.record(run_probe(startup.spec, pod_ip, ports, self.run, self.env), now)
                if startup.failed:
                    self.kill("startup probe failed")
            return
        live = self.probes.get("livenessProbe")
        if live is not None and live.due(now):
            live.record(run_probe(live.spec, pod_ip, ports, self.run, self.env), now)
            if live.failed:
                self.kill("liveness probe failed")
                return
        ready = self.probes.get("readinessProbe")
        if ready is None:
            self.ready = True
        elif ready.due(now):
            ready.record(run_probe(ready.spec, pod_ip, ports, self.run, self.env), now)
            self.ready = ready.passed

    def kill(self, why: str) -> None:
        """Kill the running process (a failed liveness/startup probe); ``step`` then restarts it."""
        if self.run is not None:
            self.kill_reason = "Error"
            self.waiting_message = why
            self.run.signal(signal.SIGKILL)

    @property
    def container_id(self) -> str:
        return f"agent://{self.log_dir.parent.name}/{self.name}/{len(self.runs)}"

    @property
    def started(self) -> bool:
        startup = self.probes.get("startupProbe")
        return self.run is not None and (startup is None or startup.passed)

    def status(self) -> Obj:
        """The ``containerStatuses`` entry."""
        if self.run is not None:
            state: Obj = {"running": {"startedAt": rfc3339(self.started_at)}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            waiting: Obj = {"reason": self.waiting_reason}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            state = {"waiting": waiting}
        out: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": self.image_id,
            "ready": self.ready if not self.is_init else self.succeeded,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.runs:
            out["containerID"] = self.container_id
        return out
