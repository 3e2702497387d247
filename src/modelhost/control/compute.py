"""Compute targets of a workspace: attach a Kubernetes cluster, list, show, detach.

A target is a JSON file ``<home>/compute/<name>.json`` (0600) and its kubeconfig, a secret, a copy at
``<home>/secrets/compute/<name>.kubeconfig`` (0600, folder 0700) that no API answer ever returns.
``local`` (this machine) is built in. Attaching checks, before anything is written, that the
cluster answers (``/version``) and that the kubeconfig's user may do everything modelhost does
(one ``SelfSubjectAccessReview`` per :func:`~.compute_access.required_checks` entry); every refused
permission is named, with the Role that grants it.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelhost.control.compute_access import (
    AccessCheck,
    missing_message,
    namespace_check,
    required_checks,
)
from modelhost.errors import ConflictError, NotFoundError, ValidationError
from modelhost.spec.compute import (
    DEFAULT_REGISTRY,
    LOCAL_TARGET,
    AttachRequest,
    KubeconfigView,
    parse_attach_request,
    read_kubeconfig,
    validate_compute_name,
)

__all__ = [
    "ComputeService",
    "ComputeTargetRecord",
    "ProbeResult",
    "api_client",
    "probe_cluster",
    "read_or_create_fetch_token",
]

_TIMEOUT_S = 5.0
_IN_CLUSTER_BUILDERS = ("kaniko", "buildkit")  # builders that run as a Job: the attach checks Job rights


@dataclass(frozen=True)
class ComputeTargetRecord:
    """An attached cluster as the workspace keeps it (no secret in it)."""

    name: str
    namespace: str
    context: str
    server: str
    cluster_purpose: str
    kubernetes_version: str
    created_time: str
    registry: str = DEFAULT_REGISTRY
    artifact_url: str | None = None  # None: the control plane's own URL
    type: str = "Kubernetes"
    # environment images (docs/kubernetes.md): the credentials live in <name>.registries.json
    shared_registry: str | None = None
    registry_insecure: bool = False
    builder: str | None = None
    in_cluster: bool = False  # the control plane's own namespace (control/in_cluster.py); never a file

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "computeType": self.type,
            "provisioningState": "Succeeded",
            "isAttached": True,
            "namespace": self.namespace,
            "context": self.context,
            "server": self.server,
            "clusterPurpose": self.cluster_purpose,
            "kubernetesVersion": self.kubernetes_version,
            "registry": self.registry,
            "artifactUrl": self.artifact_url,
            "sharedRegistry": self.shared_registry,
            "registryInsecure": self.registry_insecure,
            "builder": self.builder,
            "createdTime": self.created_time,
            "inCluster": self.in_cluster,
        }


LOCAL_VIEW: dict[str, Any] = {
    "name": LOCAL_TARGET,
    "type": "Local",
    "computeType": "Local",
    "provisioningState": "Succeeded",
    "isAttached": False,
    "description": "this machine: replicas are supervised local processes (built in, not detachable)",
}


@dataclass(frozen=True)
class ProbeResult:
    kubernetes_version: str
    namespace_created: bool


def api_client(view: KubeconfigView) -> Any:
    """A ``kubernetes.client.ApiClient`` for the kubeconfig's context (one retry, no global config)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    try:
        config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
            view.config, context=view.context, client_configuration=cfg, persist_config=False
        )
    except (ConfigException, OSError, ValueError) as exc:
        raise ValidationError(
            f"The kubeconfig's context {view.context!r} cannot be used: {exc}",
            hint="Check the kubeconfig with 'kubectl --kubeconfig FILE --context C version'.",
        ) from exc
    cfg.retries = 1  # an unreachable server should fail in seconds, not after urllib3's 3 retries
    return client.ApiClient(cfg)


def _unreachable(view: KubeconfigView, exc: Exception) -> ValidationError:
    return ValidationError(
        f"The cluster at {view.server} (kubeconfig context {view.context!r}) cannot be reached: "
        f"{type(exc).__name__}",
        hint="Check that the API server runs and that the kubeconfig's server URL and CA are right.",
    )


def _refused_credentials(view: KubeconfigView, status: int) -> ValidationError:
    return ValidationError(
        f"The cluster at {view.server} refused the credentials of kubeconfig context {view.context!r} "
        f"(HTTP {status})",
        hint="Refresh the kubeconfig's token or certificate (e.g. az aks get-credentials) and attach again.",
    )


