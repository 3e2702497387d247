"""The autoscaler loop's bookkeeping, one ``tick(now)`` at a time with a fake clock.

The runtime here is an **in-memory double** (``MemoryRuntime``), not modelhost's LocalRuntime: these
tests check what the loop asks for (scale, drain, stop) and when; tests/e2e/autoscale runs the
same loop against a real router and real LocalRuntime replicas. The load source is a dict the test
sets, and the routes record what the loop excluded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from modelhost.autoscale import Action, AutoscaleConfig
from modelhost.control.autoscaler import AutoscalerLoop, ServiceScaling
from modelhost.errors import ModelhostError, NotFoundError
from modelhost.router.table import ServiceLoad
from modelhost.runtime.base import ReplicaStatus, ServiceStatus
from modelhost.types import ReplicaId, ServiceName

SVC = ServiceName("svc")
REFRESH = 1.0
DOWN = 3.0


@dataclass
class MemoryRuntime:
    """Test double: replicas as rows in a dict; ``scale`` adds starting replicas, ``stop_replica``
    marks one stopping and wants one fewer, :meth:`finish_stops` makes stopping replicas vanish."""

    replicas: dict[ServiceName, dict[ReplicaId, ReplicaStatus]] = field(default_factory=dict)
    desired: dict[ServiceName, int] = field(default_factory=dict)
    scale_calls: list[tuple[ServiceName, int]] = field(default_factory=list)
    stop_calls: list[ReplicaId] = field(default_factory=list)
    started: int = 0

    def add(self, service: ServiceName, n: int, *, ready: bool = True) -> None:
        self.replicas.setdefault(service, {})
        self.desired[service] = self.desired.get(service, 0) + n
        for _ in range(n):
            self._start(service, "ready" if ready else "starting")

    def _start(self, service: ServiceName, state: str) -> None:
        self.started += 1
        rid = ReplicaId(f"{service}-{self.started}")
        self.replicas[service][rid] = ReplicaStatus(rid, service, 1, state, "127.0.0.1", 9000 + self.started,  # type: ignore[arg-type]
                                                    None, 0, None, float(self.started))

    def scale(self, service: ServiceName, replicas: int) -> ServiceStatus:
        self.scale_calls.append((service, replicas))
        live = [r for r in self.replicas[service].values() if r.state != "stopping"]
        for _ in range(replicas - len(live)):
            self._start(service, "starting")
        self.desired[service] = replicas
        return self.status(service)

    def stop_replica(self, replica: ReplicaId, grace_s: float = 10.0) -> ServiceStatus:
        for service, rows in self.replicas.items():
            if replica in rows:
                self.stop_calls.append(replica)
                rows[replica] = ReplicaStatus(**{**rows[replica].__dict__, "state": "stopping"})
                self.desired[service] -= 1
                return self.status(service)
        raise NotFoundError(f"replica {replica!r} not found")

    def status(self, service: ServiceName) -> ServiceStatus:
        if service not in self.replicas:
            raise NotFoundError(f"service {service} not found")
        rows = tuple(self.replicas[service].values())
        return ServiceStatus(service, 1, "Healthy", self.desired[service], rows)

    def make_ready(self, service: ServiceName) -> None:
        rows = self.replicas[service]
        for rid, r in rows.items():
            if r.state == "starting":
                rows[rid] = ReplicaStatus(**{**r.__dict__, "state": "ready"})

    def finish_stops(self) -> None:
        for rows in self.replicas.values():
            for rid in [rid for rid, r in rows.items() if r.state == "stopping"]:
                del rows[rid]

    def ready_ids(self, service: ServiceName) -> list[ReplicaId]:
        return [rid for rid, r in self.replicas[service].items() if r.state == "ready"]


@dataclass
class RecordingRoutes:
    excluded: dict[ServiceName, frozenset[ReplicaId]] = field(default_factory=dict)
    calls: int = 0

    def exclude(self, service: ServiceName, replica_ids: frozenset[ReplicaId]) -> None:
        self.calls += 1
        self.excluded[service] = replica_ids


@dataclass
class Harness:
    runtime: MemoryRuntime
    routes: RecordingRoutes
    loads: dict[str, ServiceLoad]
    configs: dict[ServiceName, AutoscaleConfig]
    loop: AutoscalerLoop

    def load(self, service: ServiceName, busy: float, queued: int = 0,
             in_flight: Mapping[str, int] | None = None) -> None:
        """Set what the 'router' reports: ready replicas are the runtime's, minus excluded ones."""
        excluded = self.routes.excluded.get(service, frozenset())
        ready = [rid for rid in self.runtime.ready_ids(service) if rid not in excluded]
        by_replica = {rid: 0 for rid in ready} | dict(in_flight or {})
        self.loads[service] = ServiceLoad(replicas=len(ready), busy=busy, queued=queued,
                                          in_flight=sum(by_replica.values()), in_flight_by_replica=by_replica)


