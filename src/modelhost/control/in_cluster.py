"""The control plane running inside a cluster (``modelhost compute install``): its own namespace as a
compute target, reached with the in-cluster configuration, and its admin token from a mounted Secret.

The Deployment that :mod:`modelhost.runtime.k8s_render_control` renders sets::

    MODELHOST_IN_CLUSTER_TARGET        the target's name (e.g. "cluster"); unset: not in a cluster
    MODELHOST_IN_CLUSTER_NAMESPACE     the pod's namespace (downward API; else the service account's)
    MODELHOST_IN_CLUSTER_REGISTRY      where environment images live
    MODELHOST_IN_CLUSTER_ARTIFACT_URL  the control plane's URL as service pods reach it
    MODELHOST_ADMIN_TOKEN_FILE         the admin token (a Secret mounted read-only)

The target is registered in memory at every start (never written under ``<home>/compute``): it is
where the control plane runs, so it cannot be detached, and a fresh ``emptyDir`` home gets it back.
Explicit, not guessed from ``KUBERNETES_SERVICE_HOST``: every pod has that variable, and a control
plane started in some other pod must not start deploying into that pod's namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelhost.control.compute import ComputeService, ComputeTargetRecord
from modelhost.control.discovery import load_or_create_token
from modelhost.errors import ValidationError
from modelhost.spec.compute import DEFAULT_REGISTRY, validate_compute_name

__all__ = ["InClusterConfig", "admin_token", "in_cluster_api_client", "register_in_cluster"]

_log = logging.getLogger("modelhost.control")
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class InClusterConfig:
    """Where the in-cluster control plane deploys: its namespace, as target ``target``."""

    target: str
    namespace: str
    registry: str = DEFAULT_REGISTRY
    artifact_url: str | None = None
    server: str = "https://kubernetes.default.svc"

    @classmethod
    def from_env(cls, env: Mapping[str, str], sa_dir: Path = SERVICE_ACCOUNT_DIR) -> InClusterConfig | None:
        """The configuration, or None when ``MODELHOST_IN_CLUSTER_TARGET`` is unset."""
        target = env.get("MODELHOST_IN_CLUSTER_TARGET", "").strip()
        if not target:
            return None
        validate_compute_name(target)
        namespace = env.get("MODELHOST_IN_CLUSTER_NAMESPACE", "").strip() or _sa_namespace(sa_dir)
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        return cls(
            target=target,
            namespace=namespace,
            registry=env.get("MODELHOST_IN_CLUSTER_REGISTRY", "").strip() or DEFAULT_REGISTRY,
            artifact_url=env.get("MODELHOST_IN_CLUSTER_ARTIFACT_URL", "").strip() or None,
            server=f"https://{host}:{port}" if host and port else cls.server,
        )


def _sa_namespace(sa_dir: Path) -> str:
    try:
        return (sa_dir / "namespace").read_text().strip()
    except OSError as exc:
        raise ValidationError(
            "MODELHOST_IN_CLUSTER_TARGET is set but the control plane's namespace is unknown: "
            f"neither MODELHOST_IN_CLUSTER_NAMESPACE nor {sa_dir / 'namespace'} is there",
            hint="Install with 'modelhost compute install', which sets both, or unset "
            "MODELHOST_IN_CLUSTER_TARGET outside a cluster.",
        ) from exc


def admin_token(env: Mapping[str, str], home: Path) -> str:
    """The admin token: the file ``MODELHOST_ADMIN_TOKEN_FILE`` names (a mounted Secret), else the
    workspace's own ``<home>/admin.token`` (created on first use)."""
    path = env.get("MODELHOST_ADMIN_TOKEN_FILE", "").strip()
    if not path:
        return load_or_create_token(home)
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValidationError(
            f"MODELHOST_ADMIN_TOKEN_FILE={path} cannot be read: {exc.strerror}",
            hint="Mount the admin token Secret there (modelhost compute install does).",
        ) from exc
    if not token:
        raise ValidationError(
            f"MODELHOST_ADMIN_TOKEN_FILE={path} is empty",
            hint="Put a token in the Secret (modelhost compute install generates one).",
        )
    return token


def in_cluster_api_client() -> Any:
    """A ``kubernetes.client.ApiClient`` from the pod's service account (the token file is re-read
    when it rotates, as the official client's in-cluster loader does)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise ValidationError(
            f"The in-cluster configuration cannot be loaded: {exc}",
            hint="Run the control plane in a pod with a service account token mounted "
            "(automountServiceAccountToken), or unset MODELHOST_IN_CLUSTER_TARGET.",
        ) from exc
    cfg.retries = 1
    return client.ApiClient(cfg)


def _server_version() -> str:
    """The API server's version, or "unknown" (a start must not wait on a slow API server)."""
    from kubernetes import client

    try:
        api = in_cluster_api_client()
        try:
            return str(client.VersionApi(api).get_code(_request_timeout=_TIMEOUT_S).git_version)
        finally:
            api.close()
    except Exception as exc:  # any failure: the target still registers
        _log.warning("in-cluster: the API server's version is unavailable: %s", type(exc).__name__)
        return "unknown"


def register_in_cluster(compute: ComputeService, config: InClusterConfig) -> ComputeTargetRecord:
    """Register the control plane's own namespace as compute target ``config.target``."""
    record = ComputeTargetRecord(
        name=config.target,
        namespace=config.namespace,
        context="in-cluster",
        server=config.server,
        cluster_purpose="DevTest",
        kubernetes_version=_server_version(),
        created_time=datetime.now(UTC).isoformat(),
        registry=config.registry,
        artifact_url=config.artifact_url,
        in_cluster=True,
    )
    compute.register_in_cluster(record)
    _log.info("in-cluster: namespace %s is compute target %s (artifacts at %s)",
              config.namespace, config.target, config.artifact_url)
    return record
