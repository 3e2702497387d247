"""The autoscaler loop: sample the router's load, ask the pure decider, act through the runtime.

:func:`modelhost.autoscale.decide` says how many replicas a service should run; this module owns
everything around it that has a clock or a socket (GUIDE §1, "decide, then do")::

    every refresh_seconds / 4:  sample GET /-/load once for all services, stamped with the loop's clock
    every refresh_seconds:      decide(samples since the last decision, config, state, now) per service
      more replicas  ->  runtime.scale(service, n); new replicas join routing once ready
                         (the routing-table publisher only lists ready replicas)
      fewer          ->  drain: routes.exclude(service, victims); once the router reports none of
                         their requests in flight (or the scoring timeout passed),
                         runtime.stop_replica(victim)

A service is autoscaled when ``configs()`` returns a config for it; the loop never touches any
other service (``autoscale_enabled=False`` keeps ``num_replicas``). Every decision that changes
something is logged at INFO with its reason (the decider writes its inputs into it); holds at
DEBUG. :meth:`AutoscalerLoop.snapshot` keeps, per service, the ready and desired replicas, the
utilization and the last reason, for ``service show`` and ``/metrics``
(:meth:`AutoscalerLoop.collector`).

Two small helpers let the loop run without the control plane (tests, ``bench/autoscale.py``):
:class:`RouterLoadSource` reads ``/-/load`` and :class:`RuntimeTablePublisher` publishes a runtime's
ready replicas to ``PUT /-/table`` and implements :class:`Routes`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelhost.autoscale import Action, AutoscaleConfig, AutoscaleState, Decision, LoadSample, decide
from modelhost.errors import ModelhostError, NotFoundError
from modelhost.router.table import ServiceLoad
from modelhost.runtime.base import ReplicaStatus, ServiceStatus
from modelhost.types import ReplicaId, ServiceName

__all__ = [
    "AutoscalerLoop",
    "LoadSource",
    "RouterLoadSource",
    "Routes",
    "RuntimeTablePublisher",
    "ScalingRuntime",
    "ServiceScaling",
]

logger = logging.getLogger("modelhost.autoscaler")

LoadSource = Callable[[], Mapping[str, ServiceLoad]]
"""The router's load signal, sampled when called: per service (ready replicas, busy, queued, in
flight, in flight per replica). Raises ``ModelhostError`` or ``OSError`` when it cannot be read."""

# Bounds of the loop's wake-up interval (refresh_seconds / 4): often enough that a decision sees a
# sample at most a quarter refresh old and a drained replica stops soon; rarely enough to stay cheap.
_MIN_WAKE_S = 0.05
_MAX_WAKE_S = 1.0
_SAMPLES_PER_REFRESH = 4


class ScalingRuntime(Protocol):
    """The part of :class:`modelhost.runtime.base.Runtime` the loop uses."""

    def scale(self, service: ServiceName, replicas: int) -> ServiceStatus: ...

    def stop_replica(self, replica: ReplicaId, grace_s: float = 10.0) -> ServiceStatus: ...

    def status(self, service: ServiceName) -> ServiceStatus: ...


class Routes(Protocol):
    """The routing-table side of a drain; the control plane's table publisher implements it."""

    def exclude(self, service: ServiceName, replica_ids: frozenset[ReplicaId]) -> None:
        """From now on publish ``service`` without ``replica_ids`` (this set replaces the previous
        one; empty: exclude none). Return once the router adopted the table: the loop takes a
        replica's absence from ``/-/load``'s ``in_flight_by_replica`` after this call as "drained".
        Excluded replicas must leave the table (not only turn ``ready: false``)."""
        ...


@dataclass(frozen=True)
class ServiceScaling:
    """What the loop last saw and decided for one service.

    ``current``: replicas ready to serve in the last load sample; ``desired``: the count the last
    decision asked for; ``utilization``: the last sample's (busy + queued) / ready, ``None`` at zero
    ready; ``last_reason``: the last decision's reason; ``draining``: replicas being drained.
    Times are the loop's clock.
    """

    current: int
    desired: int
    utilization: float | None
    last_reason: str
    action: str
    draining: tuple[ReplicaId, ...] = ()
    decided_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"current": self.current, "desired": self.desired, "utilization": self.utilization,
                "last_reason": self.last_reason, "action": self.action, "draining": list(self.draining)}