def make(config: AutoscaleConfig | None = None, *, replicas: int = 1,
         drain_timeout_s: float = 60.0) -> Harness:
    runtime = MemoryRuntime()
    runtime.add(SVC, replicas)
    routes = RecordingRoutes()
    loads: dict[str, ServiceLoad] = {}
    config = config or AutoscaleConfig.checked(min_replicas=1, max_replicas=10, refresh_seconds=REFRESH,
                                               scale_down_delay_s=DOWN, scale_to_zero_delay_s=DOWN)
    configs = {SVC: config}
    loop = AutoscalerLoop(runtime, lambda: loads, routes, lambda: configs, drain_timeout_s=drain_timeout_s,
                          clock=lambda: pytest.fail("tick() must not read the clock"))
    return Harness(runtime, routes, loads, configs, loop)


def test_load_step_scales_up_at_once_and_logs_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    h = make(replicas=2)
    h.load(SVC, busy=1)
    assert h.loop.tick(0.0)[SVC].action is Action.HOLD  # 50 %
    h.load(SVC, busy=2, queued=5)  # 7 replicas' worth of work at 70 % wants 10
    with caplog.at_level(logging.INFO, logger="modelhost.autoscaler"):
        decision = h.loop.tick(1.0)[SVC]
    assert (decision.action, decision.replicas) == (Action.UP, 10)
    assert h.runtime.scale_calls == [(SVC, 10)]
    assert any("up 2 -> 10" in r.getMessage() and "desired ceil(7 / 0.70) = 10" in r.getMessage()
               for r in caplog.records)
    assert h.loop.snapshot()[SVC] == ServiceScaling(current=2, desired=10, utilization=3.5,
                                                    last_reason=decision.reason, action="up", decided_at=1.0)


def test_holds_wait_for_the_refresh_but_up_is_decided_at_the_first_sample() -> None:
    h = make(replicas=2)
    h.load(SVC, busy=1)
    assert h.loop.tick(0.0)[SVC].action is Action.HOLD
    assert h.loop.tick(0.25) == {}  # sampled, not due
    h.load(SVC, busy=2, queued=2)  # wants ceil(4 / 0.7) = 6: decided at once, mid-refresh
    decision = h.loop.tick(0.5)[SVC]
    assert (decision.action, decision.replicas) == (Action.UP, 6)
    assert h.runtime.scale_calls == [(SVC, 6)]
    assert h.loop.tick(0.75) == {}  # the same load wants no more: back to the refresh cadence
    assert h.loop.tick(1.5)[SVC].action is Action.HOLD


def test_no_sample_holds() -> None:
    h = make()
    decision = h.loop.tick(0.0)[SVC]
    assert decision.action is Action.HOLD and "no load sample" in decision.reason
    assert h.runtime.scale_calls == []


