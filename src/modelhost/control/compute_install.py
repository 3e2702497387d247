"""``modelhost compute install <name>``: the control plane itself on an attached cluster.

The local control plane applies :func:`~modelhost.runtime.k8s_render_control.render_control` with the
target's stored kubeconfig (server-side apply, field manager ``modelhost``, forced), so the CLI needs
no kubeconfig of its own and the kubeconfig never leaves the workspace. The installed control plane's
admin token is generated here once, kept at ``<home>/secrets/compute/<name>.control-token`` (0600)
and applied as a Secret; no answer carries it, they name the file. :func:`control_status` reads the
Deployment and its pod, which the CLI polls until the control plane is available.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any

from modelhost import __version__
from modelhost.control.compute import ComputeService, _write_private
from modelhost.control.compute_access import AccessCheck, required_checks
from modelhost.control.k8s_apply import Installer
from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names
from modelhost.runtime.k8s_render_control import (
    CONTROL_NAME,
    CONTROL_PORT,
    ControlOptions,
    control_url,
    render_control,
)

__all__ = [
    "DEFAULT_CONTROL_IMAGE",
    "control_options",
    "control_status",
    "install_control",
    "role_rules",
    "token_path",
]

_INSTALLER = Installer(
    "the control plane", "serviceaccounts, roles, rolebindings and persistentvolumeclaims"
)

DEFAULT_CONTROL_IMAGE = f"modelhost/modelhost:{__version__}"
_OPTIONAL_STR = ("storage_class", "database_secret", "artifact_url", "target_name")


def role_rules(checks: tuple[AccessCheck, ...]) -> list[dict[str, Any]]:
    """RBAC rules granting exactly ``checks``: one rule per API group and resource, verbs sorted."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for check in checks:
        resource = f"{check.resource}/{check.subresource}" if check.subresource else check.resource
        verbs[(check.group, resource)].add(check.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(v)}
        for (group, resource), v in sorted(verbs.items())
    ]


def _bad_body(raw: object, why: str) -> ValidationError:
    return ValidationError(
        f"Invalid control plane install body {raw!r}: {why}",
        hint="modelhost compute install <name> [--image I] [--storage pvc|emptyDir] [--size 10Gi] "
        "[--database-secret S] [--artifact-url U].",
    )


def control_options(namespace: str, registry: str, body: object) -> ControlOptions:
    """The options from an install body ``{image, storage, size, storage_class, database_secret,
    artifact_url, target_name, router_port}`` (all optional); the registry is the target's."""
    raw = body if isinstance(body, dict) else {}
    unknown = set(raw) - {"image", "storage", "size", "router_port", *_OPTIONAL_STR}
    if unknown:
        raise _bad_body(raw, f"unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("image", "storage", "size", *_OPTIONAL_STR):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _bad_body(raw, f"{key} must be a string")
    port = raw.get("router_port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
        raise _bad_body(raw, "router_port must be an integer")
    return ControlOptions(
        namespace=namespace,
        image=raw.get("image") or DEFAULT_CONTROL_IMAGE,
        storage=raw.get("storage") or "pvc",
        size=raw.get("size") or "10Gi",
        storage_class=raw.get("storage_class"),
        database_secret=raw.get("database_secret"),
        registry=registry,
        artifact_url=raw.get("artifact_url"),
        target_name=raw.get("target_name") or "cluster",
        router_port=port or 8791,
    )


def token_path(home: Path, name: str) -> Path:
    """Where the installed control plane's admin token is kept on this machine (0600)."""
    return home / "secrets" / "compute" / f"{name}.control-token"


def _token(home: Path, name: str) -> str:
    """The token of an earlier install (a re-install keeps clients working), else a new one."""
    path = token_path(home, name)
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, token.encode())
    return token


def install_control(compute: ComputeService, home: Path, name: str, body: object) -> dict[str, Any]:
    """Apply the control plane's objects on target ``name``; what was applied and how to reach it."""
    from kubernetes import client

    record = compute.get(name)
    options = control_options(record.namespace, record.registry, body)
    # the in-cluster control plane may build images there too: its Role includes the build Jobs' rights
    rules = role_rules(required_checks(record.namespace, in_cluster_build=True))
    objects = render_control(options, _token(home, name), rules)
    api = compute.api_client(name)
    try:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        rbac = client.RbacAuthorizationV1Api(api)
        calls = {
            "ServiceAccount": core.patch_namespaced_service_account,
            "Role": rbac.patch_namespaced_role,
            "RoleBinding": rbac.patch_namespaced_role_binding,
            "Secret": core.patch_namespaced_secret,
            "PersistentVolumeClaim": core.patch_namespaced_persistent_volume_claim,
            "Deployment": apps.patch_namespaced_deployment,
            "Service": core.patch_namespaced_service,
        }
        applied = []
        for obj in objects:
            _INSTALLER.apply(calls[obj["kind"]], obj, record.namespace)
            applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
    finally:
        api.close()
    ns = record.namespace
    return {
        "name": name,
        "namespace": ns,
        "image": options.image,
        "storage": options.storage,
        "applied": applied,
        "targetName": options.target_name,
        "url": control_url(ns),
        "tokenFile": str(token_path(home, name)),
        "portForward": f"kubectl -n {ns} port-forward svc/{CONTROL_NAME} {CONTROL_PORT}:{CONTROL_PORT}",
    }




def _waiting(pod: Any) -> list[str]:
    """Why a pod's containers are not running yet (``ErrImagePull: ...``), init containers first."""
    status = pod.status
    found = []
    for cs in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = cs.state.waiting if cs.state is not None else None
        if waiting is not None and waiting.reason:
            found.append(f"{cs.name}: {waiting.reason}" + (f": {waiting.message}" if waiting.message else ""))
    for cond in status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.message:
            found.append(f"unschedulable: {cond.message}")
    return found


def control_status(compute: ComputeService, name: str) -> dict[str, Any]:
    """The installed control plane's state: ``installed``, ``available``, its pod's phase, address
    and waiting reasons (image pulls, an unbound volume claim, a crash loop)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    record = compute.get(name)
    api = compute.api_client(name)
    try:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        try:
            deployment: Any = apps.read_namespaced_deployment(CONTROL_NAME, record.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return {"name": name, "namespace": record.namespace, "installed": False, "available": False}
            raise _INSTALLER.refused(exc, f"read Deployment/{CONTROL_NAME}", record.namespace) from exc
        pods: list[Any] = core.list_namespaced_pod(
            record.namespace, label_selector=f"{names.LABEL_NAME}={CONTROL_NAME}"
        ).items
    finally:
        api.close()
    ready = deployment.status.ready_replicas or 0
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    return {
        "name": name,
        "namespace": record.namespace,
        "installed": True,
        "available": ready >= 1,
        "readyReplicas": ready,
        "pods": [
            {"name": p.metadata.name, "phase": p.status.phase, "podIP": p.status.pod_ip,
             "waiting": _waiting(p)}
            for p in live
        ],
    }
