"""A service's spec as Kubernetes objects: pure (values in, plain dicts out; no client, no I/O, no clock).

:func:`render_service` turns one :class:`~modelhost.runtime.base.ServiceDeployment` into, in apply
order, the anchor ConfigMap, the keys Secret, the headless discovery Service and the generation's
Deployment (whose init container fetches the snapshot and the models by digest from the control
plane). :func:`render_scale` is the body of a ``scale`` subresource patch; :func:`render_build` the
ConfigMap and Job that build an environment image in the cluster. Every object validates against the
official schemas of :data:`KUBERNETES_VERSIONS` (tests/unit/test_k8s_render.py); the choices are
explained in docs/kubernetes-render.md. Names and labels come from :mod:`.k8s_names`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from modelhost import __version__
from modelhost.errors import ValidationError
from modelhost.runtime import k8s_names as names
from modelhost.runtime import k8s_render_upload as upload
from modelhost.runtime.base import ModelSpec, ProbeSettings, Resources, ServiceDeployment
from modelhost.runtime.layout import layout_for

__all__ = [
    "ANCHOR_ROUTE_KEYS",
    "FETCH_MANIFEST_FORMAT",
    "FETCH_TOKEN_DIR",
    "KUBERNETES_VERSIONS",
    "TOKEN_KEYS_CONFIGMAP",
    "BuildOptions",
    "K8sObject",
    "K8sOptions",
    "ServiceKeys",
    "cpu_quantity",
    "dockerfile",
    "environment_image",
    "fetch_manifest",
    "fetch_manifest_digest",
    "memory_quantity",
    "progress_deadline_s",
    "render_anchor",
    "render_build",
    "render_build_context",
    "render_build_job",
    "render_deployment",
    "render_discovery_service",
    "render_fetch_token_secret",
    "render_keys_secret",
    "render_scale",
    "render_service",
    "render_token_keys",
    "route_json",
    "termination_grace_s",
]

K8sObject = dict[str, Any]
"""A Kubernetes object as the official client and ``kubernetes-validate`` take it (JSON-shaped)."""

KUBERNETES_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37")
"""The Kubernetes minor versions whose schemas every rendered object is validated against."""

FETCH_MANIFEST_FORMAT = 1
FETCH_TOKEN_DIR = "/var/run/secrets/modelhost/fetch"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_DRAIN_MARGIN_S = 5  # after the longest request: the server's own shutdown
_SCHEDULE_TIMEOUT_S = 300  # v1: "Couldn't schedule ... after trying for 00:05:00"
_READINESS_PERIOD_S = 1  # a ready replica joins routing within about a second


@dataclass(frozen=True)
class ServiceKeys:
    """v1's two keys of a service; only ever rendered into the keys Secret."""

    primary: str
    secondary: str


@dataclass(frozen=True)
class K8sOptions:
    """How this control plane's services run in one cluster (built once from settings).

    ``registry`` is where environment images live (``<registry>/modelhost-env:<env hash>``, no
    scheme); ``artifact_url`` is the control plane's base URL as pods reach it (the init container
    reads ``<artifact_url>/api/v1/blobs/<sha256>``), authenticated by the token in the Secret
    ``fetch_token_secret`` (key ``fetch_token_key``). ``registry_secret`` names a
    ``kubernetes.io/dockerconfigjson`` Secret used to pull replicas' images and to push built ones.
    ``replica_timeout_margin_ms`` is added to the router's scoring timeout to get the replica's own
    (``SCORING_TIMEOUT_MS``), so the router's 504 is what clients see.
    """

    namespace: str
    registry: str
    artifact_url: str
    fetch_token_secret: str = "modelhost-fetch-token"
    fetch_token_key: str = "token"
    registry_secret: str | None = None
    registry_insecure: bool = False
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, str | int], ...] = ()
    gpu_resource: str = "nvidia.com/gpu"
    fetch_image: str | None = None
    run_as_user: int = 1000
    replica_timeout_margin_ms: int = 5_000
    prestop_delay_s: int = 5
    app_volume_size_limit_gb: float | None = None


@dataclass(frozen=True)
class BuildOptions:
    """One environment image build: the builder, its base image and what it installs besides the
    environment's requirements (the scoring server, ``modelhost`` without extras)."""

    builder: Literal["kaniko", "buildkit"] = "kaniko"
    python: str = "3.11"
    base_image: str | None = None  # default python:<python>-slim
    modelhost_requirement: str = f"modelhost=={__version__}"
    # a wheel or source folder in the build context, installed instead of modelhost_requirement
    # (local builds: the builder copies it in; a ConfigMap context cannot hold it)
    modelhost_source: str | None = None
    kaniko_image: str = "gcr.io/kaniko-project/executor:v1.23.2"
    buildkit_image: str = "moby/buildkit:v0.16.0-rootless"
    timeout_s: int = 3600
    ttl_after_finished_s: int = 3600
    cpu_cores: float = 1.0
    memory_gb: float = 2.0


