"""FastProd routers scale themselves by their own load: the services' decider, the ``scale`` subresource.

On a ``FastProd`` cluster the in-cluster router (``modelhost-router``, see
:mod:`modelhost.runtime.k8s_render_router`) runs at least :data:`FAST_PROD_REPLICAS` pods. The
control plane reads each ready router pod's ``GET /-/load`` by the pod's address, turns the sum into
one :class:`~modelhost.autoscale.LoadSample` and asks the same pure decider the services use
(:func:`modelhost.autoscale.decide`) with :data:`FAST_PROD_REPLICAS` as the floor; a changed count is
written through ``deployments/scale`` with field manager ``modelhost-autoscaler`` (the owner of
``spec.replicas``; never an HPA, which would fight it). ``DevTest`` routers are never scaled (v1).

A router pod's load is what it holds: requests being proxied plus requests queued for a replica.
One pod at 100 % carries ``capacity`` of them (:data:`ROUTER_CAPACITY`, ``MODELHOST_ROUTER_CAPACITY``);
the router is asynchronous, so this is a count of concurrent requests, not of CPU.

:func:`router_sample` and :meth:`RouterScalePolicy.config` are pure; :class:`RouterScaler` does the I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from modelhost.autoscale import Action, AutoscaleConfig, AutoscaleState, Decision, LoadSample, decide
from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names
from modelhost.runtime.k8s_render import render_scale
from modelhost.runtime.k8s_render_router import FAST_PROD_REPLICAS, ROUTER_NAME, ROUTER_PORT

__all__ = [
    "ROUTER_CAPACITY", "RouterScalePolicy", "RouterScaler", "decide_router", "fetch_load", "router_sample",
]

_log = logging.getLogger("modelhost.control")

ROUTER_CAPACITY = 100
"""Concurrent requests (in flight + queued) one router pod carries at 100 % utilisation."""

_MERGE = "application/merge-patch+json"
RouterLoad = Mapping[str, Any]  # one pod's GET /-/load answer


@dataclass(frozen=True)
class RouterScalePolicy:
    """How routers scale: the decider's settings with the FastProd floor, and a pod's capacity."""

    min_replicas: int = FAST_PROD_REPLICAS
    max_replicas: int = 10
    target_utilization: int = 70
    capacity: int = ROUTER_CAPACITY
    refresh_seconds: float = 1.0
    scale_down_delay_s: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RouterScalePolicy:
        """``MODELHOST_ROUTER_CAPACITY`` and ``MODELHOST_ROUTER_MAX_REPLICAS`` (integers >= 1)."""
        values = {}
        for var, name in (("MODELHOST_ROUTER_CAPACITY", "capacity"),
                          ("MODELHOST_ROUTER_MAX_REPLICAS", "max_replicas")):
            raw = env.get(var)
            if not raw:
                continue
            if not raw.isdigit() or int(raw) < 1:
                raise ValidationError(f"{var}={raw!r} is not an integer >= 1",
                                      hint=f"Set {var} to a positive integer, or unset it.")
            values[name] = int(raw)
        policy = cls(**values)
        policy.config()  # validates min <= max
        return policy

    def config(self) -> AutoscaleConfig:
        """The decider's configuration (ValidationError naming what is wrong)."""
        return AutoscaleConfig.checked(
            min_replicas=self.min_replicas, max_replicas=max(self.max_replicas, self.min_replicas),
            target_utilization=self.target_utilization, refresh_seconds=self.refresh_seconds,
            scale_down_delay_s=self.scale_down_delay_s,
        )


def router_sample(loads: Mapping[str, RouterLoad | None], at: float, capacity: int) -> LoadSample | None:
    """One sample of the router fleet from each ready pod's ``/-/load`` (None: it did not answer).

    ``replicas`` counts the pods that answered; ``busy`` is their requests (in flight + queued, all
    services) in units of one pod's ``capacity``. None when no pod answered: the decider then holds.
    """
    answered = [load for load in loads.values() if load is not None]
    if not answered:
        return None
    held = 0
    for load in answered:
        for service in (load.get("services") or {}).values():
            held += int(service.get("in_flight", 0)) + int(service.get("queued", 0))
    return LoadSample(at=at, replicas=len(answered), busy=held / capacity, queued=0)