@dataclass
class _Tracked:
    """The loop's memory of one autoscaled service."""

    config: AutoscaleConfig
    state: AutoscaleState | None = None
    samples: list[LoadSample] = field(default_factory=list)
    last: LoadSample | None = None
    next_decision_at: float = float("-inf")
    drains: dict[ReplicaId, float] = field(default_factory=dict)  # replica -> stop deadline
    stopped: set[ReplicaId] = field(default_factory=set)  # stopped, kept excluded until gone
    scaling: ServiceScaling | None = None


class AutoscalerLoop:
    """Samples load, decides and acts for every autoscaled service (see the module docstring).

    ``runtime``: where replicas run (``scale``, ``stop_replica``, ``status``). ``load_source``:
    the router's ``/-/load`` (e.g. :class:`RouterLoadSource`). ``routes``: takes draining replicas
    out of the routing table. ``configs``: the autoscaled services and their settings, called every
    tick (a service missing from it is left alone). ``drain_timeout_s``: how long a drain waits for
    requests in flight before the replica is stopped anyway: the service's scoring timeout, in
    seconds, or one number for all. ``clock``: the loop's clock (samples are stamped with it).

    :meth:`tick` is one pass, for tests; :meth:`start` / :meth:`stop` run it in a daemon thread.
    """

    def __init__(
        self,
        runtime: ScalingRuntime,
        load_source: LoadSource,
        routes: Routes,
        configs: Callable[[], Mapping[ServiceName, AutoscaleConfig]],
        *,
        drain_timeout_s: float | Callable[[ServiceName], float] = 60.0,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
    ) -> None:
        self._runtime = runtime
        self._load_source = load_source
        self._routes = routes
        self._configs = configs
        self._drain_timeout = drain_timeout_s
        self._clock = clock
        self._log = log
        self._tracked: dict[ServiceName, _Tracked] = {}
        self._lock = threading.Lock()  # guards snapshot reads against the loop thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_failing = False

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`tick` in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="modelhost-autoscaler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (after the pass in progress). Drains in progress stay where they are."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(self._clock())
            except Exception:  # the loop must outlive any one bad pass; the traceback goes to the log
                self._log.exception("autoscaler pass failed")
            self._stop.wait(self.wake_interval())

    def wake_interval(self) -> float:
        """Seconds between passes: a quarter of the shortest refresh period, within [0.05, 1]."""
        refresh = min((t.config.refresh_seconds for t in self._tracked.values()), default=1.0)
        return min(max(refresh / _SAMPLES_PER_REFRESH, _MIN_WAKE_S), _MAX_WAKE_S)

    # -- one pass ------------------------------------------------------------------------------

    def tick(self, now: float) -> dict[ServiceName, Decision]:
        """One pass at ``now`` (the loop's clock): sample, advance drains, decide for each service
        whose refresh is due, act. Returns the decisions made in this pass, by service."""
        configs = self._configs()
        loads = self._sample()
        self._track(configs, loads, now)
        decisions: dict[ServiceName, Decision] = {}
        for name, tracked in list(self._tracked.items()):
            try:
                self._advance_drains(name, tracked, loads, now)
                if name in configs and (now >= tracked.next_decision_at or self._wants_more(tracked)):
                    decisions[name] = self._decide_and_act(name, tracked, now)
            except NotFoundError as exc:  # not deployed yet, or deleted meanwhile
                self._log.debug("autoscale %s: %s", name, exc.one_line())
            except ModelhostError as exc:
                self._log.warning("autoscale %s: %s", name, exc.one_line())
            if name not in configs and not tracked.drains and not tracked.stopped:
                self._forget(name)
        return decisions

    def _sample(self) -> Mapping[str, ServiceLoad] | None:
        try:
            loads = self._load_source()
        except (ModelhostError, OSError) as exc:
            if not self._load_failing:
                self._log.warning("autoscaler cannot read the router's load; holding: %s", exc)
            self._load_failing = True
            return None
        if self._load_failing:
            self._log.info("autoscaler reads the router's load again")
        self._load_failing = False
        return loads

    def _track(self, configs: Mapping[ServiceName, AutoscaleConfig], loads: Mapping[str, ServiceLoad] | None,
               now: float) -> None:
        for name, config in configs.items():
            tracked = self._tracked.get(name)
            if tracked is None:
                with self._lock:  # snapshot() iterates the dict from other threads
                    tracked = self._tracked[name] = _Tracked(config)
            tracked.config = config
            load = loads.get(name) if loads is not None else None
            if load is not None:
                sample = _sample(load, tracked.drains.keys() | tracked.stopped, now)
                tracked.samples.append(sample)
                tracked.last = sample

    def _forget(self, name: ServiceName) -> None:
        with self._lock:
            del self._tracked[name]

    # -- deciding ------------------------------------------------------------------------------

    def _wants_more(self, tracked: _Tracked) -> bool:
        """Up is eager: a sample between two refreshes that already wants more replicas than are
        wanted is decided on at once (down and holds wait for the refresh)."""
        last = tracked.last
        if last is None or tracked.state is None or not tracked.samples or tracked.samples[-1] is not last:
            return False
        wanted = tracked.state.replicas
        if wanted == 0:
            return last.load > 0
        return last.replicas > 0 and tracked.config.clamp(tracked.config.desired_for(last.load)) > wanted

    def _decide_and_act(self, name: ServiceName, tracked: _Tracked, now: float) -> Decision:
        samples, tracked.samples = tracked.samples, []
        tracked.next_decision_at = now + tracked.config.refresh_seconds
        status = self._runtime.status(name)
        # The runtime's wanted count minus what is draining is what serves once drains end; the
        # decider starts from it every time, so a deploy or scale from elsewhere is respected.
        effective = max(status.desired_replicas - len(tracked.drains), 0)
        state = (AutoscaleState(replicas=effective) if tracked.state is None
                 else dataclasses.replace(tracked.state, replicas=effective))
        decision = decide(samples, tracked.config, state, now)
        tracked.state = decision.state
        self._log_decision(name, decision)  # before acting: the log's time is the decision's
        if decision.replicas > effective:
            self._scale_up(name, tracked, status, decision.replicas - effective)
        elif decision.replicas < effective:
            self._scale_down(name, tracked, status, effective - decision.replicas, now)
        self._record(name, tracked, decision, now)
        return decision

    def _scale_up(self, name: ServiceName, tracked: _Tracked, status: ServiceStatus, more: int) -> None:
        # Replicas still draining are running: take them back first, then start new ones.
        back = sorted(tracked.drains, key=lambda rid: tracked.drains[rid], reverse=True)[:more]
        for rid in back:
            del tracked.drains[rid]
        if back:
            self._exclude(name, tracked)
        if more > len(back):
            self._runtime.scale(name, status.desired_replicas + more - len(back))

    def _scale_down(self, name: ServiceName, tracked: _Tracked, status: ServiceStatus, fewer: int,
                    now: float) -> None:
        # Wanted replicas that do not exist (given up, not re-created yet) go first, by lowering the
        # wanted count: no running replica is stopped for that (the count stays >= those running).
        live = [r for r in status.replicas if r.generation == status.generation and r.state != "stopping"]
        missing = min(max(status.desired_replicas - len(live), 0), fewer)
        if missing:
            self._runtime.scale(name, status.desired_replicas - missing)
        deadline = now + self._drain_timeout_for(name)
        for replica in _victims(status, tracked.drains.keys() | tracked.stopped, fewer - missing):
            tracked.drains[replica.id] = deadline
        self._exclude(name, tracked)

    def _drain_timeout_for(self, name: ServiceName) -> float:
        timeout = self._drain_timeout
        return timeout(name) if callable(timeout) else timeout

    def _log_decision(self, name: ServiceName, decision: Decision) -> None:
        if decision.action is Action.HOLD:
            self._log.debug("autoscale %s: %s", name, decision.reason)
        else:
            self._log.info("autoscale %s: %s", name, decision.reason,
                           extra={"service": name, "action": decision.action.value,
                                  "replicas": decision.replicas})

    def _record(self, name: ServiceName, tracked: _Tracked, decision: Decision, now: float) -> None:
        last = tracked.last
        scaling = ServiceScaling(
            current=last.replicas if last is not None else 0,
            desired=decision.replicas,
            utilization=last.utilization if last is not None else None,
            last_reason=decision.reason,
            action=decision.action.value,
            draining=tuple(sorted(tracked.drains)),
            decided_at=now,
        )
        with self._lock:
            tracked.scaling = scaling

    # -- draining ------------------------------------------------------------------------------

    def _advance_drains(self, name: ServiceName, tracked: _Tracked, loads: Mapping[str, ServiceLoad] | None,
                        now: float) -> None:
        """Stop drained replicas (or those past their deadline); forget stopped ones once gone."""
        if not tracked.drains and not tracked.stopped:
            return
        load = loads.get(name) if loads is not None else None
        changed = False
        for rid, deadline in list(tracked.drains.items()):
            drained = load is not None and _drained(load, rid)
            if not drained and now < deadline:
                continue
            if not drained:
                self._log.warning("autoscale %s: replica %s still has requests in flight after the "
                                  "drain deadline; stopping it anyway", name, rid)
            del tracked.drains[rid]
            tracked.stopped.add(rid)
            changed = True
            try:
                self._runtime.stop_replica(rid)
            except NotFoundError:
                pass  # gone already (crashed for good, or the service was deleted)
            else:
                self._log.info("autoscale %s: replica %s drained and stopped", name, rid,
                               extra={"service": name, "replica": rid})
        if tracked.stopped:
            changed |= self._prune_stopped(name, tracked)
        if changed:
            self._exclude(name, tracked)

    def _prune_stopped(self, name: ServiceName, tracked: _Tracked) -> bool:
        try:
            present = {r.id for r in self._runtime.status(name).replicas}
        except NotFoundError:
            present = set()
        gone = tracked.stopped - present
        tracked.stopped -= gone
        return bool(gone)

    def _exclude(self, name: ServiceName, tracked: _Tracked) -> None:
        self._routes.exclude(name, frozenset(tracked.drains) | frozenset(tracked.stopped))

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self) -> dict[ServiceName, ServiceScaling]:
        """Per autoscaled service, what the last decision saw and asked for."""
        with self._lock:
            return {name: t.scaling for name, t in self._tracked.items() if t.scaling is not None}

    def collector(self) -> Collector:
        """A prometheus-client collector for the control plane's ``/metrics``:
        ``modelhost_desired_replicas{service}`` and ``modelhost_utilization{service}``."""
        return _ScalingCollector(self)