def test_scale_down_drains_then_stops_not_ready_first_then_newest() -> None:
    h = make(replicas=3)
    h.runtime.add(SVC, 1, ready=False)  # 4 wanted, the newest... and one still starting
    h.runtime.add(SVC, 1)
    oldest, second, third, starting, newest = h.runtime.replicas[SVC]
    t = 0.0
    while True:  # idle: the down window passes, then 5 -> 3 (at most halving)
        h.load(SVC, busy=0)
        decision = h.loop.tick(t).get(SVC)
        if decision is not None and decision.action is Action.DOWN:
            break
        assert t < 10, "no scale-down"
        t += 0.5
    assert t >= DOWN
    assert decision.replicas == 3
    assert h.routes.excluded[SVC] == {starting, newest}
    assert h.runtime.stop_calls == []  # nothing stopped before the router drained them
    # the router still has a request in flight on the newest one; the starting one never served
    h.load(SVC, busy=1, in_flight={newest: 1})
    h.loop.tick(t + 0.25)
    assert h.runtime.stop_calls == [starting]
    h.load(SVC, busy=0)  # the newest finished: it left the router's view
    h.loop.tick(t + 0.5)
    assert h.runtime.stop_calls == [starting, newest]
    assert h.routes.excluded[SVC] == {starting, newest}  # kept out until the runtime forgets them
    h.runtime.finish_stops()
    h.load(SVC, busy=0)
    h.loop.tick(t + 0.75)
    assert h.routes.excluded[SVC] == frozenset()
    assert set(h.runtime.replicas[SVC]) == {oldest, second, third}
    assert h.runtime.desired[SVC] == 3


def test_drain_deadline_stops_a_replica_that_never_drains(caplog: pytest.LogCaptureFixture) -> None:
    h = make(replicas=2, drain_timeout_s=5.0)
    t = 0.0
    while SVC not in h.routes.excluded:
        h.load(SVC, busy=0)
        h.loop.tick(t)
        t += 1.0
    (victim,) = h.routes.excluded[SVC]
    start = t - 1.0
    while not h.runtime.stop_calls:
        h.load(SVC, busy=1, in_flight={victim: 1})
        with caplog.at_level(logging.WARNING, logger="modelhost.autoscaler"):
            h.loop.tick(t)
        t += 0.5
    assert t - 0.5 >= start + 5.0
    assert "still has requests in flight after the drain deadline" in caplog.text
    # the draining replica's request needs no capacity: no scale back up meanwhile
    assert h.runtime.scale_calls == []


def test_scale_up_during_a_drain_takes_draining_replicas_back_first() -> None:
    h = make(replicas=4)
    t = 0.0
    while SVC not in h.routes.excluded:
        h.load(SVC, busy=0)
        h.loop.tick(t)
        t += 1.0
    assert len(h.routes.excluded[SVC]) == 2  # 4 -> 2
    draining = h.routes.excluded[SVC]
    staying = [rid for rid in h.runtime.replicas[SVC] if rid not in draining]
    # 2 busy where they stay, 1 queued, and the draining ones still finishing a request each:
    # (2 + 1) / 0.7 wants 5; the draining requests need no capacity
    h.load(SVC, busy=4, queued=1, in_flight=dict.fromkeys([*staying, *draining], 1))
    decision = h.loop.tick(t)[SVC]
    assert (decision.action, decision.replicas) == (Action.UP, 5)
    assert h.routes.excluded[SVC] == frozenset()  # both back in the table
    assert h.runtime.scale_calls == [(SVC, 5)]  # and only one new replica
    assert h.runtime.stop_calls == []
    assert draining <= set(h.runtime.replicas[SVC])


def test_services_without_autoscale_are_left_alone() -> None:
    h = make()
    fixed = ServiceName("fixed")
    h.runtime.add(fixed, 1)
    h.load(fixed, busy=1, queued=20)
    h.load(SVC, busy=0)
    decisions = h.loop.tick(0.0)
    assert set(decisions) == {SVC}
    assert h.runtime.scale_calls == [] and set(h.loop.snapshot()) == {SVC}