# ---------------------------------------------------------------------------------------------
# checks and small conversions


def _invalid(message: str, hint: str) -> ValidationError:
    return ValidationError(message, hint=hint)


def _digest(value: str | None, what: str) -> str:
    if value is None or _SHA256_RE.fullmatch(value) is None:
        raise _invalid(
            f"{what} {value!r} is not a sha256 digest (64 lowercase hex digits)",
            "Pass the digest the artifact store returned for the content.",
        )
    return value


def _check_options(options: K8sOptions) -> None:
    names.validate_namespace(options.namespace)
    names.validate_labels(options.extra_labels)
    names.validate_labels(options.node_selector)
    if not options.registry or "://" in options.registry or options.registry.endswith("/"):
        raise _invalid(
            f"image registry {options.registry!r} is not a registry reference",
            "Give it without scheme or trailing slash, e.g. 'registry.example.com/ml'.",
        )
    if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", options.artifact_url):
        raise _invalid(
            f"artifact URL {options.artifact_url!r} is not an http(s) URL",
            "Give the control plane's URL as pods reach it, e.g. 'http://modelhost.modelhost.svc:8080'.",
        )
    if options.image_pull_policy not in _PULL_POLICIES:
        raise _invalid(
            f"image pull policy {options.image_pull_policy!r} is unknown", f"Use one of {_PULL_POLICIES}."
        )
    if not re.fullmatch(r"[-._a-zA-Z0-9]{1,253}", options.fetch_token_key):
        raise _invalid(
            f"secret key {options.fetch_token_key!r} is not a valid key of a Secret",
            "Use letters, digits, '-', '_' or '.', e.g. 'token'.",
        )
    for secret in (options.fetch_token_secret, options.registry_secret, *options.image_pull_secrets):
        if secret is not None:
            names.validate_dns_label(secret, "secret name")


def _positive(value: float, what: str) -> None:
    if isinstance(value, bool) or not value > 0:
        raise _invalid(f"{what}={value!r} is not valid", f"{what} must be > 0.")


def cpu_quantity(cores: float) -> str:
    """Cores as a canonical Kubernetes quantity, rounded up to a millicore: 0.1 -> ``100m``, 2 -> ``2``."""
    _positive(cores, "cpu_cores")
    millis = math.ceil(round(cores * 1000, 6))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(gb: float) -> str:
    """Memory in GiB (as the local runtime counts it) as a canonical quantity, rounded up to a MiB:
    0.5 -> ``512Mi``, 1 -> ``1Gi``, 1.5 -> ``1536Mi``."""
    _positive(gb, "memory_gb")
    amount = math.ceil(round(gb * 1024, 6))
    for suffix in ("Mi", "Gi", "Ti", "Pi"):
        if amount % 1024 or suffix == "Pi":
            return f"{amount}{suffix}"
        amount //= 1024
    raise AssertionError("unreachable")


def _literal(text: str) -> str:
    """Protect ``$(NAME)`` in a value from Kubernetes' variable expansion in env, command and args."""
    return text.replace("$(", "$$(")


def environment_image(registry: str, env_hash: str) -> str:
    """``<registry>/modelhost-env:<env hash>``: the content hash names the image."""
    return f"{registry}/modelhost-env:{_digest(env_hash, 'environment hash')}"


def _owner_references(service: str, owner_uid: str | None) -> list[K8sObject]:
    if owner_uid is None:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": names.anchor_name(service),
            "uid": owner_uid,
            "blockOwnerDeletion": True,
        }
    ]


def _metadata(
    name: str,
    options: K8sOptions,
    labels: Mapping[str, str],
    owner: list[K8sObject],
    annotations: Mapping[str, str] | None = None,
) -> K8sObject:
    meta: K8sObject = {"name": name, "namespace": options.namespace, "labels": dict(sorted(labels.items()))}
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    if owner:
        meta["ownerReferences"] = owner
    return meta


# ---------------------------------------------------------------------------------------------
# the anchor, the Secrets and the discovery Service


ANCHOR_ROUTE_KEYS = (
    "auth_enabled", "auth_mode", "max_concurrent_per_replica", "max_queue_wait_ms", "scoring_timeout_ms",
    "scale_to_zero", "cold_start_wait_ms",
)
"""The route settings an anchor's ``data.route`` may carry (what the in-cluster router reads)."""
TOKEN_KEYS_CONFIGMAP = "modelhost-token-keys"