def _victims(status: ServiceStatus, busy: Iterable[ReplicaId], n: int) -> list[ReplicaStatus]:
    """The ``n`` replicas to remove: of the current generation, not stopping or already leaving;
    not-ready ones first (they serve nobody), then the newest (the oldest have warm caches)."""
    taken = set(busy)
    candidates = [r for r in status.replicas
                  if r.generation == status.generation and r.state != "stopping" and r.id not in taken]
    return sorted(candidates, key=lambda r: (r.state == "ready", -r.started_at))[:n]


def _sample(load: ServiceLoad, leaving: Iterable[ReplicaId], now: float) -> LoadSample:
    """The decider's sample, without the requests still finishing on replicas being drained: that
    work needs no capacity, and counting it would scale straight back up after a step down."""
    busy = load.busy
    draining = sum(load.in_flight_by_replica.get(rid, 0) for rid in leaving)
    if draining and load.in_flight:
        busy *= max(load.in_flight - draining, 0) / load.in_flight  # busy = in_flight / limit
    return LoadSample(at=now, replicas=load.replicas, busy=busy, queued=load.queued)


def _drained(load: ServiceLoad, replica: ReplicaId) -> bool:
    """The router neither routes to ``replica`` nor has a request in flight on it."""
    by_replica = load.in_flight_by_replica
    if by_replica or load.replicas == 0:
        return replica not in by_replica
    return load.in_flight == 0  # a load source without per-replica counts: wait for all quiet


