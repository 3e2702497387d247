"""v1's ``azureml.core.compute`` for modelhost: compute targets a service can be deployed to.

``local`` (this machine) is built in; a Kubernetes cluster is attached with its kubeconfig::

    from modelhost.sdk.compute import ComputeTarget, KubernetesCompute   # or v1's AksCompute

    config = KubernetesCompute.attach_configuration(kubeconfig="~/.kube/config", namespace="ml",
                                                    cluster_purpose=AksCompute.ClusterPurpose.DEV_TEST)
    target = ComputeTarget.attach(ws, "k8s-dev", config)
    service = Model.deploy(ws, "svc", [model], inference_config, deployment_config,
                           deployment_target=target)

Attaching is checked by the control plane (the cluster answers; the kubeconfig's user has every
permission modelhost uses) and is done when ``attach`` returns. The kubeconfig is sent once, with
the files it refers to inlined, and is never returned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelhost.errors import ValidationError
from modelhost.sdk.exceptions import ComputeTargetException  # v1's name for a lookup error
from modelhost.sdk.ssl import SslConfiguration, SslEnabling, apply_router_tls
from modelhost.spec.compute import (
    CLUSTER_PURPOSES,
    DEFAULT_NAMESPACE,
    LOCAL_TARGET,
    inline_kubeconfig_files,
    validate_compute_name,
)

if TYPE_CHECKING:
    from modelhost.sdk.workspace import Workspace


__all__ = [
    "AksCompute",
    "AksUpdateConfiguration",
    "ComputeTarget",
    "ComputeTargetException",
    "KubernetesAttachConfiguration",
    "KubernetesCompute",
    "LocalCompute",
]

_AZURE_ARGS = ("resource_group", "cluster_name", "resource_id")


def _default_kubeconfig() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first or "~/.kube/config").expanduser()


def read_kubeconfig_file(path: str | os.PathLike[str] | None) -> str:
    """The kubeconfig's text with every file it names (relative to its folder) inlined."""
    import yaml

    file = Path(path).expanduser() if path is not None else _default_kubeconfig()
    try:
        config = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ValidationError(
            f"Cannot read kubeconfig {file}: {exc.strerror}",
            hint="Pass kubeconfig='path/to/kubeconfig' (default: $KUBECONFIG, then ~/.kube/config).",
        ) from exc
    if not isinstance(config, dict):
        raise ValidationError(f"Kubeconfig {file} is not a YAML mapping", hint="Pass a kubeconfig file.")

    def read(name: str) -> bytes:
        target = (file.parent / Path(name).expanduser()).resolve()
        try:
            return target.read_bytes()
        except OSError as exc:
            raise ValidationError(
                f"Kubeconfig {file} refers to {name}, which cannot be read: {exc.strerror}",
                hint="Fix the path in the kubeconfig, or embed the data (kubectl config view --flatten).",
            ) from exc

    return str(yaml.safe_dump(inline_kubeconfig_files(config, read), sort_keys=False))


class KubernetesAttachConfiguration(SslEnabling):
    """What ``ComputeTarget.attach`` sends: built by ``KubernetesCompute.attach_configuration``.

    v1's ``enable_ssl(...)`` (from :class:`~modelhost.sdk.ssl.SslEnabling`) is applied, after the
    attach succeeded, to the workspace's router: the front door of the cluster's services."""

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        cluster_purpose: str | None = None,
        registry: str | None = None,
        artifact_url: str | None = None,
        **images: Any,
    ) -> None:
        purpose = cluster_purpose or AksCompute.ClusterPurpose.FAST_PROD
        if purpose not in CLUSTER_PURPOSES:
            raise ValidationError(
                f"Invalid cluster_purpose {cluster_purpose!r}: expected one of {', '.join(CLUSTER_PURPOSES)}",
                hint="Use AksCompute.ClusterPurpose.FAST_PROD or AksCompute.ClusterPurpose.DEV_TEST.",
            )
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace
        self.cluster_purpose = purpose
        self.registry = registry
        self.artifact_url = artifact_url
        # environment images (docs/kubernetes.md): shared_registry, registry_insecure, builder,
        # registry_credentials / shared_registry_credentials ({"username", "password"}: secrets)
        self.images = {k: v for k, v in images.items() if v is not None}

    def validate_configuration(self) -> None:
        """v1 name; the configuration is checked when built and, completely, when attached."""

    def to_body(self) -> dict[str, Any]:
        """The attach body (reads the kubeconfig now; it is a secret: never logged)."""
        return {
            "type": "Kubernetes",
            "kubeconfig": read_kubeconfig_file(self.kubeconfig),
            "context": self.context,
            "namespace": self.namespace,
            "cluster_purpose": self.cluster_purpose,
            "registry": self.registry,
            "artifact_url": self.artifact_url,
            **self.images,
        }

    def __repr__(self) -> str:
        return (
            f"KubernetesAttachConfiguration(kubeconfig={str(self.kubeconfig)!r}, context={self.context!r}, "
            f"namespace={self.namespace!r}, cluster_purpose={self.cluster_purpose!r})"
        )


