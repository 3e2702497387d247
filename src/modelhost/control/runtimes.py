"""One runtime per compute target, behind the one :class:`~modelhost.runtime.base.Runtime` Protocol.

:class:`RuntimeSet` is itself a ``Runtime``: the deployer, the services, the routing publisher and
the autoscaler keep calling one object, and each call goes to the runtime of the service's target
(``target_of(service)``: ``local`` or an attached cluster's name). A cluster's runtime is created on
first use from its stored kubeconfig (``factory``, see :func:`kubernetes_factory`) and closed when
the cluster is detached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelhost.control.compute import ComputeService
from modelhost.control.pod_logs import LogStream
from modelhost.errors import ModelhostError, NotFoundError
from modelhost.runtime.base import Runtime, ServiceDeployment, ServiceStatus
from modelhost.runtime.image_chain import EnvironmentImages
from modelhost.runtime.kubernetes import BlobSink
from modelhost.spec.compute import LOCAL_TARGET
from modelhost.types import ReplicaId, ServiceName

__all__ = ["RuntimeSet"]

_log = logging.getLogger("modelhost.control")


def _unreachable(service: str, target: str, exc: ModelhostError) -> ServiceStatus:
    return ServiceStatus(
        service=ServiceName(service),
        generation=0,
        state="Unhealthy",
        desired_replicas=0,
        replicas=(),
        error=f"compute target {target} cannot be reached: {exc.message}",
    )


class RuntimeSet:
    """Dispatches every Runtime call to the runtime of the service's compute target."""

    def __init__(
        self,
        local: Runtime,
        factory: Callable[[str], Runtime] | None = None,
        target_of: Callable[[str], str] = lambda _service: LOCAL_TARGET,
    ) -> None:
        self.local = local
        self.factory = factory
        self.target_of = target_of
        self._lock = threading.Lock()
        self._remote: dict[str, Runtime] = {}
        self._last: dict[str, ServiceStatus] = {}
        # a cluster's image lookup chain (control/cluster_images.py); None: run tags as they are
        self.images: Callable[[str], EnvironmentImages | None] = lambda _target: None

    def prepare_image(
        self, service: str, env_hash: str, requirements: Sequence[str], python: str | None,
        log: Callable[[str], None],
    ) -> None:
        """Before a Kubernetes deploy: the target's image lookup chain, building when it must
        (docs/kubernetes.md, "Environment images"); nothing for local or plain-tag targets."""
        target = self.target_of(service)
        images = None if target == LOCAL_TARGET else self.images(target)
        if images is not None:
            images.ensure(env_hash, requirements, log, python=python)

    def for_target(self, target: str) -> Runtime:
        if target == LOCAL_TARGET:
            return self.local
        with self._lock:
            runtime = self._remote.get(target)
            if runtime is None:
                if self.factory is None:
                    raise NotFoundError(
                        f"ComputeTargetNotFound: no runtime for compute target {target!r}",
                        hint="Attach the cluster with 'modelhost compute attach'.",
                    )
                runtime = self._remote[target] = self.factory(target)
            return runtime

    def _of(self, service: str) -> Runtime:
        return self.for_target(self.target_of(service))

    def _all(self) -> list[Runtime]:
        with self._lock:
            return [self.local, *self._remote.values()]

    def deploy(self, deployment: ServiceDeployment) -> ServiceStatus:
        return self._of(deployment.service).deploy(deployment)

    def scale(self, service: ServiceName, replicas: int) -> ServiceStatus:
        return self._of(service).scale(service, replicas)

    def stop_replica(self, replica: ReplicaId, grace_s: float = 10.0) -> ServiceStatus:
        # a replica id does not name its target: ask each runtime that is open
        for runtime in self._all():
            try:
                return runtime.stop_replica(replica, grace_s)
            except NotFoundError:
                continue
        raise NotFoundError(
            f"No replica {replica} on any compute target", hint="List the service's replicas."
        )

    def status(self, service: ServiceName) -> ServiceStatus:
        """The target runtime's answer; when a cluster cannot be asked (API server down, its
        runtime not creatable), the last status seen, else an ``Unhealthy`` one with no replica:
        one unreachable cluster must not stop the routing table, the autoscaler or a restart."""
        target = self.target_of(service)
        try:
            status = self.for_target(target).status(service)
        except NotFoundError:
            raise
        except ModelhostError as exc:
            if target == LOCAL_TARGET:
                raise
            _log.warning("compute target %s: status of %s unavailable: %s", target, service, exc.message)
            with self._lock:
                last = self._last.get(service)
            return last if last is not None else _unreachable(service, target, exc)
        if target != LOCAL_TARGET:
            with self._lock:
                self._last[service] = status
        return status

    def services(self) -> list[ServiceStatus]:
        found = self.local.services()
        with self._lock:
            remote = list(self._remote.items())
        for target, runtime in remote:
            try:
                found += runtime.services()
            except ModelhostError as exc:  # one unreachable cluster hides only its own services
                _log.warning("compute target %s: services unavailable: %s", target, exc.message)
        return found

    def logs(self, service: ServiceName, *, replica: ReplicaId | None = None, tail: int = 5000) -> str:
        return self._of(service).logs(service, replica=replica, tail=tail)

    def log_streams(self, service: str) -> list[LogStream]:
        """Followable logs of a Kubernetes service's pods (control/pod_logs.py); [] for local ones,
        whose log files the telemetry tailer reads directly."""
        streams = getattr(self._of(service), "log_streams", None)
        return list(streams(service)) if streams is not None else []

    def delete(self, service: ServiceName) -> None:
        self._of(service).delete(service)
        with self._lock:
            self._last.pop(service, None)

    def adopt(self) -> list[ServiceStatus]:
        """The local runtime's replicas; clusters keep running by themselves (their runtime is
        opened on first use)."""
        return self.local.adopt()

    def close_target(self, target: str) -> None:
        with self._lock:
            runtime = self._remote.pop(target, None)
        if runtime is not None:
            runtime.close()

    def close(self) -> None:
        with self._lock:
            remote, self._remote = list(self._remote.values()), {}
        for runtime in remote:
            try:
                runtime.close()
            except Exception:  # one cluster's failure must not keep the others (or local) open
                _log.exception("closing a Kubernetes runtime failed")
        self.local.close()



