"""A service's status derived from its Kubernetes Deployments and pods: pure (dicts and ``now`` in).

The Kubernetes runtime lists the service's Deployments and pods (JSON-shaped dicts, as the API
server sends them) and asks this module what v1 would say: each pod becomes a
:class:`~modelhost.runtime.base.ReplicaStatus` (id = pod name, host = pod IP, port 5001) and the
service a :class:`~modelhost.runtime.base.ServiceStatus`. What cannot be read off a pod is passed
in: the pods this runtime has seen ready (``ever_ready``: a crash after serving is ``crashed``,
before it ``failed``) and the last log lines of crash-looping containers (:func:`crash_logs_wanted`
says which to fetch).

Mapping (docs/runtime.md, "kubernetes"):

- ``PodScheduled=False/Unschedulable``: ``starting`` with the scheduler's message as the error at
  once; ``failed`` after ``schedule_timeout_s`` (v1's 5 minutes), in v1's wording.
- ``ErrImagePull``: ``starting``; ``ImagePullBackOff``/``InvalidImageName``: ``failed``; both name the image.
- a container (the init container ``fetch`` or ``scoring``) that exited: ``crashed`` when the pod
  served before, else ``failed`` once the kubelet backs off (``CrashLoopBackOff``) or after
  ``max_start_failures`` exits, with v1's CrashLoopBackOff message and the container's last lines.
- Deployment ``Progressing=False/ProgressDeadlineExceeded``: the service is ``Failed``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelhost.runtime import k8s_names as names
from modelhost.runtime.base import ReplicaState, ReplicaStatus, ServiceState, ServiceStatus
from modelhost.runtime.supervision import crash_message, service_state
from modelhost.types import ReplicaId, ServiceName

__all__ = [
    "INIT_CONTAINER",
    "SCORING_CONTAINER",
    "StatusPolicy",
    "crash_logs_wanted",
    "generation_of",
    "is_ready",
    "parse_time",
    "replica_status",
    "restart_count",
    "retired_deployments",
    "service_status",
]

K8sDict = Mapping[str, Any]
SCORING_CONTAINER = "scoring"
INIT_CONTAINER = "fetch"
_PULL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_PULL_FATAL = ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


@dataclass(frozen=True)
class StatusPolicy:
    """When the runtime gives up: ``schedule_timeout_s`` unschedulable (v1: 5 minutes), or
    ``max_start_failures`` exits of a pod that never served (as the local runtime's policy)."""

    schedule_timeout_s: float = 300.0
    max_start_failures: int = 3
    # A crash's log can lag its status; wait this long (from the pod's start) for lines to quote
    # before reporting Failed with none.
    crash_log_wait_s: float = 30.0


def parse_time(value: str | None) -> float | None:
    """An API server timestamp (RFC 3339, ``...Z``) as seconds since the epoch."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def generation_of(obj: K8sDict) -> int | None:
    """The ``modelhost.io/generation`` label of a Deployment or pod, or None."""
    raw = (obj.get("metadata", {}).get("labels") or {}).get(names.LABEL_GENERATION)
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def _condition(obj: K8sDict, kind: str) -> K8sDict | None:
    for cond in obj.get("status", {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None


def is_ready(pod: K8sDict) -> bool:
    """The pod's ``Ready`` condition is True and it is not being deleted."""
    cond = _condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True" and not pod["metadata"].get("deletionTimestamp")


def _container_statuses(pod: K8sDict) -> list[tuple[str, K8sDict]]:
    status = pod.get("status", {})
    return [("init", c) for c in status.get("initContainerStatuses") or ()] + [
        ("main", c) for c in status.get("containerStatuses") or ()
    ]


def _spec_image(pod: K8sDict, container: str) -> str:
    spec = pod.get("spec", {})
    for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        if c.get("name") == container:
            return str(c.get("image", "?"))
    return "?"


def restart_count(pod: K8sDict) -> int:
    """Restarts of all the pod's containers (init containers included)."""
    return sum(int(c.get("restartCount", 0)) for _, c in _container_statuses(pod))


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _unschedulable(
    pod: K8sDict, service: str, now: float, policy: StatusPolicy
) -> tuple[ReplicaState, str] | None:
    cond = _condition(pod, "PodScheduled")
    if cond is None or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return None
    message = str(cond.get("message") or "no node fits the pod")
    created = parse_time(pod["metadata"].get("creationTimestamp")) or now
    if now - created >= policy.schedule_timeout_s:
        return "failed", (
            f"Couldn't schedule a replica of service {service} because the Kubernetes cluster didn't "
            f"have available resources after trying for {_hms(policy.schedule_timeout_s)}: {message}"
        )
    return "starting", f"the replica cannot be scheduled yet: {message}"


def _image_pull(pod: K8sDict) -> tuple[ReplicaState, str] | None:
    for _, c in _container_statuses(pod):
        waiting = (c.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in _PULL_WAITING:
            image = _spec_image(pod, str(c.get("name")))
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            state: ReplicaState = "failed" if reason in _PULL_FATAL else "starting"
            return state, (
                f"cannot pull image {image} for container {c.get('name')} of replica "
                f"{pod['metadata']['name']} ({reason}){detail}"
            )
    return None


def _describe_exit(kind: str, name: str, terminated: K8sDict) -> str:
    code = terminated.get("exitCode")
    if kind == "init":
        return f"the init container {name} (it downloads the snapshot and the models) exited with code {code}"
    if code == 3:
        return "init() failed: the scoring server exited with code 3"
    reason = terminated.get("reason")
    return f"the replica exited with code {code}" + (f" ({reason})" if reason and reason != "Error" else "")


@dataclass(frozen=True)
class _Exited:
    kind: str  # "init" or "main"
    container: str
    terminated: K8sDict
    backing_off: bool  # the kubelet waits (CrashLoopBackOff) before the next start


def _crashing(pod: K8sDict) -> _Exited | None:
    """The first container that exited and is not running again. A finished init container
    (exit 0) did its job."""
    for kind, c in _container_statuses(pod):
        state = c.get("state") or {}
        name = str(c.get("name"))
        if "terminated" in state:
            if kind == "init" and state["terminated"].get("exitCode") == 0:
                continue
            return _Exited(kind, name, state["terminated"], False)
        last = (c.get("lastState") or {}).get("terminated")
        if "waiting" in state and last:
            backing_off = state["waiting"].get("reason") == "CrashLoopBackOff"
            return _Exited(kind, name, last, backing_off)
    return None


def _crash(
    pod: K8sDict,
    service: str,
    ever_ready: bool,
    policy: StatusPolicy,
    log_lines: Sequence[str] | None,
    now: float,
) -> tuple[ReplicaState, str] | None:
    found = _crashing(pod)
    if found is None:
        return None
    reason = _describe_exit(found.kind, found.container, found.terminated)
    if ever_ready:
        return "crashed", f"{reason}; Kubernetes restarts it"
    if found.backing_off or restart_count(pod) >= policy.max_start_failures:
        started = parse_time(pod.get("status", {}).get("startTime")) or now
        if not log_lines and now - started < policy.crash_log_wait_s:
            return "starting", f"{reason}; reading its log"
        where = f"pod {pod['metadata']['name']}, container {found.container}"
        why = f"{reason}; Kubernetes reports CrashLoopBackOff"
        return "failed", crash_message(service, why, list(log_lines or ()), where)
    return "starting", f"{reason}; Kubernetes restarts it"


def replica_status(
    pod: K8sDict,
    *,
    service: str,
    now: float,
    ever_ready: bool,
    policy: StatusPolicy = StatusPolicy(),
    log_lines: Sequence[str] | None = None,
) -> ReplicaStatus:
    """One pod as a replica: its state, and the reason when it is not serving."""
    meta, status = pod["metadata"], pod.get("status", {})
    verdict: tuple[ReplicaState, str | None]
    if meta.get("deletionTimestamp"):
        verdict = ("stopping", None)
    elif is_ready(pod):
        verdict = ("ready", None)
    else:
        verdict = (
            _unschedulable(pod, service, now, policy)
            or _image_pull(pod)
            or _crash(pod, service, ever_ready, policy, log_lines, now)
            or ("starting", None)
        )
    state, error = verdict
    return ReplicaStatus(
        id=ReplicaId(meta["name"]),
        service=ServiceName(service),
        generation=generation_of(pod) or 0,
        state=state,
        host=str(status.get("podIP") or ""),
        port=names.SCORING_PORT,
        pid=None,
        restarts=restart_count(pod),
        last_error=error,
        started_at=parse_time(status.get("startTime")) or parse_time(meta.get("creationTimestamp")) or 0.0,
    )


def crash_logs_wanted(pods: Sequence[K8sDict], ever_ready: Collection[str]) -> list[tuple[str, str]]:
    """``(pod, container)`` whose last log lines a ``failed`` message needs: containers of
    never-ready pods that exited."""
    wanted = []
    for pod in pods:
        name = pod["metadata"]["name"]
        if name in ever_ready or pod["metadata"].get("deletionTimestamp"):
            continue
        found = _crashing(pod)
        if found is not None:
            wanted.append((name, found.container))
    return wanted


def _deployment_failure(deployment: K8sDict) -> str | None:
    cond = _condition(deployment, "Progressing")
    if cond and (cond.get("status"), cond.get("reason")) == ("False", "ProgressDeadlineExceeded"):
        name = deployment["metadata"]["name"]
        return f"Deployment {name} made no progress within its deadline: {cond.get('message', '')}".strip()
    return None


def _desired(deployment: K8sDict) -> int:
    replicas = deployment.get("spec", {}).get("replicas")
    return int(replicas) if replicas is not None else 1


def service_status(
    service: str,
    deployments: Sequence[K8sDict],
    pods: Sequence[K8sDict],
    *,
    now: float,
    ever_ready: Collection[str] = (),
    logs: Mapping[str, Sequence[str]] | None = None,
    policy: StatusPolicy = StatusPolicy(),
) -> ServiceStatus:
    """The service as v1 would report it, from its Deployments (every generation) and pods.

    ``logs`` maps a pod name to the last lines of its crashed container (see
    :func:`crash_logs_wanted`). The newest generation's Deployment is the current one.
    """
    by_generation = {g: d for d in deployments if (g := generation_of(d)) is not None}
    generation = max(by_generation, default=0)
    current = by_generation.get(generation)
    desired = _desired(current) if current is not None else 0
    replicas = sorted(
        (
            replica_status(
                p,
                service=service,
                now=now,
                ever_ready=p["metadata"]["name"] in ever_ready,
                policy=policy,
                log_lines=(logs or {}).get(p["metadata"]["name"]),
            )
            for p in pods
        ),
        key=lambda r: (r.generation, r.id),
    )
    mine = [r for r in replicas if r.generation == generation]
    failure = _deployment_failure(current) if current is not None else None
    state: ServiceState = service_state(
        [r.state for r in mine],
        desired,
        failed=failure is not None,
        ever_ready=any(r.id in ever_ready for r in mine),
    )
    return ServiceStatus(
        service=ServiceName(service),
        generation=generation,
        state=state,
        desired_replicas=desired,
        replicas=tuple(replicas),
        error=None if state == "Healthy" else _service_error(failure, mine),
    )


def _service_error(failure: str | None, replicas: Sequence[ReplicaStatus]) -> str | None:
    """The reason to show: the Deployment's own failure, a failed replica's, else any replica's
    (an unschedulable pod's message shows while the service is still ``Transitioning``)."""
    if failure is not None:
        return failure
    for wanted in ("failed", "crashed", "starting"):
        for r in replicas:
            if r.state == wanted and r.last_error:
                return r.last_error
    return None


def retired_deployments(deployments: Sequence[K8sDict], pods: Sequence[K8sDict]) -> list[str]:
    """Names of the older generations' Deployments to remove: once the newest generation has all
    its wanted replicas ready (the local runtime's rule: new replicas ready before old ones stop)."""
    by_generation = {g: d for d in deployments if (g := generation_of(d)) is not None}
    if len(by_generation) < 2:
        return []
    newest = max(by_generation)
    ready = sum(1 for p in pods if generation_of(p) == newest and is_ready(p))
    if ready < _desired(by_generation[newest]):
        return []
    return sorted(d["metadata"]["name"] for g, d in by_generation.items() if g < newest)
