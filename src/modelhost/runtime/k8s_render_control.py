"""The control plane in an attached cluster: ServiceAccount, Role, RoleBinding, admin-token Secret,
PersistentVolumeClaim, Deployment, Service (pure).

``modelhost compute install <target>`` applies these. The pod runs ``python -m modelhost.control``
(what ``modelhost up`` spawns) with the in-cluster settings in its environment:

- its ServiceAccount may do in its namespace exactly what ``attach`` checks (the caller passes those
  rules: ``control.compute_access``, the same list as ``deploy/kubernetes/rbac.yaml``), so it
  deploys into its own namespace with no kubeconfig;
- ``MODELHOST_IN_CLUSTER_TARGET`` makes it register that namespace as a compute target (in-cluster
  configuration: the mounted service-account token), whose pods fetch snapshots and models from
  ``MODELHOST_IN_CLUSTER_ARTIFACT_URL`` (default: this Service's DNS name);
- the admin token comes from a Secret mounted as a file (``MODELHOST_ADMIN_TOKEN_FILE``), never an
  environment variable or an argument;
- ``MODELHOST_HOME`` (SQLite store, blobs, logs) lives on a PersistentVolumeClaim, or on an
  ``emptyDir`` for trials, which loses the registry whenever the pod is replaced;
- ``MODELHOST_DATABASE_URL`` optionally comes from a Secret (PostgreSQL; key ``url``).

One replica and the ``Recreate`` strategy: SQLite has a single writer and a ReadWriteOnce volume
mounts on one node, so the old pod must be gone before the new one starts.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Final, Literal

from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names

__all__ = [
    "ADMIN_SECRET",
    "ADMIN_TOKEN_FILE",
    "CONTROL_NAME",
    "CONTROL_PORT",
    "ControlOptions",
    "control_url",
    "render_control",
]

K8sObject = dict[str, Any]
CONTROL_NAME: Final = "modelhost-control"
CONTROL_PORT: Final = 8790
ROUTER_PORT: Final = 8791
ADMIN_SECRET: Final = "modelhost-control-admin"
_DATA: Final = "/var/lib/modelhost"
_ADMIN_DIR: Final = "/etc/modelhost/admin"
ADMIN_TOKEN_FILE: Final = f"{_ADMIN_DIR}/token"
_STORAGE = ("pvc", "emptyDir")
_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "K", "M", "G", "T")


@dataclass(frozen=True)
class ControlOptions:
    """How the control plane runs in one namespace. ``image`` has ``modelhost[server]`` installed.

    ``artifact_url`` is the control plane's URL as service pods reach it (default: the Service's DNS
    name); the kubelet expands ``$(VAR)`` in it, so ``http://$(MODELHOST_POD_IP):8790`` names the
    pod's own address where cluster DNS or Service IPs do not work. ``database_secret`` names a Secret
    whose key ``url`` is a PostgreSQL URL (None: SQLite on the volume)."""

    namespace: str
    image: str
    storage: Literal["pvc", "emptyDir"] = "pvc"
    size: str = "10Gi"
    storage_class: str | None = None
    database_secret: str | None = None
    registry: str = "localhost:5000"
    artifact_url: str | None = None
    target_name: str = "cluster"
    router_port: int = ROUTER_PORT
    cpu: str = "250m"
    memory: str = "512Mi"
    memory_limit: str = "2Gi"
    run_as_user: int = 1000


def control_url(namespace: str) -> str:
    """The control plane's in-cluster URL (its Service's DNS name)."""
    return f"http://{CONTROL_NAME}.{namespace}.svc:{CONTROL_PORT}"


def _labels() -> dict[str, str]:
    return {
        names.LABEL_NAME: CONTROL_NAME,
        names.LABEL_PART_OF: "modelhost",
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: "control-plane",
    }


def _meta(name: str, options: ControlOptions) -> K8sObject:
    return {"name": name, "namespace": options.namespace, "labels": _labels()}


def _invalid(what: str, hint: str) -> ValidationError:
    return ValidationError(f"Invalid control plane install option: {what}", hint=hint)


def _check(options: ControlOptions) -> None:
    names.validate_namespace(options.namespace)
    if not options.image or any(c.isspace() for c in options.image):
        raise _invalid(f"image {options.image!r}", "Name an image with modelhost[server] installed.")
    if options.storage not in _STORAGE:
        raise _invalid(f"storage {options.storage!r}", "Use pvc (kept across restarts) or emptyDir (trials).")
    if options.storage == "pvc" and not _is_quantity(options.size):
        raise _invalid(f"size {options.size!r}", "Give a Kubernetes quantity such as 10Gi or 500Mi.")
    named = (("database secret", options.database_secret), ("storage class", options.storage_class))
    for label, value in named:
        if value is not None:
            names.validate_dns_label(value, label)
    if options.artifact_url is not None and not options.artifact_url.startswith(("http://", "https://")):
        raise _invalid(f"artifact_url {options.artifact_url!r}", "Give an http:// or https:// URL.")
    if not 1 <= options.router_port <= 65535 or options.router_port == CONTROL_PORT:
        raise _invalid(
            f"router_port {options.router_port}", f"Use a port in 1..65535 other than {CONTROL_PORT}."
        )


def _is_quantity(text: str) -> bool:
    digits = text.rstrip("KMGTPEi")
    suffix = text[len(digits):]
    return digits.isdigit() and int(digits) > 0 and suffix in _SUFFIXES


def _rbac(options: ControlOptions, rules: list[K8sObject]) -> list[K8sObject]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(CONTROL_NAME, options),
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(CONTROL_NAME, options),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CONTROL_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": CONTROL_NAME, "namespace": options.namespace}],
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(CONTROL_NAME, options)}
    return [account, role, binding]


def _admin_secret(options: ControlOptions, token: str) -> K8sObject:
    if not token or any(c.isspace() for c in token):
        raise _invalid(
            "the admin token is empty or has spaces", "Generate a token with secrets.token_urlsafe()."
        )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(ADMIN_SECRET, options),
        "type": "Opaque",
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


def _claim(options: ControlOptions) -> K8sObject:
    spec: K8sObject = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": options.size}},
    }
    if options.storage_class is not None:
        spec["storageClassName"] = options.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(CONTROL_NAME, options),
        "spec": spec,
    }


def _field(name: str, path: str) -> K8sObject:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _env(options: ControlOptions) -> list[K8sObject]:
    # order matters: the kubelet expands $(VAR) only against variables defined before
    env: list[K8sObject] = [
        _field("MODELHOST_POD_IP", "status.podIP"),
        _field("MODELHOST_IN_CLUSTER_NAMESPACE", "metadata.namespace"),
        {"name": "HOME", "value": _DATA},
        {"name": "MODELHOST_HOME", "value": f"{_DATA}/home"},
        {"name": "MODELHOST_CACHE_DIR", "value": f"{_DATA}/cache"},
        {"name": "MODELHOST_HOST", "value": "0.0.0.0"},  # the pod's own network namespace
        {"name": "MODELHOST_CONTROL_PORT", "value": str(CONTROL_PORT)},
        {"name": "MODELHOST_ROUTER_PORT", "value": str(options.router_port)},
        {"name": "MODELHOST_ADMIN_TOKEN_FILE", "value": ADMIN_TOKEN_FILE},
        {"name": "MODELHOST_IN_CLUSTER_TARGET", "value": options.target_name},
        {"name": "MODELHOST_IN_CLUSTER_REGISTRY", "value": options.registry},
        {"name": "MODELHOST_IN_CLUSTER_ARTIFACT_URL",
         "value": options.artifact_url or control_url(options.namespace)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if options.database_secret is not None:
        ref = {"name": options.database_secret, "key": "url"}
        env.append({"name": "MODELHOST_DATABASE_URL", "valueFrom": {"secretKeyRef": ref}})
    return env


def _container(options: ControlOptions) -> K8sObject:
    probe = {"httpGet": {"path": "/healthz", "port": "api", "scheme": "HTTP"}, "periodSeconds": 5}
    return {
        "name": "control",
        "image": options.image,
        "command": ["python", "-m", "modelhost.control"],
        "ports": [
            {"name": "api", "containerPort": CONTROL_PORT, "protocol": "TCP"},
            {"name": "router", "containerPort": options.router_port, "protocol": "TCP"},
        ],
        "env": _env(options),
        "resources": {
            "requests": {"cpu": options.cpu, "memory": options.memory},
            "limits": {"memory": options.memory_limit},
        },
        # a start opens the store and runs its migrations: give it a minute before liveness counts
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 60},
        "readinessProbe": {**probe, "failureThreshold": 2},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "data", "mountPath": _DATA},
            {"name": "admin-token", "mountPath": _ADMIN_DIR, "readOnly": True},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }


def _deployment(options: ControlOptions, admin_token: str) -> K8sObject:
    selector = {names.LABEL_NAME: CONTROL_NAME}
    data: K8sObject = (
        {"name": "data", "persistentVolumeClaim": {"claimName": CONTROL_NAME}}
        if options.storage == "pvc"
        else {"name": "data", "emptyDir": {}}
    )
    admin = {"secretName": ADMIN_SECRET, "items": [{"key": "token", "path": "token"}], "defaultMode": 0o400}
    user = options.run_as_user
    pod: K8sObject = {
        "serviceAccountName": CONTROL_NAME,
        "automountServiceAccountToken": True,  # the in-cluster configuration is this token
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": user,
            "runAsGroup": user,
            "fsGroup": user,  # the volume must be writable by the control plane's user
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(options)],
        "volumes": [data, {"name": "admin-token", "secret": admin}],
    }
    spec: K8sObject = {
        "replicas": 1,  # SQLite has one writer; a second control plane would fight over services
        "selector": {"matchLabels": selector},
        "strategy": {"type": "Recreate"},
        "revisionHistoryLimit": 2,
        "template": {"metadata": {"labels": _labels(), "annotations": _token_annotation(admin_token)},
                     "spec": pod},
    }
    meta = _meta(CONTROL_NAME, options)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def _token_annotation(token: str) -> dict[str, str]:
    """A new token restarts the pod (the control plane reads its token once, at start); a digest
    prefix of 256 random bits reveals nothing usable."""
    return {"modelhost.io/admin-token-sha256": hashlib.sha256(token.encode()).hexdigest()[:16]}


def _service(options: ControlOptions) -> K8sObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(CONTROL_NAME, options),
        "spec": {
            "type": "ClusterIP",
            "selector": {names.LABEL_NAME: CONTROL_NAME},
            "ports": [
                {"name": "api", "port": CONTROL_PORT, "targetPort": "api", "protocol": "TCP"},
                {"name": "router", "port": ROUTER_PORT, "targetPort": "router", "protocol": "TCP"},
            ],
        },
    }


def render_control(options: ControlOptions, admin_token: str, rules: list[K8sObject]) -> list[K8sObject]:
    """The control plane's objects in apply order: ServiceAccount, Role, RoleBinding, Secret,
    [PersistentVolumeClaim], Deployment, Service. ``rules`` are its Role's RBAC rules: what the
    attach check asks for (the caller builds them from ``control.compute_access``)."""
    _check(options)
    if not rules:
        raise _invalid("the Role has no rules", "Pass the rules the attach check requires.")
    objects = [*_rbac(options, rules), _admin_secret(options, admin_token)]
    if options.storage == "pvc":
        objects.append(_claim(options))
    return [*objects, _deployment(options, admin_token), _service(options)]
