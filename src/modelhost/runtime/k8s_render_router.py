"""The router on an attached cluster: ServiceAccount, Role, RoleBinding, Deployment, Service (pure).

One router per cluster namespace (v1's azureml-fe), started as ``python -m modelhost.router --discover
kubernetes --namespace <ns>``: it watches the namespace's EndpointSlices and keys Secrets itself
(in-cluster config, its own ServiceAccount), so it keeps routing while the control plane is away.

``cluster_purpose`` sets its replicas: ``DevTest`` runs 1 with ``spec.replicas`` in the manifest (v1
disables the front end's self-scaling on DevTest clusters); ``FastProd`` omits ``spec.replicas``:
``modelhost compute install-router`` creates it and then sets :data:`FAST_PROD_REPLICAS` through the
``scale`` subresource, the same hand-over as a service's Deployment (docs/kubernetes-render.md), so
the field stays with the scaler (the control plane's ``RouterScaler`` loop, control/router_scaler.py,
applying the services' decider to the router's own load with :data:`FAST_PROD_REPLICAS` as the
floor). Never an HPA.

TLS: with ``tls_secret`` (a ``kubernetes.io/tls`` Secret) the router serves HTTPS from it: the Secret
is mounted with ``tls.crt``/``tls.key`` as ``cert.pem``/``key.pem`` into ``--tls-dir``, which the
router watches, so a renewed Secret is picked up without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names

__all__ = [
    "DEV_TEST_REPLICAS",
    "FAST_PROD_REPLICAS",
    "ROUTER_NAME",
    "ROUTER_PORT",
    "RouterOptions",
    "render_router",
    "router_replicas",
]

K8sObject = dict[str, Any]
ROUTER_NAME: Final = "modelhost-router"
ROUTER_PORT: Final = 8791
FAST_PROD_REPLICAS: Final = 3  # v1: FastProd clusters run at least three front ends
DEV_TEST_REPLICAS: Final = 1
_TLS_DIR: Final = "/etc/modelhost/tls"


@dataclass(frozen=True)
class RouterOptions:
    """How the router runs in one namespace. ``image`` has ``modelhost[server]`` installed."""

    namespace: str
    image: str
    cluster_purpose: Literal["FastProd", "DevTest"] = "FastProd"
    service_type: Literal["LoadBalancer", "ClusterIP", "NodePort"] = "LoadBalancer"
    tls_secret: str | None = None
    cpu: str = "500m"
    memory: str = "512Mi"
    cpu_limit: str = "2"  # v1's front-end pod limit: 2 vCPU / 1.2 GB
    memory_limit: str = "1200Mi"
    run_as_user: int = 1000


def router_replicas(purpose: str) -> int:
    """The replicas the router starts with (and, on FastProd, never goes below)."""
    return DEV_TEST_REPLICAS if purpose == "DevTest" else FAST_PROD_REPLICAS


def _labels() -> dict[str, str]:
    return {
        names.LABEL_NAME: ROUTER_NAME,
        names.LABEL_PART_OF: "modelhost",
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: "router",
    }


def _meta(name: str, options: RouterOptions) -> K8sObject:
    return {"name": name, "namespace": options.namespace, "labels": _labels()}


def _check(options: RouterOptions) -> None:
    names.validate_namespace(options.namespace)
    if not options.image or any(c.isspace() for c in options.image):
        raise ValidationError(
            f"Invalid router image {options.image!r}", hint="Name an image with modelhost[server] installed."
        )
    if options.tls_secret is not None:
        names.validate_dns_label(options.tls_secret, "router TLS secret")
    if options.cluster_purpose not in ("FastProd", "DevTest"):
        raise ValidationError(
            f"Invalid cluster_purpose {options.cluster_purpose!r}", hint="Use FastProd or DevTest."
        )


def _rbac(options: RouterOptions) -> list[K8sObject]:
    """What discovery reads: EndpointSlices (v1 and v1beta1 share the group), the keys Secrets and
    the anchors' route settings."""
    read = ["get", "list", "watch"]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(ROUTER_NAME, options),
        "rules": [
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": read},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(ROUTER_NAME, options),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROUTER_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": ROUTER_NAME, "namespace": options.namespace}],
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ROUTER_NAME, options)}
    return [account, role, binding]


def _container(options: RouterOptions) -> K8sObject:
    args = [
        "python", "-m", "modelhost.router", "--host", "0.0.0.0", "--port", str(ROUTER_PORT),
        "--discover", "kubernetes", "--namespace", options.namespace, "--access-log", "-",
    ]
    scheme = "HTTP"
    mounts = []
    if options.tls_secret is not None:
        args += ["--tls-dir", _TLS_DIR]
        scheme = "HTTPS"
        mounts.append({"name": "tls", "mountPath": _TLS_DIR, "readOnly": True})
    probe = {"httpGet": {"path": "/-/health", "port": ROUTER_PORT, "scheme": scheme}, "periodSeconds": 2}
    container: K8sObject = {
        "name": "router",
        "image": options.image,
        "command": args,
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
        "resources": {
            "requests": {"cpu": options.cpu, "memory": options.memory},
            "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit},
        },
        "readinessProbe": {**probe, "failureThreshold": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 5},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _deployment(options: RouterOptions) -> K8sObject:
    selector = {names.LABEL_NAME: ROUTER_NAME}
    pod: K8sObject = {
        "serviceAccountName": ROUTER_NAME,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": options.run_as_user,
            "runAsGroup": options.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(options)],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ],
    }
    if options.tls_secret is not None:
        items = [{"key": "tls.crt", "path": "cert.pem"}, {"key": "tls.key", "path": "key.pem"}]
        secret = {"secretName": options.tls_secret, "items": items, "defaultMode": 0o400}
        pod["volumes"] = [{"name": "tls", "secret": secret}]
    spec: K8sObject = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 2,
        "template": {"metadata": {"labels": _labels()}, "spec": pod},
    }
    if options.cluster_purpose == "DevTest":
        spec["replicas"] = DEV_TEST_REPLICAS  # fixed: no self-scaling on DevTest (v1)
    meta = _meta(ROUTER_NAME, options)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def _service(options: RouterOptions) -> K8sObject:
    port = 443 if options.tls_secret is not None else 80
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(ROUTER_NAME, options),
        "spec": {
            "type": options.service_type,
            "selector": {names.LABEL_NAME: ROUTER_NAME},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render_router(options: RouterOptions) -> list[K8sObject]:
    """The router's objects in apply order: ServiceAccount, Role, RoleBinding, Deployment, Service."""
    _check(options)
    return [*_rbac(options), _deployment(options), _service(options)]