class ComputeTarget:
    """A compute target of the workspace. ``ComputeTarget(ws, name)`` fetches it (v1), returning
    a :class:`KubernetesCompute` or :class:`LocalCompute`; an unknown name raises
    ``ComputeTargetException`` (a ``NotFoundError``)."""

    type: ClassVar[str] = ""

    def __new__(cls, workspace: Workspace, name: str) -> ComputeTarget:
        validate_compute_name(name)
        data = workspace._client.get(f"/api/v1/compute/{name}")
        return _from_payload(workspace, data)

    def __init__(self, workspace: Workspace, name: str) -> None:
        pass  # __new__ built it from the control plane's answer

    def _fill(self, workspace: Workspace, data: dict[str, Any]) -> None:
        self.workspace = workspace
        self.name: str = data["name"]
        self.provisioning_state: str = data.get("provisioningState", "Succeeded")
        self._data = dict(data)

    @staticmethod
    def attach(
        workspace: Workspace, name: str, attach_configuration: KubernetesAttachConfiguration
    ) -> ComputeTarget:
        """Attach a cluster (v1's ``ComputeTarget.attach``); done when it returns."""
        validate_compute_name(name)
        if not isinstance(attach_configuration, KubernetesAttachConfiguration):
            raise ValidationError(
                f"attach_configuration must come from KubernetesCompute.attach_configuration(...), "
                f"got {type(attach_configuration).__name__}",
                hint="Build it with KubernetesCompute.attach_configuration(kubeconfig=..., namespace=...).",
            )
        data = workspace._client.request(
            "PUT", f"/api/v1/compute/{name}", json=attach_configuration.to_body()
        )
        if attach_configuration.ssl_configuration is not None:
            apply_router_tls(workspace, attach_configuration.ssl_configuration)
        return _from_payload(workspace, data)

    def update(self, update_configuration: AksUpdateConfiguration) -> None:
        """v1's ``AksCompute.update(AksUpdateConfiguration(ssl_configuration=...))``: the TLS
        certificate of the front door (the workspace's router) is replaced without a restart."""
        if not isinstance(update_configuration, AksUpdateConfiguration):
            raise ValidationError(
                f"update() takes an AksUpdateConfiguration, got {type(update_configuration).__name__}",
                hint="ComputeTarget.update(AksUpdateConfiguration(ssl_configuration=SslConfiguration(...))).",
            )
        if update_configuration.ssl_configuration is not None:
            apply_router_tls(self.workspace, update_configuration.ssl_configuration)

    @staticmethod
    def list(workspace: Workspace) -> list[ComputeTarget]:
        answer = workspace._client.get("/api/v1/compute")
        return [_from_payload(workspace, item) for item in answer["value"]]

    def get_status(self) -> str:
        """v1: the provisioning state (``Succeeded`` for any attached cluster)."""
        return self.provisioning_state

    def wait_for_completion(self, show_output: bool = False) -> None:
        """v1 name: attaching finished when ``attach`` returned."""
        if show_output:
            print(f"Compute target {self.name}: {self.provisioning_state}")

    def refresh_state(self) -> None:
        self._fill(self.workspace, self.workspace._client.get(f"/api/v1/compute/{self.name}"))

    def serialize(self) -> dict[str, Any]:
        return dict(self._data)

    def detach(self) -> None:
        self.workspace._client.delete(f"/api/v1/compute/{self.name}")

    def delete(self) -> None:
        raise ValidationError(
            f"modelhost does not delete clusters: {self.name} is attached, not provisioned by modelhost",
            hint="Use detach() to forget it; delete the cluster with its own tools.",
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, provisioning_state={self.provisioning_state!r})"