class _ScalingCollector(Collector):
    def __init__(self, loop: AutoscalerLoop) -> None:
        self._loop = loop

    def collect(self) -> Iterable[Metric]:
        desired = GaugeMetricFamily("modelhost_desired_replicas", "Replicas the autoscaler asks for",
                                    labels=["service"])
        utilization = GaugeMetricFamily("modelhost_utilization",
                                        "(busy + queued) / ready replicas at the last decision (1 = 100 %)",
                                        labels=["service"])
        for name, scaling in sorted(self._loop.snapshot().items()):
            desired.add_metric([name], scaling.desired)
            if scaling.utilization is not None:
                utilization.add_metric([name], scaling.utilization)
        return [desired, utilization]


# ---------------------------------------------------------------------------------------------------------
# Standalone helpers: the router's load over HTTP, and a minimal table publisher


class RouterLoadSource:
    """``GET <router>/-/load?by_replica=1``, as a :data:`LoadSource`. ``ModelhostError`` when the
    router does not answer within ``timeout_s`` or answers something else than the load."""

    def __init__(self, router_url: str, *, timeout_s: float = 0.5) -> None:
        self._client = httpx.Client(base_url=router_url, timeout=timeout_s)

    def __call__(self) -> dict[str, ServiceLoad]:
        try:
            response = self._client.get("/-/load", params={"by_replica": "1"})
            response.raise_for_status()
            services = response.json()["services"]
            return {name: ServiceLoad(replicas=int(s["replicas"]), busy=float(s["busy"]),
                                      queued=int(s["queued"]), in_flight=int(s["in_flight"]),
                                      in_flight_by_replica=dict(s.get("in_flight_by_replica", {})))
                    for name, s in services.items()}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ModelhostError(f"The router at {self._client.base_url} did not report its load: {exc}",
                                 hint="Check that the router runs (python -m modelhost.router).") from exc

    def close(self) -> None:
        self._client.close()


