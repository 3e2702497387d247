"""``modelhost compute install``: the control plane itself in the cluster, then used through its own API.

Real parts: the local control plane that installs (subprocess, as clients start it), the real test
API server with controller-manager and scheduler, the installed control plane (``python -m
modelhost.control`` run by the node agent, the stand-in kubelet, from the image
``modelhost/modelhost:<tag>`` = this venv), its in-cluster configuration (the service-account token
the API server's admission mounts, ``KUBERNETES_SERVICE_HOST`` set by the agent as a kubelet does),
the service's pods whose init container fetches the snapshot from the in-cluster control plane.

What the stand-in cannot do, and how the test goes around it (each named where it happens):
no cluster DNS and no Service IPs (no kube-proxy), so the service pods reach the in-cluster control
plane at its pod address (``--artifact-url http://$(MODELHOST_POD_IP):8790``, expanded by the
kubelet); the control plane's router child process is spawned without ``PYTHONPATH`` (so without the
agent's bind shim) and binds the host's 0.0.0.0, so it gets a free port instead of 8791.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelhost.build.environment import EnvironmentBuilder
from modelhost.spec.environment import EnvironmentSpec
from tests.e2e.deploy.conftest import Plane, aks, make_plane
from tests.support.k8s.cluster import K8sCluster
from tests.support.k8s.images import LocalImages
from tests.support.k8s.node_agent import NodeAgent
from tests.support.net import free_port, wait_until

TARGET = "kc"
SERVICE = "in-cluster-echo"
REGISTRY = "registry.test:5000/ml"


@pytest.fixture
def plane(tmp_path_factory: pytest.TempPathFactory, k8s_images: LocalImages) -> Iterator[Plane]:
    assert k8s_images.envs_dir is not None
    p = make_plane(tmp_path_factory.mktemp("install"), k8s_images.envs_dir.parent)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


def _routers(port: int) -> list[int]:
    """Pids of routers listening on ``port`` (the installed control plane's child, see the docstring)."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"modelhost.router" in argv and str(port).encode() in argv:
                found.append(int(proc.name))
    return found


def _status(plane: Plane) -> dict[str, Any]:
    r = plane.client.get(f"/api/v1/compute/{TARGET}/control")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _inside(plane: Plane, pod_ip: str, token: str, router_port: int) -> Plane:
    """A client of the installed control plane (its pod address; its router on this host's port)."""
    url = f"http://{pod_ip}:8790"
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
    settings = plane.settings.with_(router_port=router_port)
    return Plane(root=plane.root, env={}, settings=settings, token=token, url=url, client=client)


def test_install_the_control_plane_and_deploy_through_it(
    plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    r = plane.client.put(
        f"/api/v1/compute/{TARGET}",
        json={"kubeconfig": k8s_cluster.kubeconfig.read_text(), "namespace": k8s_namespace,
              "registry": REGISTRY, "cluster_purpose": "DevTest"},
    )
    assert r.status_code == 201, r.text
    assert _status(plane) == {"name": TARGET, "namespace": k8s_namespace, "installed": False,
                              "available": False}
    bad = plane.client.post(f"/api/v1/compute/{TARGET}/control", json={"storage": "hostPath"})
    assert bad.status_code == 400 and "storage" in bad.json()["error"]["message"], bad.text

    router_port = free_port()
    body = {"image": "modelhost/modelhost:test", "storage": "emptyDir",
            "artifact_url": "http://$(MODELHOST_POD_IP):8790", "router_port": router_port}
    r = plane.client.post(f"/api/v1/compute/{TARGET}/control", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["applied"] == [
        "ServiceAccount/modelhost-control", "Role/modelhost-control", "RoleBinding/modelhost-control",
        "Secret/modelhost-control-admin", "Deployment/modelhost-control", "Service/modelhost-control",
    ]
    assert answer["url"] == f"http://modelhost-control.{k8s_namespace}.svc:8790"
    # the admin token stays in a 0600 file of the installing workspace; no answer carries it
    token_file = Path(answer["tokenFile"])
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and token not in r.text
    try:
        _use_the_installed_control_plane(plane, k8s_cluster, k8s_namespace, k8s_images, token, router_port)
    finally:
        for pid in _routers(router_port):  # a real container's processes die with it; here they may not
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _use_the_installed_control_plane(
    plane: Plane, cluster: K8sCluster, namespace: str, images: LocalImages, token: str, router_port: int
) -> None:
    from kubernetes import client

    try:
        wait_until(lambda: bool(_status(plane)["available"]), 120, interval_s=0.5)
    except TimeoutError:
        raise AssertionError(f"the control plane is not available: {_status(plane)}") from None
    pod = _status(plane)["pods"][0]
    assert pod["phase"] == "Running" and pod["podIP"].startswith("127.1."), pod
    health = httpx.get(f"http://{pod['podIP']}:8790/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert httpx.get(f"http://{pod['podIP']}:8790/api/v1/workspace", timeout=10).status_code == 401

    inside = _inside(plane, pod["podIP"], token, router_port)
    try:
        # in-cluster mode: the namespace it runs in is a compute target, with no kubeconfig
        r = inside.client.get("/api/v1/compute/cluster")
        assert r.status_code == 200, r.text
        target = r.json()
        assert target["inCluster"] is True and target["namespace"] == namespace
        assert target["kubernetesVersion"].startswith("v1.20")
        assert inside.client.delete("/api/v1/compute/cluster").status_code == 400

        r = inside.client.post("/api/v1/environments", json={"name": "k8s-env", "inherit": True})
        assert r.status_code == 201, r.text
        env_hash = EnvironmentBuilder(plane.settings).spec_hash(EnvironmentSpec.inherit_current("k8s-env"))
        images.register(f"{REGISTRY}/modelhost-env:{env_hash}", Path(sys.prefix))
        model = inside.register_model("weights", b"in-cluster model")
        deployed = inside.deploy(
            SERVICE, config=aks(compute_target_name="cluster"), environment={"name": "k8s-env", "version": 1},
            models=[model],
        )
        assert deployed["state"] == "Succeeded", (deployed.get("error"), deployed["lines"][-12:])
        assert inside.service(SERVICE)["state"] == "Healthy"

        # the pod's init container fetched the snapshot and model from the in-cluster control plane
        with cluster.api_client() as api:
            pods = client.CoreV1Api(api).list_namespaced_pod(
                namespace, label_selector=f"modelhost.io/service={SERVICE}"
            ).items
        assert pods and all(p.status.phase == "Running" for p in pods)
        init = pods[0].spec.init_containers[0]
        assert any(pod["podIP"] in (e.value or "") for e in init.env or []) or any(
            pod["podIP"] in a for a in [*(init.command or []), *(init.args or [])]
        ), init

        primary, _ = inside.keys(SERVICE)
        scored = httpx.post(inside.score_url(SERVICE), json={"x": 1},
                            headers={"Authorization": f"Bearer {primary}"}, timeout=30)
        assert scored.status_code == 200 and scored.json()["version"] == "v1", scored.text

        r = inside.client.delete(f"/api/v1/services/{SERVICE}")
        assert r.status_code == 202, r.text
        assert inside.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    finally:
        inside.client.close()
    # uninstall: the pod's SIGTERM stops the control plane, which stops its router (no service left)
    with cluster.api_client() as api:
        client.AppsV1Api(api).delete_namespaced_deployment("modelhost-control", namespace)
    wait_until(lambda: not _status(plane)["installed"], 30, what="the Deployment gone")
    wait_until(lambda: not _routers(router_port), 60, what="the in-cluster router stopped")


def test_cli_install_shows_progress_and_names_why_it_is_not_available(
    plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str
) -> None:
    from typer.testing import CliRunner

    from modelhost.cli import app

    r = plane.client.put(
        f"/api/v1/compute/{TARGET}",
        json={"kubeconfig": k8s_cluster.kubeconfig.read_text(), "namespace": k8s_namespace},
    )
    assert r.status_code == 201, r.text
    # an image no node can pull: the installer must say so instead of waiting silently
    args = ["compute", "install", TARGET, "--image", "example.invalid/modelhost:0", "--storage", "emptyDir",
            "--timeout", "8"]
    result = CliRunner().invoke(app, args, env=plane.env)
    assert result.exit_code == 1, result.output
    assert "applied Deployment/modelhost-control" in result.output
    assert "ErrImagePull" in result.output or "ImagePullBackOff" in result.output, result.output
    assert "not available after 8 s" in result.output
    token = (plane.settings.home / "secrets" / "compute" / f"{TARGET}.control-token").read_text().strip()
    assert token not in result.output