class _ClusterPurpose:
    FAST_PROD = "FastProd"
    DEV_TEST = "DevTest"


class KubernetesCompute(ComputeTarget):
    """An attached Kubernetes cluster (v1's ``AksCompute`` is the same class)."""

    type: ClassVar[str] = "Kubernetes"
    ClusterPurpose = _ClusterPurpose

    @property
    def namespace(self) -> str:
        return str(self._data.get("namespace"))

    @property
    def cluster_purpose(self) -> str:
        return str(self._data.get("clusterPurpose"))

    @staticmethod
    def attach_configuration(
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        cluster_purpose: str | None = None,
        registry: str | None = None,
        artifact_url: str | None = None,
        shared_registry: str | None = None,
        registry_insecure: bool | None = None,
        builder: str | None = None,
        registry_credentials: Mapping[str, str] | None = None,
        shared_registry_credentials: Mapping[str, str] | None = None,
        **v1_args: Any,
    ) -> KubernetesAttachConfiguration:
        """``kubeconfig`` defaults to ``$KUBECONFIG`` then ``~/.kube/config``; ``context`` to its
        current one. v1's Azure arguments (``resource_group``, ``cluster_name``, ``resource_id``)
        are refused with their modelhost equivalent."""
        azure = [k for k in v1_args if k in _AZURE_ARGS and v1_args[k] is not None]
        if azure:
            cluster = v1_args.get("cluster_name") or "<cluster>"
            raise ValidationError(
                f"AksCompute.attach_configuration({', '.join(azure)}=...) names an Azure resource; "
                "modelhost attaches any Kubernetes cluster by its kubeconfig",
                hint=(
                    f"Use attach_configuration(kubeconfig='~/.kube/config', context='{cluster}') "
                    f"(for AKS: az aks get-credentials -g <resource_group> -n {cluster} first)."
                ),
            )
        unknown = sorted(set(v1_args) - set(_AZURE_ARGS))
        if unknown:
            raise ValidationError(
                f"attach_configuration() got unexpected argument(s) {', '.join(unknown)}",
                hint="Arguments: kubeconfig, context, namespace, cluster_purpose, registry, artifact_url.",
            )
        return KubernetesAttachConfiguration(
            kubeconfig, context, namespace, cluster_purpose, registry, artifact_url,
            shared_registry=shared_registry, registry_insecure=registry_insecure, builder=builder,
            registry_credentials=dict(registry_credentials or {}) or None,
            shared_registry_credentials=dict(shared_registry_credentials or {}) or None,
        )

    @staticmethod
    def provisioning_configuration(*args: Any, **kwargs: Any) -> KubernetesAttachConfiguration:
        raise ValidationError(
            "modelhost does not create clusters (AksCompute.provisioning_configuration)",
            hint="Create the cluster with its own tools, then attach it: "
            "ComputeTarget.attach(ws, name, AksCompute.attach_configuration(kubeconfig=...)).",
        )


AksCompute = KubernetesCompute


class AksUpdateConfiguration:
    """v1's update of a compute target; only ``ssl_configuration`` applies here (the load balancer
    is the cluster's own business)."""

    def __init__(self, ssl_configuration: SslConfiguration | None = None,
                 load_balancer_type: str | None = None, load_balancer_subnet: str | None = None) -> None:
        if load_balancer_type is not None or load_balancer_subnet is not None:
            raise ValidationError(
                "load_balancer_type and load_balancer_subnet are not modelhost settings",
                hint="Expose the router with your cluster's own Service/Ingress settings "
                "(docs/kubernetes.md); pass only ssl_configuration.",
            )
        self.ssl_configuration = ssl_configuration


class LocalCompute(ComputeTarget):
    """This machine (``ComputeTarget(ws, "local")``): built in, never detached."""

    type: ClassVar[str] = "Local"

    def detach(self) -> None:
        raise ValidationError(
            "'local' is this machine: it is built in and cannot be detached",
            hint="Detach only attached clusters (ComputeTarget.list(ws)).",
        )


def _from_payload(workspace: Workspace, data: dict[str, Any]) -> ComputeTarget:
    cls: type[ComputeTarget] = LocalCompute if data.get("name") == LOCAL_TARGET else KubernetesCompute
    target = object.__new__(cls)
    target._fill(workspace, data)
    return target
