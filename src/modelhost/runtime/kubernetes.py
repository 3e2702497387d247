"""The Kubernetes runtime: a service's replicas are the pods of one Deployment per generation.

Construction (what the control plane wires; nothing else is needed)::

    from kubernetes.client import ApiClient
    from modelhost.runtime.kubernetes import KubernetesRuntime
    from modelhost.runtime.k8s_render import K8sOptions

    runtime = KubernetesRuntime(
        api_client,                      # kubernetes.client.ApiClient for the cluster (kubeconfig)
        K8sOptions(namespace=..., registry=..., artifact_url=...),
        blobs=artifact_store,            # put_bytes/put_file: the fetch manifest and snapshot become blobs
        fetch_token="...",               # the control plane's read-only blob token: applied as the
                                         # namespace's fetch-token Secret (None: the Secret exists already)
        environment_image=None,          # ServiceDeployment -> image reference (e.g. by digest, see
                                         # runtime/oci.py); None: <registry>/modelhost-env:<environment_hash>
        keys=None,                       # ServiceName -> ServiceKeys | None: rendered as the keys Secret
        route=None,                      # ServiceName -> route settings | None: the anchor's data.route
        token_keys=None,                 # () -> (issuer, kid -> public key) | None: the token keys ConfigMap
    )

The in-cluster router (docs/kubernetes.md) reads the anchors' ``data.route``, the keys Secrets and
the token keys ConfigMap; :meth:`KubernetesRuntime.update_route` and
:meth:`KubernetesRuntime.update_token_keys` re-apply them at once when keys or settings change.

Every :class:`~modelhost.runtime.base.ServiceDeployment` it deploys must carry
``environment_hash`` and ``snapshot_sha256`` (ValidationError otherwise).

How it works (docs/runtime.md, "kubernetes"):

- **deploy** = server-side apply (field manager ``modelhost``, force) of the rendered objects in
  order: the anchor ConfigMap first, its uid read back, then the keys Secret, the headless Service
  and the generation's Deployment, all owned by the anchor. A Deployment this call created is then
  scaled through the ``scale`` subresource (field manager ``modelhost-autoscaler``); later applies
  omit ``spec.replicas`` and never reset it.
- **rolling update** = a new generation's Deployment; the older generations' Deployments are
  deleted once the new one has its wanted replicas ready (the local runtime's rule).
- **status** is derived by :mod:`.k8s_status` from the listed Deployments and pods. This first
  version *polls*: a background thread lists the namespace's modelhost objects every ``poll_s``
  (and retires old generations, remembers which pods were ever ready); ``status()`` answers from
  that snapshot when it is younger than ``cache_s``, else lists again. No watches yet.
- **delete** = delete the anchor with ``propagationPolicy=Foreground`` and wait until it is gone:
  the garbage collector removes everything it owns first.
- The runtime keeps no state of its own: ``adopt()`` reads what exists in the namespace.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from modelhost.errors import ConflictError, ModelhostError, NotFoundError, ValidationError
from modelhost.runtime import k8s_names as names
from modelhost.runtime import k8s_status
from modelhost.runtime.base import ServiceDeployment, ServiceStatus
from modelhost.runtime.k8s_render import (
    K8sObject,
    K8sOptions,
    ServiceKeys,
    fetch_manifest,
    render_anchor,
    render_fetch_token_secret,
    render_keys_secret,
    render_scale,
    render_service,
    render_token_keys,
    route_json,
)
from modelhost.runtime.k8s_render_upload import collects, render_upload_token_secret
from modelhost.runtime.k8s_status import StatusPolicy
from modelhost.runtime.upload import upload_token
from modelhost.types import ReplicaId, ServiceName

__all__ = ["BlobSink", "KubernetesRuntime"]

log = logging.getLogger(__name__)

_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"
_CRASH_TAIL_LINES = 30
_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


class BlobSink(Protocol):
    """Where the runtime stores what pods fetch (``modelhost.store.artifacts.ArtifactStore`` is one)."""

    def put_bytes(self, data: bytes) -> str: ...

    def put_file(self, path: Path) -> str: ...


@dataclass
class _Snapshot:
    """The namespace's modelhost objects at one moment, grouped by service."""

    at: float
    anchors: set[str] = field(default_factory=set)
    deployments: dict[str, list[K8sObject]] = field(default_factory=dict)
    pods: dict[str, list[K8sObject]] = field(default_factory=dict)


