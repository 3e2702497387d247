"""Compute targets: names, purposes, the attach request and kubeconfig reading (pure).

A compute target is where a service's replicas run: ``local`` (this machine, built in) or an attached
Kubernetes cluster (v1's ``AksCompute.attach``). The control plane validates an attach request with
:func:`parse_attach_request` and reads the kubeconfig with :func:`read_kubeconfig`; the SDK and the
CLI inline files a kubeconfig refers to with :func:`inline_kubeconfig_files` before sending it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from modelhost.errors import ValidationError

__all__ = [
    "CLUSTER_PURPOSES",
    "COMPUTE_TYPES",
    "DEFAULT_NAMESPACE",
    "DEFAULT_REGISTRY",
    "LOCAL_TARGET",
    "AttachRequest",
    "KubeconfigView",
    "inline_kubeconfig_files",
    "parse_attach_request",
    "read_kubeconfig",
    "validate_compute_name",
]

LOCAL_TARGET: Final = "local"
# Where environment images are pulled from unless the attach request names a registry: the usual
# address of a cluster-local registry (kind, minikube and k3d document this one).
DEFAULT_REGISTRY: Final = "localhost:5000"
DEFAULT_NAMESPACE: Final = "modelhost"
ClusterPurpose = Literal["FastProd", "DevTest"]
CLUSTER_PURPOSES: Final = ("FastProd", "DevTest")
COMPUTE_TYPES: Final = ("Kubernetes", "Local")
# v1's rule for compute names (AksCompute): 2..16 letters, digits and dashes, starting with a letter.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,15}$")
# A Kubernetes namespace is a DNS-1123 label.
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def validate_compute_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"Invalid compute target name {name!r}: "
            "2 to 16 letters, digits and dashes, starting with a letter",
            hint="Choose a name such as 'k8s-prod'.",
        )
    return name


@dataclass(frozen=True)
class AttachRequest:
    """A validated ``PUT /api/v1/compute/<name>`` body. ``kubeconfig`` is a secret (no repr)."""

    name: str
    namespace: str
    context: str | None
    cluster_purpose: ClusterPurpose
    kubeconfig: str
    registry: str = DEFAULT_REGISTRY
    artifact_url: str | None = None
    # environment images (docs/kubernetes.md, "Environment images"); credentials are secrets
    shared_registry: str | None = None
    registry_insecure: bool = False
    builder: str | None = None
    registry_credentials: tuple[str, str] | None = None
    shared_registry_credentials: tuple[str, str] | None = None

    def __repr__(self) -> str:
        return (
            f"AttachRequest(name={self.name!r}, namespace={self.namespace!r}, context={self.context!r}, "
            f"cluster_purpose={self.cluster_purpose!r}, registry={self.registry!r}, "
            f"artifact_url={self.artifact_url!r}, shared_registry={self.shared_registry!r}, "
            f"builder={self.builder!r}, kubeconfig=<hidden>, credentials=<hidden>)"
        )


def parse_attach_request(name: str, body: object) -> AttachRequest:
    """One ``ValidationError`` listing every problem of an attach body."""
    problems: list[str] = []
    try:
        validate_compute_name(name)
    except ValidationError as exc:
        problems.append(exc.message)
    if name == LOCAL_TARGET:
        problems.append("'local' is this machine, built in: it cannot be attached")
    if not isinstance(body, dict):
        raise ValidationError("The attach body must be a JSON object", details=problems)
    kind = body.get("type", "Kubernetes")
    if kind not in ("Kubernetes", "AKS"):
        problems.append(f"type must be 'Kubernetes' (or v1's 'AKS'), got {kind!r}")
    namespace = body.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        problems.append(f"namespace {namespace!r} is not a Kubernetes namespace name (a DNS-1123 label)")
    context = body.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        problems.append(f"context must be a non-empty string or null, got {context!r}")
    purpose = body.get("cluster_purpose") or "FastProd"
    if purpose not in CLUSTER_PURPOSES:
        problems.append(f"cluster_purpose must be one of {', '.join(CLUSTER_PURPOSES)}, got {purpose!r}")
    registry = body.get("registry") or DEFAULT_REGISTRY
    if not isinstance(registry, str) or "://" in registry or not _REGISTRY.match(registry):
        problems.append(f"registry must be a host[:port][/path] without a scheme, got {registry!r}")
    artifact_url = body.get("artifact_url")
    if artifact_url is not None and (
        not isinstance(artifact_url, str) or not artifact_url.startswith(("http://", "https://"))
    ):
        problems.append(f"artifact_url must be an http(s) URL or null, got {artifact_url!r}")
    kubeconfig = body.get("kubeconfig")
    if not isinstance(kubeconfig, str) or not kubeconfig.strip():
        problems.append("kubeconfig must be the text of a kubeconfig file")
    images = _image_options(body, problems)
    if problems:
        raise ValidationError(
            "\n".join(problems),
            details=problems,
            hint="modelhost compute attach <name> --kubeconfig FILE [--context C] [--namespace N].",
        )
    assert isinstance(kubeconfig, str) and isinstance(namespace, str) and isinstance(registry, str)
    chosen: ClusterPurpose = "DevTest" if purpose == "DevTest" else "FastProd"
    url = artifact_url.rstrip("/") if isinstance(artifact_url, str) else None
    return AttachRequest(name, namespace, context, chosen, kubeconfig, registry, url, *images)


_BUILDERS: Final = ("kaniko", "buildkit", "local")


def _credentials(body: dict[str, Any], key: str, problems: list[str]) -> tuple[str, str] | None:
    raw = body.get(key)
    if raw is None:
        return None
    user = raw.get("username") if isinstance(raw, dict) else None
    password = raw.get("password") if isinstance(raw, dict) else None
    if not isinstance(user, str) or not user or not isinstance(password, str) or not password:
        # never the value: it holds a password
        problems.append(f"{key} must be null or {{'username': str, 'password': str}}, both non-empty")
        return None
    return user, password


def _image_options(
    body: dict[str, Any], problems: list[str]
) -> tuple[str | None, bool, str | None, tuple[str, str] | None, tuple[str, str] | None]:
    """The environment-image fields of an attach body: shared registry, insecure flag, builder and
    the two registries' credentials."""
    shared = body.get("shared_registry")
    if shared is not None and (not isinstance(shared, str) or "://" in shared or not _REGISTRY.match(shared)):
        problems.append(
            f"shared_registry must be null or a host[:port][/path] without a scheme, got {shared!r}"
        )
    insecure = body.get("registry_insecure", False)
    if not isinstance(insecure, bool):
        problems.append(f"registry_insecure must be true or false, got {insecure!r}")
    builder = body.get("builder")
    if builder is not None and builder not in _BUILDERS:
        problems.append(f"builder must be null or one of {', '.join(_BUILDERS)}, got {builder!r}")
    return (
        shared if isinstance(shared, str) else None,
        insecure is True,
        builder if isinstance(builder, str) else None,
        _credentials(body, "registry_credentials", problems),
        _credentials(body, "shared_registry_credentials", problems),
    )