def test_router_unreachable_holds_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    runtime = MemoryRuntime()
    runtime.add(SVC, 2)
    config = AutoscaleConfig.checked(refresh_seconds=REFRESH, scale_down_delay_s=DOWN)

    def unreachable() -> Mapping[str, ServiceLoad]:
        raise ModelhostError("The router at http://127.0.0.1:1 did not report its load")

    loop = AutoscalerLoop(runtime, unreachable, RecordingRoutes(), lambda: {SVC: config})
    with caplog.at_level(logging.WARNING, logger="modelhost.autoscaler"):
        for t in range(10):
            assert loop.tick(float(t))[SVC].action is Action.HOLD
    assert caplog.text.count("cannot read the router's load") == 1
    assert runtime.scale_calls == [] and runtime.stop_calls == []


def test_scale_to_zero_and_a_burst_activates_exactly_one() -> None:
    config = AutoscaleConfig.checked(min_replicas=0, max_replicas=5, refresh_seconds=REFRESH,
                                     scale_down_delay_s=DOWN, scale_to_zero_delay_s=2 * DOWN)
    h = make(config)
    (only,) = h.runtime.replicas[SVC]
    t = 0.0
    while h.routes.excluded.get(SVC) != {only}:
        h.load(SVC, busy=0)
        decision = h.loop.tick(t).get(SVC)
        assert decision is None or decision.action in (Action.HOLD, Action.TO_ZERO)
        t += 0.5
        assert t < 20
    assert t > 2 * DOWN
    h.load(SVC, busy=0)
    h.loop.tick(t)
    assert h.runtime.stop_calls == [only]
    h.runtime.finish_stops()
    h.load(SVC, busy=0, queued=50)  # a burst at zero: the router keeps them queued
    decisions = [h.loop.tick(t + dt).get(SVC) for dt in (1.0, 2.0, 3.0)]
    actions = [d.action for d in decisions if d is not None]
    assert actions == [Action.ACTIVATE, Action.HOLD, Action.HOLD]  # held while the replica starts
    assert h.runtime.scale_calls == [(SVC, 1)]
    h.runtime.make_ready(SVC)
    h.load(SVC, busy=1, queued=49)
    decision = h.loop.tick(t + 4.0)[SVC]
    assert (decision.action, decision.replicas) == (Action.UP, 5)  # sized once one is ready


def test_metrics_collector_exports_desired_and_utilization() -> None:
    h = make(replicas=2)
    h.load(SVC, busy=1)
    h.loop.tick(0.0)
    registry = CollectorRegistry()
    registry.register(h.loop.collector())
    text = generate_latest(registry).decode()
    assert 'modelhost_desired_replicas{service="svc"} 2.0' in text
    assert 'modelhost_utilization{service="svc"} 0.5' in text


def test_a_service_dropped_from_configs_is_forgotten() -> None:
    h = make()
    h.load(SVC, busy=0)
    h.loop.tick(0.0)
    h.configs.clear()
    assert h.loop.tick(1.0) == {}
    assert h.loop.snapshot() == {}


def test_wanted_replicas_that_do_not_exist_are_scaled_away_not_drained() -> None:
    h = make(replicas=1)
    h.runtime.desired[SVC] = 3  # the runtime wants 3 but runs 1 (say two were given up)
    t = 0.0
    while not h.runtime.scale_calls:
        h.load(SVC, busy=0)
        h.loop.tick(t)
        t += 0.5
        assert t < 10
    assert h.runtime.scale_calls == [(SVC, 2)]  # 3 -> 2 (at most halving): one that does not exist
    assert h.routes.excluded.get(SVC, frozenset()) == frozenset()  # the one replica keeps serving
    assert h.runtime.stop_calls == []