class RuntimeTablePublisher:
    """Publishes a runtime's **ready** replicas to the router (``PUT /-/table``) and implements
    :class:`Routes`, so the loop runs without the control plane (tests, benchmarks).

    ``routes`` maps each service to its route options as the table's JSON has them (``keys``,
    ``max_queue_wait_ms``, ``scale_to_zero``, ...; ``replicas`` is filled in). :meth:`publish` puts
    a new table when the ready replicas changed; :meth:`start` does so every ``interval_s`` in a
    thread. The control plane has its own publisher and does not use this one.
    """

    def __init__(self, runtime: ScalingRuntime, router_url: str, admin_token: str,
                 routes: Mapping[ServiceName, Mapping[str, Any]], *, interval_s: float = 0.1) -> None:
        self._runtime = runtime
        self._client = httpx.Client(base_url=router_url, timeout=5.0,
                                    headers={"Authorization": f"Bearer {admin_token}"})
        self._routes = dict(routes)
        self._interval_s = interval_s
        self._excluded: dict[ServiceName, frozenset[ReplicaId]] = {}
        self._lock = threading.Lock()
        self._published: dict[str, Any] | None = None
        self._version = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def exclude(self, service: ServiceName, replica_ids: frozenset[ReplicaId]) -> None:
        with self._lock:
            self._excluded[service] = frozenset(replica_ids)
        self.publish()

    def publish(self) -> bool:
        """PUT the table if it changed; True when one was published."""
        with self._lock:
            services: dict[str, Any] = {name: {**options, "replicas": self._ready(name)}
                                        for name, options in self._routes.items()}
            if services == self._published:
                return False
            self._version += 1
            response = self._client.put("/-/table", json={"version": self._version, "services": services})
            response.raise_for_status()
            self._published = services
            return True

    def _ready(self, name: ServiceName) -> list[dict[str, Any]]:
        try:
            status = self._runtime.status(name)
        except NotFoundError:
            return []
        excluded = self._excluded.get(name, frozenset())
        return [{"id": r.id, "host": r.host, "port": r.port} for r in status.ready if r.id not in excluded]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelhost-table-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.publish()
            except (httpx.HTTPError, ModelhostError) as exc:
                logger.warning("routing table not published: %s", exc)