def route_json(service: str, route: Mapping[str, Any]) -> str:
    """``route`` as the anchor's ``data.route`` (compact, sorted JSON), checked as the router would
    read it: only :data:`ANCHOR_ROUTE_KEYS`, each value valid for a routing-table route."""
    from modelhost.router.table import table_from_json  # the router's own validation, no I/O

    unknown = sorted(set(route) - set(ANCHOR_ROUTE_KEYS))
    if unknown:
        raise _invalid(f"route of service {service!r} has unknown keys {unknown}",
                       f"Use only {', '.join(ANCHOR_ROUTE_KEYS)}.")
    table_from_json({"services": {service: dict(route)}})
    return json.dumps(dict(route), sort_keys=True, separators=(",", ":"))


def render_anchor(service: str, options: K8sOptions, route: Mapping[str, Any] | None = None) -> K8sObject:
    """The per-service ConfigMap every other object's ``ownerReferences`` point to: deleting it
    (``propagationPolicy=Foreground`` to wait) makes the garbage collector remove everything.
    ``route`` (the routing settings, :func:`route_json`) goes into ``data.route`` for the
    in-cluster router."""
    _check_options(options)
    data = {"service": service}
    if route is not None:
        data["route"] = route_json(service, route)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            names.anchor_name(service),
            options,
            names.object_labels(service, "anchor", options.extra_labels),
            [],
        ),
        "data": data,
    }


def render_token_keys(issuer: str, public_keys: Mapping[str, str], options: K8sOptions) -> K8sObject:
    """The namespace's ConfigMap of token-verification keys: the issuer and ``kid -> public key``
    (JSON). Public halves only; each is checked to be an Ed25519 public key, so a private key
    can never be written here by mistake."""
    from modelhost.router.tokens import public_key_from_text

    _check_options(options)
    if not issuer:
        raise _invalid("the token issuer is empty", "Open the control plane's signing keys first.")
    for kid, text in public_keys.items():
        try:
            public_key_from_text(text)
        except ValueError as exc:
            raise _invalid(f"token key {kid!r} is not an Ed25519 public key: {exc}",
                           "Publish only the public halves of the signing keys.") from exc
    labels = {
        **options.extra_labels,
        names.LABEL_PART_OF: names.MANAGED_BY,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: "token-keys",
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(TOKEN_KEYS_CONFIGMAP, options, labels, []),
        "data": {"issuer": issuer, "keys": json.dumps(dict(public_keys), sort_keys=True)},
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def render_keys_secret(
    service: str, keys: ServiceKeys, options: K8sOptions, owner_uid: str | None = None
) -> K8sObject:
    """The service's keys (``primaryKey``, ``secondaryKey``) as ``data`` (base64), not ``stringData``,
    which server-side apply handles badly (kubernetes/kubernetes#108008). Only the router reads it."""
    _check_options(options)
    for what, key in (("primary", keys.primary), ("secondary", keys.secondary)):
        if not key:
            raise _invalid(
                f"the {what} key of service {service!r} is empty", "Generate or give a non-empty key."
            )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(
            names.keys_secret_name(service),
            options,
            names.object_labels(service, "keys", options.extra_labels),
            _owner_references(service, owner_uid),
        ),
        "type": "Opaque",
        "data": {"primaryKey": _b64(keys.primary), "secondaryKey": _b64(keys.secondary)},
    }


def render_fetch_token_secret(token: str, options: K8sOptions) -> K8sObject:
    """The namespace's one Secret holding the control plane's artifact token (shared by every
    service, so owned by none); mounted only into init containers."""
    _check_options(options)
    if not token:
        raise _invalid("the artifact fetch token is empty", "Mint a token for the artifact API first.")
    labels = {
        **options.extra_labels,
        names.LABEL_PART_OF: names.MANAGED_BY,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: "fetch-token",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(options.fetch_token_secret, options, labels, []),
        "type": "Opaque",
        "data": {options.fetch_token_key: _b64(token)},
    }


def render_discovery_service(service: str, options: K8sOptions, owner_uid: str | None = None) -> K8sObject:
    """The headless Service (``clusterIP: None``) selecting the service's ready replicas of every
    generation; the router reads its EndpointSlices (label ``kubernetes.io/service-name``)."""
    _check_options(options)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            names.discovery_service_name(service),
            options,
            names.object_labels(service, "discovery", options.extra_labels),
            _owner_references(service, owner_uid),
        ),
        "spec": {
            "clusterIP": "None",
            "selector": names.service_selector(service),
            "ports": [{"name": "http", "port": names.SCORING_PORT, "targetPort": "http", "protocol": "TCP"}],
            "publishNotReadyAddresses": False,
        },
    }


# ---------------------------------------------------------------------------------------------
# the fetch manifest: what the init container writes into the app root


