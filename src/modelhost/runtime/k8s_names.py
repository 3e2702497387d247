"""Names, labels and fixed places of modelhost's Kubernetes objects (pure; see docs/kubernetes-render.md).

Every object of a service is found by the labels ``app.kubernetes.io/managed-by=modelhost`` and
``modelhost.io/service=<name>``; the replica pods of one generation additionally carry
``modelhost.io/generation=<n>``. Names derive from the v1 service name (``^[a-z]([-a-z0-9]*[a-z0-9])?$``,
3..32 characters), so every derived name stays a DNS-1123 label of at most 63 characters::

    modelhost-svc-<service>     ConfigMap   the anchor every other object is owned by
    modelhost-keys-<service>    Secret      primary/secondary keys (read by the router only)
    modelhost-<service>         Service     headless, selects the replicas of every generation
    <service>-g<generation>     Deployment  one per generation
    modelhost-build-<hash[:16]> ConfigMap + Job   the in-cluster build of one environment image
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from modelhost.errors import ValidationError
from modelhost.spec.names import validate_service_name

__all__ = [
    "APP_ROOT",
    "FIELD_MANAGER",
    "LABEL_COMPONENT",
    "LABEL_ENVIRONMENT",
    "LABEL_GENERATION",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_PART_OF",
    "LABEL_SERVICE",
    "MANAGED_BY",
    "REPLICA_APP",
    "SCALE_FIELD_MANAGER",
    "SCORING_PORT",
    "anchor_name",
    "build_name",
    "deployment_name",
    "discovery_service_name",
    "keys_secret_name",
    "object_labels",
    "parse_deployment_name",
    "replica_labels",
    "replica_selector",
    "service_selector",
    "validate_dns_label",
    "validate_labels",
    "validate_namespace",
]

APP_ROOT = "/var/azureml-app"
"""Where the snapshot and the models sit in a replica (``AML_APP_ROOT``), as in v1's containers."""
SCORING_PORT = 5001
FIELD_MANAGER = "modelhost"
"""The field manager of every server-side apply of rendered objects."""
SCALE_FIELD_MANAGER = "modelhost-autoscaler"
"""The field manager of ``scale`` subresource patches: it alone owns ``spec.replicas``."""

LABEL_NAME = "app.kubernetes.io/name"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_SERVICE = "modelhost.io/service"
LABEL_GENERATION = "modelhost.io/generation"
LABEL_ENVIRONMENT = "modelhost.io/environment"
MANAGED_BY = "modelhost"
REPLICA_APP = "modelhost-replica"

_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DEPLOYMENT_RE = re.compile(r"(?P<service>[a-z]([-a-z0-9]*[a-z0-9])?)-g(?P<generation>0|[1-9][0-9]*)")


def validate_dns_label(value: str, what: str) -> str:
    """Return ``value`` if it is a DNS-1123 label (what Kubernetes names most objects), else raise."""
    if len(value) > 63 or _DNS_LABEL_RE.fullmatch(value) is None:
        raise ValidationError(
            f"{what} {value!r} is not a valid Kubernetes name: it must be at most 63 lowercase letters, "
            "digits or '-', starting and ending with a letter or digit",
            hint=f"Choose a {what} like 'modelhost' or 'ml-serving'.",
        )
    return value


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if Kubernetes accepts it (v1's NAMESPACE_REGEX), else raise."""
    return validate_dns_label(namespace, "namespace")


def _check_label_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    ok = 0 < len(name) <= 63 and _LABEL_NAME_RE.fullmatch(name) is not None
    if slash:
        ok = ok and 0 < len(prefix) <= 253 and _DNS_SUBDOMAIN_RE.fullmatch(prefix) is not None
    if not ok:
        raise ValidationError(
            f"label key {key!r} is not valid in Kubernetes",
            hint="Use '[prefix/]name' with a DNS-subdomain prefix and a name of at most 63 letters, "
            "digits, '-', '_' or '.'.",
        )


def _check_label_value(key: str, value: str) -> None:
    if len(value) > 63 or _LABEL_NAME_RE.fullmatch(value) is None:
        raise ValidationError(
            f"label {key}={value!r} has a value Kubernetes refuses",
            hint="Label values have at most 63 letters, digits, '-', '_' or '.', and start and end "
            "with a letter or digit.",
        )


def validate_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``labels`` after checking every key and value against Kubernetes' rules."""
    for key, value in labels.items():
        _check_label_key(key)
        _check_label_value(key, value)
    return dict(labels)


def _service(service: str) -> str:
    validate_service_name(service)
    return service


def anchor_name(service: str) -> str:
    """The ConfigMap that owns every other object of ``service`` (delete it to delete them all)."""
    return f"modelhost-svc-{_service(service)}"


def keys_secret_name(service: str) -> str:
    return f"modelhost-keys-{_service(service)}"


def discovery_service_name(service: str) -> str:
    """The headless Service whose EndpointSlices list the replicas of every generation."""
    return f"modelhost-{_service(service)}"


def deployment_name(service: str, generation: int) -> str:
    """``<service>-g<generation>``: at most 32 + 2 + 29 characters (a DNS-1123 label)."""
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValidationError(
            f"generation {generation!r} of service {service!r} is not an integer >= 0",
            hint="Generations count the deployments of a service: 0, 1, 2, ...",
        )
    return validate_dns_label(f"{_service(service)}-g{generation}", "deployment name")


def parse_deployment_name(name: str) -> tuple[str, int] | None:
    """``(service, generation)`` for a name :func:`deployment_name` made, else None.

    Unambiguous: a service name cannot end in ``-g<digits>`` *and* be followed by one, because the
    generation is the last ``-g<digits>`` of the name. Pod names (``<deployment>-<hash>-<id>``) do not parse.
    """
    match = _DEPLOYMENT_RE.fullmatch(name)
    if match is None:
        return None
    return match.group("service"), int(match.group("generation"))


def build_name(env_hash: str) -> str:
    """The build Job and its context ConfigMap: ``modelhost-build-<first 16 hex of the hash>``."""
    return f"modelhost-build-{env_hash[:16]}"


def object_labels(service: str, component: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels of every object of ``service``; ``extra`` (the operator's) never override ours."""
    return {
        **(extra or {}),
        LABEL_PART_OF: MANAGED_BY,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: component,
        LABEL_SERVICE: _service(service),
    }


def service_selector(service: str) -> dict[str, str]:
    """Selects the replica pods of ``service``, every generation (the headless Service's selector)."""
    return {LABEL_NAME: REPLICA_APP, LABEL_SERVICE: _service(service)}


def replica_selector(service: str, generation: int) -> dict[str, str]:
    """Selects the replica pods of one generation (a Deployment's immutable selector)."""
    return {**service_selector(service), LABEL_GENERATION: str(generation)}


def replica_labels(service: str, generation: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The labels of a generation's Deployment and of its pods."""
    return {**object_labels(service, "replica", extra), **replica_selector(service, generation)}