def decide_router(loads: Mapping[str, RouterLoad | None], current: int, policy: RouterScalePolicy,
                  state: AutoscaleState | None, now: float) -> Decision:
    """The router's replica count for ``now`` (pure): the fleet's sample into the services' decider,
    ``current`` (what the ``scale`` subresource says) overriding the state's count when another
    writer changed it. Hand ``decision.state`` back next time."""
    state = state or AutoscaleState(replicas=current)
    if state.replicas != current:  # someone else scaled it: decide from what runs
        state = replace(state, replicas=current)
    sample = router_sample(loads, now, policy.capacity)
    return decide([sample] if sample is not None else [], policy.config(), state, now)


def fetch_load(url: str, timeout_s: float = 0.5) -> RouterLoad | None:
    """``GET <router pod>/-/load``; None when it does not answer with the load."""
    try:
        response = httpx.get(f"{url}/-/load", timeout=timeout_s)
        response.raise_for_status()
        answer = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return answer if isinstance(answer, dict) and isinstance(answer.get("services"), dict) else None


class RouterScaler:
    """Every ``interval_s``, scales each FastProd target's router (see the module docstring).

    ``targets()`` lists ``(target, namespace)`` of the FastProd clusters; ``api_client(target)``
    gives a ``kubernetes.client.ApiClient`` (kept per target). ``fetch`` reads one pod's load.
    """

    def __init__(self, targets: Callable[[], list[tuple[str, str]]], api_client: Callable[[str], Any],
                 policy: RouterScalePolicy | None = None, *,
                 fetch: Callable[[str], RouterLoad | None] = fetch_load,
                 clock: Callable[[], float] = time.monotonic, interval_s: float = 1.0) -> None:
        self._targets = targets
        self._api_client = api_client
        self.policy = policy or RouterScalePolicy()
        self.policy.config()  # invalid settings fail here, at start
        self._fetch = fetch
        self._clock = clock
        self._interval_s = interval_s
        self._states: dict[str, AutoscaleState] = {}
        self._clients: dict[str, Any] = {}
        self.last: dict[str, Decision] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelhost-router-scaler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.tick()

    def tick(self) -> dict[str, Decision]:
        """One round over every FastProd target; a target that fails is logged and skipped."""
        targets = self._targets()
        for gone in set(self._states) - {t for t, _ in targets}:
            self._forget(gone)
        for target, namespace in targets:
            try:
                decision = self._scale_one(target, namespace)
            except Exception as exc:  # one unreachable cluster must not stop the others
                _log.warning("router scaler: target %s skipped: %s", target, exc)
                self._forget(target)
                continue
            if decision is not None:
                self.last[target] = decision
        return dict(self.last)

    def _forget(self, target: str) -> None:
        self._states.pop(target, None)
        self.last.pop(target, None)
        client = self._clients.pop(target, None)
        if client is not None:
            client.close()

    def _client(self, target: str) -> Any:
        if target not in self._clients:
            self._clients[target] = self._api_client(target)
        return self._clients[target]

    def _scale_one(self, target: str, namespace: str) -> Decision | None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = self._client(target)
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        try:
            scale: Any = apps.read_namespaced_deployment_scale(ROUTER_NAME, namespace)
            current = int(scale.spec.replicas or 0)
        except ApiException as exc:
            if exc.status == 404:  # no router installed on this target
                self._states.pop(target, None)
                return None
            raise
        selector = f"{names.LABEL_NAME}={ROUTER_NAME}"
        pods: list[Any] = core.list_namespaced_pod(namespace, label_selector=selector).items
        urls = {str(p.metadata.name): f"http://{p.status.pod_ip}:{ROUTER_PORT}" for p in pods if _ready(p)}
        now = self._clock()
        loads = {pod: self._fetch(url) for pod, url in urls.items()}
        decision = decide_router(loads, current, self.policy, self._states.get(target), now)
        self._states[target] = decision.state
        if decision.replicas != current:
            apps.patch_namespaced_deployment_scale(
                ROUTER_NAME, namespace, render_scale(ROUTER_NAME, namespace, decision.replicas),
                field_manager=names.SCALE_FIELD_MANAGER, _content_type=_MERGE)
        if decision.action != Action.HOLD:
            _log.info("router scaler: target %s: %s", target, decision.reason)
        return decision


def _ready(pod: Any) -> bool:
    if not pod.status or not pod.status.pod_ip or pod.metadata.deletion_timestamp:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