def _check_model(model: ModelSpec) -> None:
    if not model.name or "/" in model.name or model.name in (".", "..") or model.version < 0:
        raise _invalid(
            f"model {model.name}:{model.version} has an invalid name or version",
            "Model names hold no '/', versions are integers >= 0.",
        )
    for f in model.files:
        rel = PurePosixPath(f.path)
        if not f.path or rel.is_absolute() or ".." in rel.parts or rel == PurePosixPath("."):
            raise _invalid(
                f"file {f.path!r} of model {model.name}:{model.version} is not a relative path",
                "Model file paths are relative to the model's folder, without '..'.",
            )
        if f.sha256 is None:
            raise _invalid(
                f"file {f.path!r} of model {model.name}:{model.version} has no sha256; on Kubernetes "
                "every model file must be a blob of the artifact store",
                "Register the model so that its files are stored as blobs.",
            )
        _digest(f.sha256, f"sha256 of model file {model.name}:{model.version}/{f.path}")


def fetch_manifest(deployment: ServiceDeployment, snapshot: str) -> bytes:
    """The JSON document (canonical bytes) the init container reads by digest: what goes where.

    ``{"format": 1, "source_dir": ..., "snapshot": <sha256 of the snapshot zip>, "models": [{"name",
    "version", "files": [{"path", "sha256", "executable"}]}]}``. The runtime stores these bytes as a
    blob before applying the Deployment; the pod names them by :func:`fetch_manifest_digest`.
    """
    layout_for(deployment, Path(names.APP_ROOT))  # validates source_dir and entry_script
    for model in deployment.models:
        _check_model(model)
    doc = {
        "format": FETCH_MANIFEST_FORMAT,
        "source_dir": deployment.source_dir,
        "snapshot": _digest(snapshot, "snapshot digest"),
        "models": [
            {
                "name": m.name,
                "version": m.version,
                "files": [{"path": f.path, "sha256": f.sha256, "executable": f.executable} for f in m.files],
            }
            for m in deployment.models
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def fetch_manifest_digest(deployment: ServiceDeployment, snapshot: str) -> str:
    return hashlib.sha256(fetch_manifest(deployment, snapshot)).hexdigest()


# ---------------------------------------------------------------------------------------------
# the Deployment of one generation


def _check_deployment(d: ServiceDeployment) -> None:
    _positive(d.scoring_timeout_ms, "scoring_timeout_ms")
    _positive(d.max_concurrent_requests, "max_concurrent_requests")
    if d.replicas < 0:
        raise _invalid(f"replicas={d.replicas} is not valid", "replicas must be >= 0.")
    p = d.probe
    for what, value in (
        ("period_seconds", p.period_seconds),
        ("initial_delay_seconds", p.initial_delay_seconds),
        ("timeout_seconds", p.timeout_seconds),
        ("success_threshold", p.success_threshold),
        ("failure_threshold", p.failure_threshold),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < (0 if what == "initial_delay_seconds" else 1)
        ):
            raise _invalid(f"probe {what}={value!r} is not valid", f"{what} must be a positive integer.")


def _resources(res: Resources, gpu_resource: str) -> K8sObject:
    """``cpu_cores``/``memory_gb`` -> requests; limits: ``cpu_cores_limit`` when set (a fractional
    CPU limit throttles, so none by default, as locally), memory ``memory_gb_limit`` or the request."""
    requests = {"cpu": cpu_quantity(res.cpu_cores), "memory": memory_quantity(res.memory_gb)}
    memory_limit = res.memory_gb_limit if res.memory_gb_limit is not None else res.memory_gb
    if memory_limit < res.memory_gb:
        raise _invalid(
            f"memory_gb_limit={memory_limit:g} is below memory_gb={res.memory_gb:g}",
            "memory_gb_limit must be >= memory_gb.",
        )
    limits = {"memory": memory_quantity(memory_limit)}
    if res.cpu_cores_limit is not None:
        if res.cpu_cores_limit < res.cpu_cores:
            raise _invalid(
                f"cpu_cores_limit={res.cpu_cores_limit:g} is below cpu_cores={res.cpu_cores:g}",
                "cpu_cores_limit must be >= cpu_cores.",
            )
        limits["cpu"] = cpu_quantity(res.cpu_cores_limit)
    if isinstance(res.gpu_cores, bool) or not isinstance(res.gpu_cores, int) or res.gpu_cores < 0:
        raise _invalid(f"gpu_cores={res.gpu_cores!r} is not valid", "gpu_cores must be an integer >= 0.")
    if res.gpu_cores:  # extended resources: requests must equal limits
        requests[gpu_resource] = limits[gpu_resource] = str(res.gpu_cores)
    return {"requests": requests, "limits": limits}


def _replica_timeout_ms(d: ServiceDeployment, options: K8sOptions) -> int:
    return d.scoring_timeout_ms + options.replica_timeout_margin_ms


def termination_grace_s(d: ServiceDeployment, options: K8sOptions) -> int:
    """preStop delay + the longest request a replica may still be running + a margin to exit."""
    return options.prestop_delay_s + math.ceil(_replica_timeout_ms(d, options) / 1000) + _DRAIN_MARGIN_S


def progress_deadline_s(probe: ProbeSettings) -> int:
    """v1's 5-minute scheduling timeout plus the liveness start window (v1 defaults: 300 + 340 s)."""
    return _SCHEDULE_TIMEOUT_S + probe.initial_delay_seconds + probe.failure_threshold * probe.period_seconds


def _scoring_env(d: ServiceDeployment, options: K8sOptions, model_dir: str, entry: str) -> list[K8sObject]:
    ours = {
        "AML_APP_ROOT": names.APP_ROOT,
        "AZUREML_MODEL_DIR": model_dir,
        "AZUREML_ENTRY_SCRIPT": entry,
        "AZUREML_SOURCE_DIRECTORY": _literal(d.source_dir),
        "SCORING_TIMEOUT_MS": str(_replica_timeout_ms(d, options)),
        "MODELHOST_MAX_CONCURRENT_REQUESTS": str(d.max_concurrent_requests),
        "SERVICE_NAME": d.service,
        "PYTHONUNBUFFERED": "1",
    }
    if d.resources.gpu_cores == 0:
        ours["CUDA_VISIBLE_DEVICES"] = ""  # as locally: a CPU replica sees no GPU
    defaults = {"HOME": "/tmp"}  # the image's user has no home; the script may override it
    derived = ("MODELHOST_REPLICA_ID", "POD_IP")
    merged = {**defaults, **{k: v for k, v in d.env.items() if k not in ours and k not in derived}}
    env: list[K8sObject] = [{"name": k, "value": _literal(v)} for k, v in sorted(merged.items())]
    env += [{"name": k, "value": v} for k, v in ours.items()]
    env.append({"name": "MODELHOST_REPLICA_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    env.append({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    return env


def _security_context() -> K8sObject:
    """What the 'restricted' Pod Security Standard asks of a container."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _probes(probe: ProbeSettings) -> tuple[K8sObject, K8sObject]:
    get = {"path": "/", "port": names.SCORING_PORT, "scheme": "HTTP"}
    liveness = {  # v1's livenessProbeRequirements; Kubernetes requires successThreshold 1 here
        "httpGet": dict(get),
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "successThreshold": 1,
        "failureThreshold": probe.failure_threshold,
    }
    readiness = {  # v1's success_threshold lands here, where Kubernetes honours it
        "httpGet": dict(get),
        "initialDelaySeconds": 1,
        "periodSeconds": _READINESS_PERIOD_S,
        "timeoutSeconds": probe.timeout_seconds,
        "successThreshold": probe.success_threshold,
        "failureThreshold": 3,
    }
    return liveness, readiness


def _fetch_container(image: str, manifest: str, options: K8sOptions, res: Resources) -> K8sObject:
    resources = _resources(
        Resources(res.cpu_cores, res.memory_gb, 0, res.cpu_cores_limit, res.memory_gb_limit),
        options.gpu_resource,
    )
    return {
        "name": "fetch",
        "image": options.fetch_image or image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["python", "-m", "modelhost.runtime.fetch"],
        "args": [
            "--artifact-url",
            _literal(options.artifact_url),
            "--manifest",
            manifest,
            "--token-file",
            f"{FETCH_TOKEN_DIR}/{options.fetch_token_key}",
            "--app-root",
            names.APP_ROOT,
        ],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
        "resources": resources,
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "app", "mountPath": names.APP_ROOT},
            {"name": "fetch-token", "mountPath": FETCH_TOKEN_DIR, "readOnly": True},
        ],
    }


def _scoring_container(d: ServiceDeployment, image: str, options: K8sOptions) -> K8sObject:
    layout = layout_for(d, Path(names.APP_ROOT))
    source = PurePosixPath(d.source_dir)
    entry = source / (PurePosixPath(d.entry_script).name if d.snapshot is None else d.entry_script)
    liveness, readiness = _probes(d.probe)
    env = _scoring_env(d, options, _literal(str(layout.model_dir)), _literal(str(entry)))
    mounts = [{"name": "app", "mountPath": names.APP_ROOT}]
    if upload.collects(d.env):  # rows go to the pod's data volume; the upload sidecar ships them
        env, mounts = upload.pod_data_env(env), [*mounts, upload.data_mount()]
    return {
        "name": "scoring",
        "image": image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["python", "-m", "modelhost.scoring"],
        "args": [
            "--entry_script",
            _literal(str(layout.entry_script)),
            "--model_dir",
            _literal(str(layout.model_dir)),
            "--port",
            str(names.SCORING_PORT),
            "--host",
            # the pod's own IP rather than 0.0.0.0: where pods share the host's network (hostNetwork,
            # the tests' node agent) two replicas on one node would otherwise collide on 5001
            "$(POD_IP)",
        ],
        "workingDir": names.APP_ROOT,
        "ports": [{"name": "http", "containerPort": names.SCORING_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": _resources(d.resources, options.gpu_resource),
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        "lifecycle": {
            "preStop": {
                "exec": {"command": ["python", "-c", f"import time; time.sleep({options.prestop_delay_s})"]}
            }
        },
        "securityContext": _security_context(),
        "volumeMounts": mounts,
    }


def _volumes(options: K8sOptions, d: ServiceDeployment) -> list[K8sObject]:
    empty: K8sObject = {}
    if options.app_volume_size_limit_gb is not None:
        empty["sizeLimit"] = memory_quantity(options.app_volume_size_limit_gb)
    return [
        {"name": "app", "emptyDir": empty},
        {
            "name": "fetch-token",
            "secret": {
                "secretName": options.fetch_token_secret,
                "items": [{"key": options.fetch_token_key, "path": options.fetch_token_key}],
                "defaultMode": 0o440,
            },
        },
        *(upload.data_volumes(d.service) if upload.collects(d.env) else []),
    ]


def _upload_containers(d: ServiceDeployment, options: K8sOptions, image: str) -> list[K8sObject]:
    if not upload.collects(d.env):
        return []
    return [
        upload.uploader_container(
            d.service, options.fetch_image or image, options.image_pull_policy, options.artifact_url,
            termination_grace_s(d, options), _security_context(),
        )
    ]


def _pod_spec(d: ServiceDeployment, options: K8sOptions, image: str, manifest: str) -> K8sObject:
    spec: K8sObject = {
        "automountServiceAccountToken": False,  # replicas never talk to the API server
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace_s(d, options),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": options.run_as_user,
            "runAsGroup": options.run_as_user,
            "fsGroup": options.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [_fetch_container(image, manifest, options, d.resources)],
        "containers": [_scoring_container(d, image, options), *_upload_containers(d, options, image)],
        "volumes": _volumes(options, d),
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": names.replica_selector(d.service, d.generation)},
            }
        ],
    }
    pull = [*([options.registry_secret] if options.registry_secret else []), *options.image_pull_secrets]
    if pull:
        spec["imagePullSecrets"] = [{"name": s} for s in dict.fromkeys(pull)]
    if options.service_account:
        spec["serviceAccountName"] = options.service_account
    if options.node_selector:
        spec["nodeSelector"] = dict(sorted(options.node_selector.items()))
    tolerations = [dict(t) for t in options.tolerations]
    if d.resources.gpu_cores:  # GPU nodes are commonly tainted with the device plugin's resource name
        tolerations.append({"key": options.gpu_resource, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        spec["tolerations"] = tolerations
    return spec


def render_deployment(
    deployment: ServiceDeployment,
    options: K8sOptions,
    *,
    environment: str,
    snapshot: str,
    owner_uid: str | None = None,
    manage_replicas: bool = False,
    image: str | None = None,
) -> K8sObject:
    """The Deployment ``<service>-g<generation>`` running ``deployment`` in the image of ``environment``.

    ``image`` replaces the tag reference ``<registry>/modelhost-env:<environment>`` (e.g. the same
    image by digest, ``...@sha256:<hex>``, once the runtime looked it up in the registry).

    Without ``manage_replicas`` the manifest has no ``spec.replicas``: the ``scale`` subresource (the
    autoscaler) owns it and no later apply resets it; after the first create the runtime scales to
    ``deployment.replicas`` (create-then-scale). With it, ``spec.replicas = deployment.replicas``
    (v1's fixed ``num_replicas``).
    """
    _check_options(options)
    _check_deployment(deployment)
    tagged = environment_image(options.registry, environment)
    image = image or tagged
    manifest = fetch_manifest_digest(deployment, snapshot)
    labels = names.replica_labels(deployment.service, deployment.generation, options.extra_labels)
    annotations = {
        "modelhost.io/environment": environment,
        "modelhost.io/fetch-manifest": manifest,
        "modelhost.io/snapshot": snapshot,
    }
    spec: K8sObject = {}
    if manage_replicas:
        spec["replicas"] = deployment.replicas
    spec |= {
        "selector": {"matchLabels": names.replica_selector(deployment.service, deployment.generation)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "progressDeadlineSeconds": progress_deadline_s(deployment.probe),
        "revisionHistoryLimit": 2,
        "template": {
            "metadata": {
                "labels": dict(sorted(labels.items())),
                "annotations": dict(sorted(annotations.items())),
            },
            "spec": _pod_spec(deployment, options, image, manifest),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            names.deployment_name(deployment.service, deployment.generation),
            options,
            labels,
            _owner_references(deployment.service, owner_uid),
            annotations,
        ),
        "spec": spec,
    }


def render_service(
    deployment: ServiceDeployment,
    options: K8sOptions,
    *,
    environment: str,
    snapshot: str,
    keys: ServiceKeys | None = None,
    owner_uid: str | None = None,
    manage_replicas: bool = False,
    image: str | None = None,
    route: Mapping[str, Any] | None = None,
) -> list[K8sObject]:
    """Every object of one generation of a service, in apply order: anchor ConfigMap (with
    ``route`` in ``data.route``), keys Secret (when ``keys``), headless Service, Deployment. Objects
    other than the anchor carry an owner reference to it once ``owner_uid`` (the anchor's uid,
    known after it is created) is given."""
    service = deployment.service
    objects = [render_anchor(service, options, route)]
    if keys is not None:
        objects.append(render_keys_secret(service, keys, options, owner_uid))
    objects.append(render_discovery_service(service, options, owner_uid))
    objects.append(
        render_deployment(
            deployment,
            options,
            environment=environment,
            snapshot=snapshot,
            owner_uid=owner_uid,
            manage_replicas=manage_replicas,
            image=image,
        )
    )
    return objects


def render_scale(name: str, namespace: str, replicas: int) -> K8sObject:
    """An ``autoscaling/v1`` Scale for Deployment ``name``: the body of a merge patch of its ``scale``
    subresource (field manager ``modelhost-autoscaler``), the only writer of ``spec.replicas``."""
    names.validate_namespace(namespace)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise _invalid(f"replicas={replicas!r} is not valid", "replicas must be an integer >= 0.")
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas},
    }


# ---------------------------------------------------------------------------------------------
# building an environment image in the cluster


def _dockerfile(env_hash: str, requirements: Sequence[str], build: BuildOptions) -> str:
    """Exec-form RUN with JSON-quoted requirements: no shell quoting and no COPY from the context
    (ConfigMap volumes are symlinks, which builders copy as links)."""
    base = build.base_image or f"python:{build.python}-slim"
    source = build.modelhost_source
    if source is not None and (not source or "/" in source or source.startswith(".")):
        raise _invalid(
            f"modelhost_source {source!r} is not a file name in the build context",
            "Name the wheel or folder copied into the context, e.g. 'modelhost-0.1.0-py3-none-any.whl'.",
        )
    install = [
        "/opt/modelhost-env/bin/python",
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        f"/tmp/modelhost-src/{source}" if source else build.modelhost_requirement,
        *requirements,
    ]
    copy = [f"COPY {json.dumps([source, f'/tmp/modelhost-src/{source}'])}"] if source else []
    return "\n".join(
        [
            f"# modelhost environment {env_hash}",
            f"FROM {base}",
            'RUN ["python3", "-m", "venv", "/opt/modelhost-env"]',
            *copy,
            f"RUN {json.dumps(install)}",
            "ENV VIRTUAL_ENV=/opt/modelhost-env PATH=/opt/modelhost-env/bin:$PATH PYTHONUNBUFFERED=1",
            f"WORKDIR {names.APP_ROOT}",
            f'LABEL io.modelhost.environment="{env_hash}"',
            "",
        ]
    )


def dockerfile(env_hash: str, requirements: Sequence[str], build: BuildOptions | None = None) -> str:
    """The Dockerfile of an environment image (what the build ConfigMap holds; local builds use it too)."""
    _digest(env_hash, "environment hash")
    _check_requirements(requirements)
    return _dockerfile(env_hash, requirements, build or BuildOptions())


def _build_labels(env_hash: str, options: K8sOptions) -> dict[str, str]:
    return {
        **options.extra_labels,
        names.LABEL_PART_OF: names.MANAGED_BY,
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_COMPONENT: "build",
        names.LABEL_ENVIRONMENT: env_hash[:63],
    }


def _check_requirements(requirements: Sequence[str]) -> None:
    for req in requirements:
        if not req.strip() or "\n" in req or req.lstrip().startswith("-"):
            raise _invalid(
                f"requirement {req!r} cannot be installed in a build",
                "Give PEP 508 requirement strings, one per entry, without pip options.",
            )


def render_build_context(
    env_hash: str, requirements: Sequence[str], options: K8sOptions, build: BuildOptions | None = None
) -> K8sObject:
    """The build context: a ConfigMap holding the ``Dockerfile``."""
    build = build or BuildOptions()
    _check_options(options)
    _digest(env_hash, "environment hash")
    _check_requirements(requirements)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            names.build_name(env_hash),
            options,
            _build_labels(env_hash, options),
            [],
            {"modelhost.io/environment": env_hash},
        ),
        "data": {"Dockerfile": _dockerfile(env_hash, requirements, build)},
    }


def _kaniko(
    image: str, options: K8sOptions, build: BuildOptions
) -> tuple[K8sObject, list[K8sObject], K8sObject]:
    args = [
        "--context=dir:///workspace",
        "--dockerfile=/workspace/Dockerfile",
        f"--destination={image}",
        "--digest-file=/dev/termination-log",
    ]
    if options.registry_insecure:
        args.append("--insecure")
    mounts = [{"name": "context", "mountPath": "/workspace", "readOnly": True}]
    if options.registry_secret:
        mounts.append({"name": "registry", "mountPath": "/kaniko/.docker", "readOnly": True})
    container = {"name": "build", "image": build.kaniko_image, "args": args, "volumeMounts": mounts}
    return container, [], {}


def _buildkit(
    image: str, options: K8sOptions, build: BuildOptions
) -> tuple[K8sObject, list[K8sObject], K8sObject]:
    output = f"type=image,name={image},push=true" + (
        ",registry.insecure=true" if options.registry_insecure else ""
    )
    mounts = [
        {"name": "context", "mountPath": "/workspace", "readOnly": True},
        {"name": "buildkit-state", "mountPath": "/home/user/.local/share/buildkit"},
    ]
    env = [{"name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox"}]
    if options.registry_secret:
        mounts.append({"name": "registry", "mountPath": "/home/user/.docker", "readOnly": True})
        env.append({"name": "DOCKER_CONFIG", "value": "/home/user/.docker"})
    container = {
        "name": "build",
        "image": build.buildkit_image,
        "command": ["buildctl-daemonless.sh"],
        "args": [
            "build",
            "--frontend",
            "dockerfile.v0",
            "--local",
            "context=/workspace",
            "--local",
            "dockerfile=/workspace",
            "--output",
            output,
            "--metadata-file",
            "/dev/termination-log",
        ],
        "env": env,
        "volumeMounts": mounts,
        # rootless BuildKit needs its own user namespaces: no seccomp/AppArmor confinement
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "seccompProfile": {"type": "Unconfined"}},
    }
    volumes = [{"name": "buildkit-state", "emptyDir": {}}]
    # the annotation, not the appArmorProfile field (1.30+), so 1.28 and 1.29 understand it
    return container, volumes, {"container.apparmor.security.beta.kubernetes.io/build": "unconfined"}


def render_build_job(
    env_hash: str, requirements: Sequence[str], options: K8sOptions, build: BuildOptions | None = None
) -> K8sObject:
    """A Job that builds ``<registry>/modelhost-env:<env_hash>`` from the context ConfigMap with a
    daemonless builder (kaniko, or rootless BuildKit) and pushes it. The pushed digest ends up in the
    container's termination message (kaniko: ``sha256:...``; BuildKit: its metadata JSON)."""
    build = build or BuildOptions()
    context = render_build_context(env_hash, requirements, options, build)
    image = environment_image(options.registry, env_hash)
    if build.builder == "kaniko":
        container, volumes, annotations = _kaniko(image, options, build)
    elif build.builder == "buildkit":
        container, volumes, annotations = _buildkit(image, options, build)
    else:
        raise _invalid(f"builder {build.builder!r} is unknown", "Use 'kaniko' or 'buildkit'.")
    container["resources"] = {
        "requests": {"cpu": cpu_quantity(build.cpu_cores), "memory": memory_quantity(build.memory_gb)}
    }
    volumes = [{"name": "context", "configMap": {"name": context["metadata"]["name"]}}, *volumes]
    if options.registry_secret:
        volumes.append(
            {
                "name": "registry",
                "secret": {
                    "secretName": options.registry_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    labels = _build_labels(env_hash, options)
    template_meta: K8sObject = {"labels": dict(sorted(labels.items()))}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(
            names.build_name(env_hash),
            options,
            labels,
            [],
            {"modelhost.io/environment": env_hash, "modelhost.io/builder": build.builder},
        ),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": build.timeout_s,
            "ttlSecondsAfterFinished": build.ttl_after_finished_s,
            "template": {
                "metadata": template_meta,
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def render_build(
    env_hash: str, requirements: Sequence[str], options: K8sOptions, build: BuildOptions | None = None
) -> list[K8sObject]:
    """The context ConfigMap and the build Job, in apply order."""
    return [
        render_build_context(env_hash, requirements, options, build),
        render_build_job(env_hash, requirements, options, build),
    ]
