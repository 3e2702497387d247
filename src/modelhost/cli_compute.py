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
    "kubernetesVersion", "registry", "artifactUrl", "sharedRegistry", "builder", "createdTime", "description",
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
    shared_registry: Annotated[
        str | None, typer.Option(help="A registry looked in after the cluster's (never pushed to).")
    ] = None,
    builder: Annotated[
        str | None, typer.Option(help="Build missing environment images: kaniko, buildkit (a Job) or local.")
    ] = None,
    registry_insecure: Annotated[
        bool, typer.Option(help="The cluster's registry speaks plain HTTP (lookups, pushes).")
    ] = False,
    registry_user: Annotated[
        str | None, typer.Option(help="Registry user; the password from $MODELHOST_REGISTRY_PASSWORD.")
    ] = None,
    shared_registry_user: Annotated[
        str | None,
        typer.Option(help="Shared registry user; the password from $MODELHOST_SHARED_REGISTRY_PASSWORD."),
    ] = None,
) -> None:
    """Check the cluster (reachable; every permission modelhost needs) and attach it."""
    import os

    from modelhost.cli import _workspace, out
    from modelhost.sdk.compute import ComputeTarget, KubernetesCompute

    def credentials(user: str | None, variable: str) -> dict[str, str] | None:
        # a password never goes on the command line (ps shows it): the environment holds it
        return None if user is None else {"username": user, "password": os.environ.get(variable, "")}

    config = KubernetesCompute.attach_configuration(
        kubeconfig=kubeconfig, context=context, namespace=namespace, cluster_purpose=purpose,
        registry=registry, artifact_url=artifact_url, shared_registry=shared_registry, builder=builder,
        registry_insecure=registry_insecure or None,
        registry_credentials=credentials(registry_user, "MODELHOST_REGISTRY_PASSWORD"),
        shared_registry_credentials=credentials(shared_registry_user, "MODELHOST_SHARED_REGISTRY_PASSWORD"),
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


def _control_summary(status: dict[str, Any]) -> str:
    """One progress line: each pod's phase and why it waits."""
    pods = status.get("pods") or []
    if not pods:
        return "waiting for the control plane's pod"
    return "; ".join(f"{p['name']}: {p['phase']}" + "".join(f" ({w})" for w in p["waiting"]) for p in pods)


@compute_app.command("install")
@handles_errors
def compute_install(
    name: Annotated[str, typer.Argument(help="The target's name.")],
    image: Annotated[str | None, typer.Option(help="Image with modelhost[server] installed.")] = None,
    storage: Annotated[
        str, typer.Option(help="pvc (kept across restarts) or emptyDir (trials: lost with the pod).")
    ] = "pvc",
    size: Annotated[str, typer.Option(help="Size of the PersistentVolumeClaim.")] = "10Gi",
    storage_class: Annotated[str | None, typer.Option(help="StorageClass of the claim.")] = None,
    database_secret: Annotated[
        str | None, typer.Option(help="Secret whose key 'url' is a PostgreSQL URL (default: SQLite).")
    ] = None,
    artifact_url: Annotated[
        str | None, typer.Option(help="Its URL as service pods reach it (default: its Service's DNS name).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to be available (0: don't).")] = 300,
) -> None:
    """Install (or update) the control plane itself on an attached cluster and wait until it serves."""
    import time

    from modelhost.cli import _workspace, out
    from modelhost.errors import ModelhostError

    client = _workspace()._client
    body = {"image": image, "storage": storage, "size": size, "storage_class": storage_class,
            "database_secret": database_secret, "artifact_url": artifact_url}
    answer = client.post(f"/api/v1/compute/{name}/control", {k: v for k, v in body.items() if v is not None})
    for line in answer["applied"]:
        out(f"applied {line}")
    deadline, last = time.monotonic() + timeout, ""
    while timeout > 0:
        status = client.get(f"/api/v1/compute/{name}/control")
        if status["available"]:
            out("the control plane is available")
            break
        line = _control_summary(status)
        if line != last:
            out(line)
            last = line
        if time.monotonic() > deadline:
            raise ModelhostError(
                f"The control plane on {name} is not available after {timeout:g} s: {line}",
                hint=f"kubectl -n {answer['namespace']} describe pod "
                "-l app.kubernetes.io/name=modelhost-control",
            )
        time.sleep(1.0)
    out(f"in the cluster: {answer['url']} (compute target '{answer['targetName']}' deploys into "
        f"namespace {answer['namespace']})")
    out(f"from this machine: {answer['portForward']}")
    out(f"admin token: {answer['tokenFile']} (e.g. Workspace(url='http://127.0.0.1:8790', "
        "token=open(FILE).read().strip()))")
    if answer["storage"] == "emptyDir":
        out("storage emptyDir: models, environments and services are lost whenever the pod is replaced")