def kubernetes_factory(
    compute: ComputeService,
    blobs: BlobSink,
    *,
    control_url: str,
    fetch_token: str,
    keys: Callable[[str], tuple[str, str] | None],
    route: Callable[[str], Mapping[str, Any] | None] | None = None,
    token_keys: Callable[[], tuple[str, Mapping[str, str]]] | None = None,
    images: Callable[[str], EnvironmentImages | None] | None = None,
) -> Callable[[str], Runtime]:
    """Builds the Kubernetes runtime of an attached cluster from its stored kubeconfig and options."""

    def make(target: str) -> Runtime:
        from modelhost.runtime.k8s_render import K8sOptions, ServiceKeys
        from modelhost.runtime.kubernetes import KubernetesRuntime

        def service_keys(service: ServiceName) -> ServiceKeys | None:
            pair = keys(service)
            return None if pair is None else ServiceKeys(*pair)

        record = compute.get(target)
        options = K8sOptions(
            namespace=record.namespace,
            registry=record.registry,
            artifact_url=record.artifact_url or control_url,
            registry_insecure=record.registry_insecure,
        )
        chain = images(target) if images is not None else None

        def image_of(d: ServiceDeployment) -> str:  # the digest the deploy's lookup found
            assert chain is not None and d.environment_hash is not None  # the runtime checked it
            return chain.reference(d.environment_hash)

        return KubernetesRuntime(
            compute.api_client(target), options, blobs=blobs, fetch_token=fetch_token, keys=service_keys,
            route=route, token_keys=token_keys, environment_image=image_of if chain is not None else None,
        )

    return make