@dataclass(frozen=True)
class KubeconfigView:
    """What modelhost reads from a kubeconfig: the chosen context and the server it points at."""

    context: str
    server: str
    config: dict[str, Any]


def _named(config: Mapping[str, Any], section: str, name: object) -> dict[str, Any] | None:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            inner = entry.get(section[:-1])
            return inner if isinstance(inner, dict) else None
    return None


def read_kubeconfig(text: str, context: str | None) -> KubeconfigView:
    """Parse a kubeconfig and pick ``context`` (its current context when None)."""
    import yaml  # a server-extra dependency; imported here so the module stays light

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"The kubeconfig is not valid YAML: {exc}", hint="Pass a kubeconfig file."
        ) from exc
    if not isinstance(config, dict):
        raise ValidationError("The kubeconfig is not a YAML mapping", hint="Pass a kubeconfig file.")
    names = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
    chosen = context or config.get("current-context")
    if not chosen or chosen not in names:
        what = f"context {chosen!r} is not in it" if chosen else "it names no current-context"
        raise ValidationError(
            f"The kubeconfig has no usable context: {what} "
            f"(contexts: {', '.join(map(str, names)) or 'none'})",
            hint="Pass --context with one of the kubeconfig's contexts.",
        )
    ctx = _named(config, "contexts", chosen) or {}
    cluster = _named(config, "clusters", ctx.get("cluster")) or {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise ValidationError(
            f"Context {chosen!r} of the kubeconfig names no cluster with a server URL",
            hint="Check the context's 'cluster' entry in the kubeconfig.",
        )
    return KubeconfigView(context=str(chosen), server=server, config=config)


_FILE_KEYS = {
    "clusters": (("certificate-authority", "certificate-authority-data"),),
    "users": (("client-certificate", "client-certificate-data"), ("client-key", "client-key-data")),
}


def inline_kubeconfig_files(config: dict[str, Any], read: Callable[[str], bytes]) -> dict[str, Any]:
    """The kubeconfig with every file it refers to (CA, client certificate and key, token file)
    inlined as ``*-data``/``token``, so the copy the control plane keeps stands on its own.
    ``read`` resolves a path as the kubeconfig's own folder would (the caller's I/O)."""
    out = dict(config)
    for section, pairs in _FILE_KEYS.items():
        entries = []
        for entry in config.get(section) or []:
            inner_key = section[:-1]
            inner = dict(entry.get(inner_key) or {}) if isinstance(entry, dict) else {}
            for file_key, data_key in pairs:
                path = inner.pop(file_key, None)
                if isinstance(path, str) and path and data_key not in inner:
                    inner[data_key] = base64.b64encode(read(path)).decode()
            if section == "users":
                token_file = inner.pop("tokenFile", None)
                if isinstance(token_file, str) and token_file and "token" not in inner:
                    inner["token"] = read(token_file).decode().strip()
            entries.append({**entry, inner_key: inner} if isinstance(entry, dict) else entry)
        if section in config:
            out[section] = entries
    return out