def _service_of(obj: Mapping[str, Any]) -> str | None:
    labels = obj.get("metadata", {}).get("labels") or {}
    value = labels.get(names.LABEL_SERVICE)
    return value if isinstance(value, str) else None


def _not_found(service: str) -> NotFoundError:
    return NotFoundError(
        f"service {service!r} not found in the Kubernetes namespace",
        hint="List services with 'modelhost service list'.",
    )


class KubernetesRuntime:
    """Replicas as pods of per-generation Deployments (see the module docstring)."""

    def __init__(
        self,
        api_client: Any,
        options: K8sOptions,
        *,
        blobs: BlobSink,
        fetch_token: str | None = None,
        environment_image: Callable[[ServiceDeployment], str] | None = None,
        keys: Callable[[ServiceName], ServiceKeys | None] | None = None,
        route: Callable[[ServiceName], Mapping[str, Any] | None] | None = None,
        token_keys: Callable[[], tuple[str, Mapping[str, str]] | None] | None = None,
        policy: StatusPolicy | None = None,
        poll_s: float = 1.0,
        cache_s: float = 0.5,
        delete_timeout_s: float = 180.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from kubernetes import client  # the server extra; imported here so the module loads without it

        self._client = client
        # Any: raw responses (_preload_content=False) are read as JSON, like recorded objects
        self._api_client = api_client
        self._server_minor: tuple[int, int] | None = None
        self._core: Any = client.CoreV1Api(api_client)
        self._apps: Any = client.AppsV1Api(api_client)
        self._options = options
        self._ns = options.namespace
        self._blobs = blobs
        self._fetch_token = fetch_token
        self._fetch_token_applied = False
        self._environment_image = environment_image
        self._keys = keys
        self._route = route
        self._token_keys = token_keys
        self._policy = policy or StatusPolicy()
        self._poll_s = poll_s
        self._cache_s = cache_s
        self._delete_timeout_s = delete_timeout_s
        self._clock = clock
        self._lock = threading.RLock()
        self._snapshot: _Snapshot | None = None
        self._ever_ready: set[str] = set()
        self._crash_logs: dict[tuple[str, str, int], list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelhost-k8s-poller", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:  # never the fetch token
        return f"KubernetesRuntime(namespace={self._ns!r})"

    # -- the Runtime protocol ------------------------------------------------------------------

    def deploy(self, deployment: ServiceDeployment) -> ServiceStatus:
        d = deployment
        environment, snapshot = self._check(d)
        snap = self._refresh()
        current = max(
            (
                g
                for dep in snap.deployments.get(d.service, [])
                if (g := k8s_status.generation_of(dep)) is not None
            ),
            default=None,
        )
        if current is not None and d.generation < current:
            raise ConflictError(
                f"service {d.service} already runs generation {current}; "
                f"cannot deploy generation {d.generation}",
                hint="Deploy with a newer generation.",
            )
        self._blobs.put_bytes(fetch_manifest(d, snapshot))  # pods fetch it by digest
        self._ensure_fetch_token()
        route = self._route(d.service) if self._route is not None else None
        tokens = self._token_keys() if self._token_keys is not None else None
        if tokens is not None:
            self.update_token_keys(*tokens)
        anchor = self._apply(render_anchor(d.service, self._options, route))
        uid = anchor["metadata"]["uid"]
        if collects(d.env) and self._fetch_token is not None:  # the upload sidecar's service-scoped token
            token = upload_token(self._fetch_token, d.service)
            self._apply(render_upload_token_secret(d.service, token, self._options, uid))
        image = self._environment_image(d) if self._environment_image is not None else None
        objects = render_service(
            d,
            self._options,
            environment=environment,
            snapshot=snapshot,
            keys=self._keys(d.service) if self._keys is not None else None,
            owner_uid=uid,
            image=image,
            route=route,
        )
        deployment_name = names.deployment_name(d.service, d.generation)
        created = not self._deployment_exists(deployment_name)
        for obj in objects[1:]:
            self._apply(obj)
        if created:  # create-then-scale: the autoscaler's field manager alone owns spec.replicas
            self._patch_scale(deployment_name, d.replicas)
        return self._fresh_status(d.service)

    def scale(self, service: ServiceName, replicas: int) -> ServiceStatus:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ValidationError(f"replicas={replicas!r} is not valid", hint="Ask for 0 or more replicas.")
        name = self._current_deployment(service)
        self._patch_scale(name, replicas)
        return self._fresh_status(service)

    def stop_replica(self, replica: ReplicaId, grace_s: float = 10.0) -> ServiceStatus:
        snap = self._refresh()
        for service, pods in snap.pods.items():
            pod = next((p for p in pods if p["metadata"]["name"] == replica), None)
            if pod is None:
                continue
            if not pod["metadata"].get("deletionTimestamp"):
                self._stop_pod(service, pod, grace_s)
            return self._fresh_status(ServiceName(service))
        raise NotFoundError(f"replica {replica!r} not found", hint="List replicas with the service's status.")

    def status(self, service: ServiceName) -> ServiceStatus:
        snap = self._cached()
        if service not in snap.anchors:
            snap = self._refresh()
            if service not in snap.anchors:
                raise _not_found(service)
        return self._derive(service, snap)

    def services(self) -> list[ServiceStatus]:
        snap = self._cached()
        return [self._derive(s, snap) for s in sorted(snap.anchors)]

    def logs(self, service: ServiceName, *, replica: ReplicaId | None = None, tail: int = 5000) -> str:
        snap = self._refresh()
        if service not in snap.anchors:
            raise _not_found(service)
        pods = sorted(snap.pods.get(service, []), key=lambda p: p["metadata"]["name"])
        if replica is not None:
            pod = next((p for p in pods if p["metadata"]["name"] == replica), None)
            if pod is None:
                raise NotFoundError(
                    f"replica {replica!r} of service {service!r} not found",
                    hint="List replicas with the service's status.",
                )
            return self._pod_log(pod, tail)
        parts = [f"==> {p['metadata']['name']} <==\n{self._pod_log(p, tail)}" for p in pods]
        if self._derive(service, snap).state != "Healthy":
            parts.append("==> Kubernetes events <==\n" + self._events(service, snap))
        return "\n".join(parts)

    def delete(self, service: ServiceName) -> None:
        anchor = names.anchor_name(service)
        try:
            self._core.delete_namespaced_config_map(anchor, self._ns, propagation_policy="Foreground")
        except self._client.ApiException as exc:
            if exc.status == 404:
                raise _not_found(service) from exc
            raise self._api_error(exc, f"delete service {service}") from exc
        end = time.monotonic() + self._delete_timeout_s
        while time.monotonic() < end:
            if self._gone(service, anchor):
                self._refresh()
                return
            time.sleep(0.2)
        raise ModelhostError(
            f"service {service} is still being deleted after {self._delete_timeout_s:g} s "
            "(Kubernetes' garbage collector has not removed all of its objects)",
            hint=f"Look at 'kubectl -n {self._ns} get all -l {names.LABEL_SERVICE}={service}'.",
        )

    def update_route(self, service: ServiceName, keys: ServiceKeys | None,
                     route: Mapping[str, Any] | None) -> bool:
        """Re-apply what the in-cluster router reads of ``service`` now: the anchor's ``data.route``
        and (when ``keys``) the keys Secret. False when the service has no anchor (not deployed, or
        deleted meanwhile): a merge patch, never an apply, so a deleted service is not re-created."""
        anchor = names.anchor_name(service)
        value = route_json(service, route) if route is not None else None
        try:
            resp = self._core.patch_namespaced_config_map(
                anchor, self._ns, {"data": {"route": value}}, field_manager=names.FIELD_MANAGER,
                _content_type=_MERGE, _preload_content=False)
        except self._client.ApiException as exc:
            if exc.status == 404:
                return False
            raise self._api_error(exc, f"update the route of service {service}") from exc
        live = json.loads(resp.data)
        if keys is not None and not live["metadata"].get("deletionTimestamp"):
            self._apply(render_keys_secret(service, keys, self._options, live["metadata"]["uid"]))
        return True

    def update_token_keys(self, issuer: str, public_keys: Mapping[str, str]) -> None:
        """Apply the namespace's token keys ConfigMap (public keys only) the router verifies with."""
        self._apply(render_token_keys(issuer, public_keys, self._options))

    def adopt(self) -> list[ServiceStatus]:
        self._refresh()
        return self.services()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def __enter__(self) -> KubernetesRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- deploy helpers ------------------------------------------------------------------------

    def _check(self, d: ServiceDeployment) -> tuple[str, str]:
        if d.environment_hash is None or d.snapshot_sha256 is None:
            missing = [n for n in ("environment_hash", "snapshot_sha256") if getattr(d, n) is None]
            raise ValidationError(
                f"service {d.service} cannot run on Kubernetes without {' and '.join(missing)}",
                hint="Deploy through the control plane, which builds the environment image and stores "
                "the snapshot as a blob.",
            )
        if d.snapshot is not None and Path(d.snapshot).is_file():
            stored = self._blobs.put_file(Path(d.snapshot))
            if stored != d.snapshot_sha256:
                raise ValidationError(
                    f"snapshot {d.snapshot} of service {d.service} has sha256 {stored}, "
                    f"not {d.snapshot_sha256}",
                    hint="Upload the source directory again.",
                )
        return d.environment_hash, d.snapshot_sha256

    def _ensure_fetch_token(self) -> None:
        if self._fetch_token is None or self._fetch_token_applied:
            return
        self._apply(render_fetch_token_secret(self._fetch_token, self._options))
        self._fetch_token_applied = True

    def _apply(self, obj: K8sObject) -> K8sObject:
        """Server-side apply one rendered object; returns the live object (JSON dict)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        call = {
            "ConfigMap": self._core.patch_namespaced_config_map,
            "Secret": self._core.patch_namespaced_secret,
            "Service": self._core.patch_namespaced_service,
            "Deployment": self._apps.patch_namespaced_deployment,
        }[kind]
        try:
            resp = call(
                name,
                self._ns,
                obj,
                field_manager=names.FIELD_MANAGER,
                force=True,
                _content_type=_APPLY,
                _preload_content=False,
            )
        except self._client.ApiException as exc:
            raise self._api_error(exc, f"apply {kind} {name}") from exc
        return json.loads(resp.data)  # type: ignore[no-any-return]

    def _patch_scale(self, deployment: str, replicas: int) -> None:
        try:
            self._apps.patch_namespaced_deployment_scale(
                deployment,
                self._ns,
                render_scale(deployment, self._ns, replicas),
                field_manager=names.SCALE_FIELD_MANAGER,
                _content_type=_MERGE,
            )
        except self._client.ApiException as exc:
            raise self._api_error(exc, f"scale Deployment {deployment}") from exc

    def _gone(self, service: str, anchor: str) -> bool:
        """The anchor, and every ReplicaSet and pod of the service: the garbage collector may remove
        a Deployment's ReplicaSets and pods in the background after the Deployment itself."""
        if self._exists(lambda: self._core.read_namespaced_config_map(anchor, self._ns)):
            return False
        selector = self._service_selector(service)
        return not self._list(self._apps.list_namespaced_replica_set, selector) and not self._list(
            self._core.list_namespaced_pod, selector
        )

    @staticmethod
    def _service_selector(service: str) -> str:
        return f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_SERVICE}={service}"

    def _deployment_exists(self, name: str) -> bool:
        return self._exists(lambda: self._apps.read_namespaced_deployment(name, self._ns))

    def _exists(self, read: Callable[[], object]) -> bool:
        try:
            read()
        except self._client.ApiException as exc:
            if exc.status == 404:
                return False
            raise self._api_error(exc, "read an object") from exc
        return True

    def _current_deployment(self, service: str) -> str:
        snap = self._refresh()
        if service not in snap.anchors:
            raise _not_found(service)
        generations = [
            g for d in snap.deployments.get(service, []) if (g := k8s_status.generation_of(d)) is not None
        ]
        if not generations:
            raise NotFoundError(
                f"service {service!r} has no Deployment in namespace {self._ns}",
                hint="Deploy the service again.",
            )
        return names.deployment_name(service, max(generations))

    def _stop_pod(self, service: str, pod: K8sObject, grace_s: float) -> None:
        """One replica fewer, and exactly that one. Kubernetes >= 1.22: mark the pod cheapest to
        delete, then scale down by one (the ReplicaSet removes it). Older servers ignore the mark
        and would remove another pod, so there the pod is deleted first and the scale-down follows
        (the ReplicaSet then drops the replacement it may have begun, pending pods going first)."""
        name = pod["metadata"]["name"]
        generation = k8s_status.generation_of(pod)
        current = self._current_deployment(service)
        owned = generation is not None and current == names.deployment_name(service, generation)
        if self._honours_deletion_cost():
            self._call(
                lambda: self._core.patch_namespaced_pod(
                    name, self._ns, {"metadata": {"annotations": {_DELETION_COST: "-1000"}}}
                ),
                f"annotate pod {name}",
            )
            if owned:
                self._scale_down_one(current)
        self._call(
            lambda: self._core.delete_namespaced_pod(
                name, self._ns, grace_period_seconds=max(0, round(grace_s))
            ),
            f"delete pod {name}",
        )
        if owned and not self._honours_deletion_cost():
            self._scale_down_one(current)

    def _scale_down_one(self, deployment: str) -> None:
        scale = self._call(
            lambda: self._apps.read_namespaced_deployment_scale(deployment, self._ns), f"read {deployment}"
        )
        if scale is not None:
            self._patch_scale(deployment, max(0, int(scale.spec.replicas or 0) - 1))

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        """``call()``; None when the object is already gone (404)."""
        try:
            return call()
        except self._client.ApiException as exc:
            if exc.status == 404:
                return None
            raise self._api_error(exc, what) from exc

    def _honours_deletion_cost(self) -> bool:
        """``controller.kubernetes.io/pod-deletion-cost`` is honoured from Kubernetes 1.22 (beta)."""
        if self._server_minor is None:
            try:
                info = self._client.VersionApi(self._api_client).get_code()
                self._server_minor = (int(info.major), int(re.sub(r"\D.*", "", info.minor) or 0))
            except Exception:  # unknown: take the path that is right on every version
                self._server_minor = (1, 0)
        return self._server_minor >= (1, 22)

    def _api_error(self, exc: Any, what: str) -> ModelhostError:
        status = getattr(exc, "status", None)
        reason = getattr(exc, "reason", "")
        try:
            message = json.loads(exc.body).get("message", reason)
        except (TypeError, ValueError, AttributeError):
            message = reason
        text = f"Kubernetes refused to {what} in namespace {self._ns}: {status} {message}"
        if status in (400, 422):
            return ValidationError(text, hint="Check the service's settings against the cluster's limits.")
        if status in (401, 403):
            return ModelhostError(
                text, hint="Give the control plane's service account the rights docs/runtime.md lists."
            )
        if status == 409:
            return ConflictError(text, hint="Retry: another writer changed the object meanwhile.")
        return ModelhostError(text, hint="Check that the Kubernetes API server is reachable and healthy.")

    # -- observing -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                snap = self._refresh()
                self._retire(snap)
            except Exception:  # the poller must outlive an API server hiccup
                log.exception("Kubernetes runtime poll failed")

    def _list(self, call: Callable[..., Any], selector: str) -> list[K8sObject]:
        try:
            resp = call(self._ns, label_selector=selector, _preload_content=False)
        except self._client.ApiException as exc:
            raise self._api_error(exc, "list objects") from exc
        except Exception as exc:  # urllib3 connection errors
            raise ModelhostError(
                f"cannot reach the Kubernetes API server: {type(exc).__name__}: {exc}",
                hint="Check the cluster's kubeconfig and that its API server runs.",
            ) from exc
        items: list[K8sObject] = json.loads(resp.data).get("items", [])
        return items

    def _refresh(self) -> _Snapshot:
        managed = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
        anchors = self._list(
            self._core.list_namespaced_config_map, f"{managed},{names.LABEL_COMPONENT}=anchor"
        )
        deployments = self._list(
            self._apps.list_namespaced_deployment, f"{managed},{names.LABEL_NAME}={names.REPLICA_APP}"
        )
        pods = self._list(self._core.list_namespaced_pod, f"{names.LABEL_NAME}={names.REPLICA_APP}")
        snap = _Snapshot(at=time.monotonic())
        snap.anchors = {s for a in anchors if (s := _service_of(a)) is not None}
        for d in deployments:
            if (s := _service_of(d)) is not None:
                snap.deployments.setdefault(s, []).append(d)
        for p in pods:
            if (s := _service_of(p)) is not None:
                snap.pods.setdefault(s, []).append(p)
        with self._lock:
            self._ever_ready |= {p["metadata"]["name"] for p in pods if k8s_status.is_ready(p)}
            live = {p["metadata"]["name"] for p in pods}
            self._ever_ready &= live
            self._crash_logs = {k: v for k, v in self._crash_logs.items() if k[0] in live}
            self._snapshot = snap
        return snap

    def _cached(self) -> _Snapshot:
        with self._lock:
            snap = self._snapshot
        if snap is None or time.monotonic() - snap.at > self._cache_s:
            snap = self._refresh()
        return snap

    def _fresh_status(self, service: str) -> ServiceStatus:
        return self._derive(service, self._refresh())

    def _derive(self, service: str, snap: _Snapshot) -> ServiceStatus:
        pods = snap.pods.get(service, [])
        with self._lock:
            ever_ready = set(self._ever_ready)
        logs = self._crash_tails(pods, ever_ready)
        return k8s_status.service_status(
            service,
            snap.deployments.get(service, []),
            pods,
            now=self._clock(),
            ever_ready=ever_ready,
            logs=logs,
            policy=self._policy,
        )

    def _crash_tails(self, pods: Sequence[K8sObject], ever_ready: set[str]) -> dict[str, list[str]]:
        """The last lines of each crashed container a failure message quotes (fetched once per crash).

        Both instances are read: while the kubelet backs off, the exited run is the *current* one
        (``kubectl logs`` shows it), but the pod status is older than the log read, so a new run may
        have started meanwhile and the exited one be the *previous*."""
        tails: dict[str, list[str]] = {}
        restarts = {p["metadata"]["name"]: k8s_status.restart_count(p) for p in pods}
        for pod, container in k8s_status.crash_logs_wanted(pods, ever_ready):
            key = (pod, container, restarts.get(pod, 0))
            with self._lock:
                cached = self._crash_logs.get(key)
            if cached is None:
                both = self._read_log(pod, container, _CRASH_TAIL_LINES, previous=True)
                both += "\n" + self._read_log(pod, container, _CRASH_TAIL_LINES)
                cached = [line for line in both.splitlines() if line][-_CRASH_TAIL_LINES:]
                with self._lock:
                    if cached:
                        self._crash_logs[key] = cached
                    else:  # a new run that wrote nothing yet: quote the latest crash we did read
                        # (asked again on the next status)
                        earlier = [k for k in self._crash_logs if k[:2] == key[:2]]
                        cached = self._crash_logs[max(earlier)] if earlier else []
            if cached:  # none yet: the status waits a little for them (StatusPolicy.crash_log_wait_s)
                tails[pod] = cached
        return tails

    def log_streams(self, service: ServiceName) -> list[tuple[str, str, Callable[[], Iterator[bytes]]]]:
        """``(pod, instance key, opener)`` for each running scoring container of ``service``: the
        opener follows its ``pods/log``; the key (pod uid, restart count) changes with a restart.
        The control plane mirrors these for telemetry (control/pod_logs.py)."""
        out: list[tuple[str, str, Callable[[], Iterator[bytes]]]] = []
        for pod in self._cached().pods.get(service, []):
            meta = pod["metadata"]
            status = next((c for c in pod.get("status", {}).get("containerStatuses") or ()
                           if c.get("name") == k8s_status.SCORING_CONTAINER), None)
            if status is None or "running" not in (status.get("state") or {}):
                continue
            key = f"{meta.get('uid')}-{status.get('restartCount', 0)}"
            out.append((meta["name"], key, functools.partial(self._follow_log, meta["name"])))
        return out

    def _follow_log(self, pod: str) -> Iterator[bytes]:
        resp = self._core.read_namespaced_pod_log(
            pod, self._ns, container=k8s_status.SCORING_CONTAINER, follow=True, _preload_content=False
        )
        try:
            yield from resp.stream(8192)
        finally:
            resp.release_conn()

    def _read_log(self, pod: str, container: str, tail: int, *, previous: bool = False) -> str:
        """``pods/log`` of the container's current (or previous) instance; "" when that instance
        does not exist (400: not started yet, or no previous one)."""
        try:
            text = self._core.read_namespaced_pod_log(
                pod, self._ns, container=container, tail_lines=tail, previous=previous
            )
        except self._client.ApiException as exc:
            return "" if exc.status == 400 else f"(no log: {exc.status} {exc.reason})"
        return str(text or "")

    def _pod_log(self, pod: K8sObject, tail: int) -> str:
        """The fetch init container's lines, then the scoring container's (its previous instance
        first when there is one), cut to the last ``tail`` lines."""
        name = pod["metadata"]["name"]
        statuses = {
            c["name"]: c
            for key in ("initContainerStatuses", "containerStatuses")
            for c in pod.get("status", {}).get(key) or ()
        }
        lines: list[str] = []
        for container in (k8s_status.INIT_CONTAINER, k8s_status.SCORING_CONTAINER):
            status = statuses.get(container)
            if status is None:
                continue
            # the status and the logs are read at different moments: ask for both instances and
            # take what exists (a container between two runs has only a previous one)
            lines += self._read_log(name, container, tail, previous=True).splitlines()
            lines += self._read_log(name, container, tail).splitlines()
        return "\n".join(lines[-tail:] if tail > 0 else [])

    def _events(self, service: str, snap: _Snapshot) -> str:
        """The Kubernetes events of the service's Deployments, ReplicaSets and pods, oldest first."""
        selector = f"{names.LABEL_NAME}={names.REPLICA_APP},{names.LABEL_SERVICE}={service}"
        replica_sets = self._list(self._apps.list_namespaced_replica_set, selector)
        involved = {
            o["metadata"]["name"]
            for o in [*snap.deployments.get(service, []), *replica_sets, *snap.pods.get(service, [])]
        }
        try:
            resp = self._core.list_namespaced_event(self._ns, _preload_content=False)
        except self._client.ApiException as exc:
            return f"(no events: {exc.status} {exc.reason})"
        events = [
            e for e in json.loads(resp.data).get("items", []) if e["involvedObject"].get("name") in involved
        ]
        events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return "\n".join(_event_line(e) for e in events)

    def _retire(self, snap: _Snapshot) -> None:
        """Delete older generations' Deployments once the newest has its wanted replicas ready."""
        for service, deployments in snap.deployments.items():
            for name in k8s_status.retired_deployments(deployments, snap.pods.get(service, [])):
                try:
                    self._apps.delete_namespaced_deployment(name, self._ns, propagation_policy="Background")
                    log.info("retired Deployment %s of service %s", name, service)
                except self._client.ApiException as exc:
                    if exc.status != 404:
                        log.error("cannot retire Deployment %s: %s %s", name, exc.status, exc.reason)


def _event_line(e: Mapping[str, Any]) -> str:
    obj = e["involvedObject"]
    when = e.get("lastTimestamp") or e.get("eventTime") or "-"
    what = f"{e.get('type', '')} {e.get('reason', '')} {obj.get('kind')}/{obj.get('name')}"
    return f"{when} {what}: {e.get('message', '')}"