def _allowed(authz: Any, check: AccessCheck) -> bool:
    from kubernetes import client

    attributes = client.V1ResourceAttributes(
        namespace=check.namespace,
        verb=check.verb,
        group=check.group,
        resource=check.resource,
        subresource=check.subresource or None,
    )
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
    )
    answer = authz.create_self_subject_access_review(review, _request_timeout=_TIMEOUT_S)
    return bool(answer.status.allowed)


def _namespace_exists(core: Any, namespace: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        core.read_namespace(namespace, _request_timeout=_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return False
        if exc.status == 403:
            return True  # may not read namespaces; the checks below are namespaced anyway
        raise
    return True


def probe_cluster(view: KubeconfigView, namespace: str, in_cluster_build: bool = False) -> ProbeResult:
    """Reachability, then every permission (build Jobs' too with ``in_cluster_build``); creates
    ``namespace`` when missing and allowed.
    Raises ``ValidationError`` naming the server and context, or every refused permission."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = api_client(view)
    try:
        try:
            version = client.VersionApi(api).get_code(_request_timeout=_TIMEOUT_S)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise _refused_credentials(view, exc.status) from exc
            raise _unreachable(view, exc) from exc
        except (HTTPError, OSError) as exc:
            raise _unreachable(view, exc) from exc
        try:
            authz = client.AuthorizationV1Api(api)
            exists = _namespace_exists(client.CoreV1Api(api), namespace)
            checks = list(required_checks(namespace, in_cluster_build=in_cluster_build))
            checks += [] if exists else [namespace_check()]
            missing = [c for c in checks if not _allowed(authz, c)]
            if missing:
                message, details, hint = missing_message(missing, namespace)
                raise ValidationError(message, details=details, hint=hint)
            if not exists:
                client.CoreV1Api(api).create_namespace(
                    client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)),
                    _request_timeout=_TIMEOUT_S,
                )
        except ApiException as exc:
            if exc.status == 401:
                raise _refused_credentials(view, exc.status) from exc
            raise ValidationError(
                f"The cluster at {view.server} answered HTTP {exc.status} to the permission check: "
                f"{exc.reason}",
                hint="Check that the API server serves authorization.k8s.io/v1.",
            ) from exc
        except (HTTPError, OSError) as exc:
            raise _unreachable(view, exc) from exc
        return ProbeResult(str(version.git_version), not exists)
    finally:
        api.close()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte (atomic rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_or_create_fetch_token(home: Path) -> str:
    """The workspace's read-only blob token (``<home>/secrets/fetch-token``, 0600): what pods of an
    attached cluster use to fetch snapshots and models; it opens ``GET /api/v1/blobs/*`` only."""
    path = home / "secrets" / "fetch-token"
    if path.is_file():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    _write_private(path, token.encode())
    return token


class ComputeService:
    """The compute targets of one workspace (see the module docstring)."""

    def __init__(
        self, home: Path, probe: Callable[[KubeconfigView, str, bool], ProbeResult] = probe_cluster
    ) -> None:
        self._dir = home / "compute"
        self._secrets = home / "secrets" / "compute"
        self._probe = probe
        self._lock = threading.Lock()
        self._attaching: set[str] = set()
        self._targets: dict[str, ComputeTargetRecord] = self._load()
        self.services_using: Callable[[str], list[str]] = lambda _name: []
        self.on_detach: Callable[[str], None] = lambda _name: None

    def _load(self) -> dict[str, ComputeTargetRecord]:
        found = {}
        for path in sorted(self._dir.glob("*.json")) if self._dir.is_dir() else []:
            raw = json.loads(path.read_text())
            found[raw["name"]] = ComputeTargetRecord(**raw)
        return found

    def kubeconfig_path(self, name: str) -> Path:
        return self._secrets / f"{name}.kubeconfig"

    def registry_credentials(self, name: str) -> dict[str, tuple[str, str]]:
        """``{"registry"|"shared_registry": (username, password)}`` given at attach (a secret)."""
        path = self._secrets / f"{name}.registries.json"
        if not path.is_file():
            return {}
        return {k: (str(v[0]), str(v[1])) for k, v in json.loads(path.read_text()).items()}

    def get(self, name: str) -> ComputeTargetRecord:
        """An attached cluster; ``NotFoundError`` for an unknown name (and for ``local``)."""
        with self._lock:
            record = self._targets.get(name)
        if record is None:
            raise NotFoundError(
                f"ComputeTargetNotFound: no compute target named {name!r} in the workspace",
                hint="List them with 'modelhost compute list'; attach one with 'modelhost compute attach'.",
            )
        return record

    def api_client(self, name: str) -> Any:
        """A ``kubernetes.client.ApiClient`` from the target's stored kubeconfig."""
        record = self.get(name)
        if record.in_cluster:
            from modelhost.control.in_cluster import in_cluster_api_client

            return in_cluster_api_client()
        view = read_kubeconfig(self.kubeconfig_path(name).read_text(), record.context)
        return api_client(view)

    def register_in_cluster(self, record: ComputeTargetRecord) -> None:
        """Add the control plane's own namespace as a target (in memory only, see control/in_cluster.py)."""
        with self._lock:
            self._targets[record.name] = record

    def exists(self, name: str) -> bool:
        with self._lock:
            return name == LOCAL_TARGET or name in self._targets

    def view(self, name: str) -> dict[str, Any]:
        validate_compute_name(name)
        if name == LOCAL_TARGET:
            return dict(LOCAL_VIEW)
        return self.get(name).to_dict()

    def list_views(self) -> list[dict[str, Any]]:
        with self._lock:
            records = sorted(self._targets.values(), key=lambda r: r.name)
        return [dict(LOCAL_VIEW), *(r.to_dict() for r in records)]

    def attach(self, name: str, body: object) -> dict[str, Any]:
        """Check the cluster and record the target; nothing is written when a check fails."""
        request = parse_attach_request(name, body)
        view = read_kubeconfig(request.kubeconfig, request.context)
        with self._lock:
            if name in self._targets or name in self._attaching:
                raise ConflictError(
                    f"A compute target named {name} is already attached",
                    hint=f"Detach it first ('modelhost compute detach {name}') or choose another name.",
                )
            self._attaching.add(name)
        try:
            result = self._probe(view, request.namespace, request.builder in _IN_CLUSTER_BUILDERS)
            record = self._record(request, view, result)
            _write_private(self.kubeconfig_path(name), request.kubeconfig.encode())
            credentials = {
                k: list(v)
                for k, v in (
                    ("registry", request.registry_credentials),
                    ("shared_registry", request.shared_registry_credentials),
                )
                if v is not None
            }
            if credentials:
                _write_private(self._secrets / f"{name}.registries.json", json.dumps(credentials).encode())
            _write_private(self._dir / f"{name}.json", json.dumps(asdict(record), indent=2).encode())
            with self._lock:
                self._targets[name] = record
        finally:
            with self._lock:
                self._attaching.discard(name)
        answer = record.to_dict()
        answer["namespaceCreated"] = result.namespace_created
        return answer

    @staticmethod
    def _record(request: AttachRequest, view: KubeconfigView, result: ProbeResult) -> ComputeTargetRecord:
        return ComputeTargetRecord(
            name=request.name,
            namespace=request.namespace,
            context=view.context,
            server=view.server,
            cluster_purpose=request.cluster_purpose,
            kubernetes_version=result.kubernetes_version,
            created_time=datetime.now(UTC).isoformat(),
            registry=request.registry,
            artifact_url=request.artifact_url,
            shared_registry=request.shared_registry,
            registry_insecure=request.registry_insecure,
            builder=request.builder,
        )

    def detach(self, name: str) -> dict[str, Any]:
        """Forget an attached cluster (the cluster itself is untouched). 409 while services use it."""
        validate_compute_name(name)
        if name == LOCAL_TARGET:
            raise ValidationError(
                "'local' is this machine: it is built in and cannot be detached",
                hint="Detach only attached clusters ('modelhost compute list').",
            )
        if self.get(name).in_cluster:
            raise ValidationError(
                f"Compute target {name} is the namespace this control plane runs in: it cannot be detached",
                hint="Uninstall the control plane from the cluster instead (docs/kubernetes.md).",
            )
        using = self.services_using(name)
        if using:
            raise ConflictError(
                f"Compute target {name} still runs service(s) {', '.join(sorted(using))}",
                hint="Delete those services first ('modelhost service delete <name>').",
            )
        with self._lock:
            self._targets.pop(name, None)
        self.on_detach(name)
        for path in (
            self._dir / f"{name}.json",
            self.kubeconfig_path(name),
            self._secrets / f"{name}.registries.json",
        ):
            path.unlink(missing_ok=True)
        return {"name": name, "detached": True}

