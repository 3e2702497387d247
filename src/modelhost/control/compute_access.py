"""What modelhost needs to be allowed to do in a cluster, and how a refusal is worded (pure).

The attach check asks the API server one ``SelfSubjectAccessReview`` per :class:`AccessCheck` and
reports every one refused. ``deploy/kubernetes/rbac.yaml`` is the Role that grants exactly these
(a unit test parses it and checks that its rules cover every check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["RBAC_MANIFEST", "AccessCheck", "missing_message", "namespace_check", "required_checks"]

RBAC_MANIFEST: Final = "deploy/kubernetes/rbac.yaml"
_ALL: Final = ("create", "get", "list", "watch", "patch", "delete")


@dataclass(frozen=True)
class AccessCheck:
    """One verb on one resource (``group`` "" is the core API); ``namespace`` None = cluster scope."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str | None = None

    @property
    def what(self) -> str:
        """``deployments/scale``, ``pods/log``, ``endpointslices.discovery.k8s.io``..."""
        name = self.resource if not self.group or self.group == "apps" else f"{self.resource}.{self.group}"
        return f"{name}/{self.subresource}" if self.subresource else name

    def describe(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "at cluster scope"
        return f"cannot {self.verb} {self.what} {where}"


def required_checks(namespace: str, *, in_cluster_build: bool = False) -> tuple[AccessCheck, ...]:
    """Everything the Kubernetes runtime and the router's discovery do in ``namespace``; with
    ``in_cluster_build`` (a target whose builder is kaniko or buildkit) also the build Jobs' rights."""

    def each(verbs: Sequence[str], resource: str, group: str = "", sub: str = "") -> list[AccessCheck]:
        return [AccessCheck(v, resource, group, sub, namespace) for v in verbs]

    return tuple(
        each(_ALL, "deployments", "apps")
        + each(("get", "patch"), "deployments", "apps", "scale")
        + each(_ALL, "services")
        + each(_ALL, "secrets")
        + each(_ALL, "configmaps")
        # patch: the pod-deletion-cost of the replica the autoscaler drained; delete: that replica
        + each(("get", "list", "watch", "patch", "delete"), "pods")
        + each(("get",), "pods", sub="log")
        + each(("list", "watch"), "events")
        + each(("list",), "replicasets", "apps")  # a rollout's events are its ReplicaSets'
        + each(("list", "watch"), "endpointslices", "discovery.k8s.io")
        # a build Job per missing environment image (runtime/image_build.py): apply, follow, retry
        + (each(_ALL, "jobs", "batch") if in_cluster_build else [])
    )


def namespace_check() -> AccessCheck:
    """Asked only when the namespace does not exist yet: attaching creates it."""
    return AccessCheck("create", "namespaces")


def missing_message(missing: Sequence[AccessCheck], namespace: str) -> tuple[str, list[str], str]:
    """``(message, details, hint)`` for the checks the API server refused."""
    details = [m.describe() for m in missing]
    message = f"The cluster refuses {len(missing)} permission(s) modelhost needs: " + "; ".join(details)
    hint = (
        f"Grant them with the Role in {RBAC_MANIFEST}: "
        f"kubectl apply -n {namespace} -f {RBAC_MANIFEST} (edit the RoleBinding's subject to the "
        "kubeconfig's user)"
    )
    if any(m.namespace is None for m in missing):
        hint += f", or create namespace {namespace} first: kubectl create namespace {namespace}"
    return message, details, hint + "."
