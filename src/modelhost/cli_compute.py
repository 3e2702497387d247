"""``modelhost compute``: attach, list, show and detach compute targets; install the router on one.

Registered in :mod:`modelhost.cli`, whose output and error helpers the commands import when they
run (importing them here would be circular). Never prints a kubeconfig.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

__all__ = ["compute_app"]

F = TypeVar("F", bound=Callable[..., Any])
compute_app = typer.Typer(
    help="Attach Kubernetes clusters as compute targets; list, show, detach them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
_SHOWN = (
    "name", "type", "provisioningState", "namespace", "context", "server", "clusterPurpose",
    "kubernetesVersion", "registry", "artifactUrl", "createdTime", "description",
)


def handles_errors(fn: F) -> F:
    """The CLI's error handling (one line on stderr, exit 1), looked up when the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from modelhost.cli import handles_errors as handle

        return handle(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@compute_app.command("attach")
@handles_errors
def compute_attach(
    name: Annotated[str, typer.Argument(help="The target's name (2-16 letters, digits, dashes).")],
    kubeconfig: Annotated[
        Path | None, typer.Option(help="Kubeconfig file (default $KUBECONFIG, ~/.kube/config).")
    ] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context (default: current).")] = None,
    namespace: Annotated[str, typer.Option(help="Namespace the services run in.")] = "modelhost",
    purpose: Annotated[str, typer.Option(help="FastProd (3+ router replicas) or DevTest (1).")] = "FastProd",
    registry: Annotated[
        str | None, typer.Option(help="Registry of environment images (default localhost:5000).")
    ] = None,
    artifact_url: Annotated[
        str | None, typer.Option(help="The control plane's URL as pods reach it (default: its own URL).")
    ] = None,
) -> None:
    """Check the cluster (reachable; every permission modelhost needs) and attach it."""
    from modelhost.cli import _workspace, out
    from modelhost.sdk.compute import ComputeTarget, KubernetesCompute

    config = KubernetesCompute.attach_configuration(
        kubeconfig=kubeconfig, context=context, namespace=namespace, cluster_purpose=purpose,
        registry=registry, artifact_url=artifact_url,
    )
    target = ComputeTarget.attach(_workspace(), name, config)
    data = target.serialize()
    out(f"attached {name}: {data['server']} (context {data['context']}, namespace {data['namespace']}, "
        f"Kubernetes {data['kubernetesVersion']}, {data['clusterPurpose']})")


@compute_app.command("list")
@handles_errors
def compute_list() -> None:
    """Every compute target: 'local' (this machine) and the attached clusters."""
    from modelhost.cli import _table, _workspace, show
    from modelhost.sdk.compute import ComputeTarget

    table = _table(columns=("name", "type", "state", "namespace", "server", "purpose"))
    for target in ComputeTarget.list(_workspace()):
        d = target.serialize()
        table.add_row(d["name"], d["type"], d.get("provisioningState", ""), d.get("namespace") or "-",
                      d.get("server") or "-", d.get("clusterPurpose") or "-")
    show(table)


@compute_app.command("show")
@handles_errors
def compute_show(name: Annotated[str, typer.Argument(help="The target's name.")]) -> None:
    """One compute target's details (never its kubeconfig)."""
    from modelhost.cli import _pairs_table, _workspace, show
    from modelhost.sdk.compute import ComputeTarget

    data = ComputeTarget(_workspace(), name).serialize()
    show(_pairs_table([(key, str(data[key])) for key in _SHOWN if data.get(key) is not None]))


@compute_app.command("detach")
@handles_errors
def compute_detach(name: Annotated[str, typer.Argument(help="The target's name.")]) -> None:
    """Forget an attached cluster (the cluster is untouched); refused while services run on it."""
    from modelhost.cli import _workspace, out
    from modelhost.sdk.compute import ComputeTarget

    ComputeTarget(_workspace(), name).detach()
    out(f"detached {name}")


@compute_app.command("install-router")
@handles_errors
def compute_install_router(
    name: Annotated[str, typer.Argument(help="The target's name.")],
    image: Annotated[str | None, typer.Option(help="Image with modelhost[server] installed.")] = None,
    service_type: Annotated[str, typer.Option(help="LoadBalancer, ClusterIP or NodePort.")] = "LoadBalancer",
    tls_secret: Annotated[
        str | None, typer.Option(help="A kubernetes.io/tls Secret in the namespace: serve HTTPS.")
    ] = None,
) -> None:
    """Apply the router (Deployment, Service, its ServiceAccount and Role) on an attached cluster."""
    from modelhost.cli import _workspace, out

    body = {"image": image, "service_type": service_type, "tls_secret": tls_secret}
    answer = _workspace()._client.post(f"/api/v1/compute/{name}/router", body)
    for line in answer["applied"]:
        out(f"applied {line}")
    out(f"router on {name} (namespace {answer['namespace']}, {answer['clusterPurpose']}): "
        f"{answer['replicas']} replica(s) of {answer['image']}")
