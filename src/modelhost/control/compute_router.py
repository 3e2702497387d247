"""``modelhost compute install-router <name>``: the router on an attached cluster, by server-side apply.

Renders :func:`~modelhost.runtime.k8s_render_router.render_router` for the target's namespace and
purpose and applies every object (field manager ``modelhost``, forced). On ``FastProd`` the
Deployment carries no ``spec.replicas``: a Deployment this call creates is scaled to
:data:`FAST_PROD_REPLICAS` through the ``scale`` subresource (field manager
``modelhost-autoscaler``), so a later install never resets what the scaler set.
"""

from __future__ import annotations

from typing import Any

from modelhost import __version__
from modelhost.control.compute import ComputeService
from modelhost.control.k8s_apply import Installer
from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names
from modelhost.runtime.k8s_render import render_scale
from modelhost.runtime.k8s_render_router import ROUTER_NAME, RouterOptions, render_router, router_replicas

__all__ = ["DEFAULT_ROUTER_IMAGE", "install_router", "router_options"]

_INSTALLER = Installer("the router", "serviceaccounts, roles and rolebindings")

DEFAULT_ROUTER_IMAGE = f"modelhost/modelhost:{__version__}"
_SERVICE_TYPES = ("LoadBalancer", "ClusterIP", "NodePort")


def router_options(namespace: str, purpose: str, body: object) -> RouterOptions:
    """The router's options from an install body ``{image, service_type, tls_secret}`` (all optional)."""
    raw = body if isinstance(body, dict) else {}
    image = raw.get("image") or DEFAULT_ROUTER_IMAGE
    service_type = raw.get("service_type") or "LoadBalancer"
    tls_secret = raw.get("tls_secret")
    if not isinstance(image, str) or service_type not in _SERVICE_TYPES or (
        tls_secret is not None and not isinstance(tls_secret, str)
    ):
        raise ValidationError(
            f"Invalid router install body {raw!r}: image is a string, service_type one of "
            f"{', '.join(_SERVICE_TYPES)}, tls_secret a Secret name or null",
            hint="modelhost compute install-router <name> [--image I] [--service-type T] [--tls-secret S].",
        )
    return RouterOptions(
        namespace=namespace,
        image=image,
        cluster_purpose="DevTest" if purpose == "DevTest" else "FastProd",
        service_type=service_type,  # type: ignore[arg-type]  # checked above
        tls_secret=tls_secret,
    )


def install_router(compute: ComputeService, name: str, body: object) -> dict[str, Any]:
    """Apply the router's objects on target ``name``; what was applied, and the replicas asked for."""
    from kubernetes import client

    record = compute.get(name)
    options = router_options(record.namespace, record.cluster_purpose, body)
    objects = render_router(options)
    api = compute.api_client(name)
    try:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        rbac = client.RbacAuthorizationV1Api(api)
        calls = {
            "ServiceAccount": core.patch_namespaced_service_account,
            "Role": rbac.patch_namespaced_role,
            "RoleBinding": rbac.patch_namespaced_role_binding,
            "Deployment": apps.patch_namespaced_deployment,
            "Service": core.patch_namespaced_service,
        }
        existed = _exists(apps, record.namespace)
        applied = []
        for obj in objects:
            _INSTALLER.apply(calls[obj["kind"]], obj, record.namespace)
            applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
        replicas = router_replicas(record.cluster_purpose)
        if options.cluster_purpose == "FastProd" and not existed:
            apps.patch_namespaced_deployment_scale(
                ROUTER_NAME, record.namespace, render_scale(ROUTER_NAME, record.namespace, replicas),
                field_manager=names.SCALE_FIELD_MANAGER, _content_type="application/merge-patch+json",
            )
    finally:
        api.close()
    return {"name": name, "namespace": record.namespace, "image": options.image, "applied": applied,
            "replicas": replicas, "clusterPurpose": record.cluster_purpose}


def _exists(apps: Any, namespace: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        apps.read_namespaced_deployment(ROUTER_NAME, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise _INSTALLER.refused(exc, "read Deployment/modelhost-router", namespace) from exc
    return True


