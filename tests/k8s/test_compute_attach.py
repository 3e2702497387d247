"""Attaching a cluster: a real control plane against the real test API server (1.20).

The permission check is the API server's own ``SelfSubjectAccessReview`` answer: the ``limited``
user has no grants (everything missing), ``admin`` is in ``system:masters`` (all present), and
``limited`` bound to the committed ``deploy/kubernetes/rbac.yaml`` Role passes: the manifest is
enough. Nothing is faked here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelhost.control.compute_access import required_checks
from modelhost.errors import NotFoundError, ValidationError
from modelhost.sdk import Workspace
from modelhost.sdk.compute import AksCompute, ComputeTarget, KubernetesCompute, LocalCompute
from tests.e2e.deploy.conftest import Plane, make_plane
from tests.support.k8s.cluster import K8sCluster
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    p = make_plane(tmp_path_factory.mktemp("attach"), tmp_path_factory.mktemp("cache"))
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


def _attach(plane: Plane, name: str, kubeconfig: Path, **body: Any) -> Any:
    return plane.client.put(
        f"/api/v1/compute/{name}", json={"kubeconfig": kubeconfig.read_text(), **body}
    )


def _apply_rbac(cluster: K8sCluster, namespace: str, user: str) -> None:
    from kubernetes import client

    docs = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/rbac.yaml").read_text()))
    with cluster.api_client() as api:
        rbac = client.RbacAuthorizationV1Api(api)
        for doc in docs:
            if doc["kind"] == "Role":
                rbac.create_namespaced_role(namespace, doc)
            else:
                doc["subjects"][0]["name"] = user
                rbac.create_namespaced_role_binding(namespace, doc)


def test_a_user_without_rights_is_told_every_missing_permission(
    plane: Plane, k8s_cluster: K8sCluster, k8s_namespace: str
) -> None:
    r = _attach(plane, "nope", k8s_cluster.kubeconfig_for("limited"), namespace=k8s_namespace)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert len(error["details"]) == len(required_checks(k8s_namespace))
    assert f"cannot patch deployments/scale in namespace {k8s_namespace}" in error["details"]
    assert f"cannot watch endpointslices.discovery.k8s.io in namespace {k8s_namespace}" in error["details"]
    assert "deploy/kubernetes/rbac.yaml" in error["hint"]
    assert plane.client.get("/api/v1/compute/nope").status_code == 404
    assert not (plane.settings.home / "secrets" / "compute" / "nope.kubeconfig").exists()


def test_the_committed_role_is_all_a_user_needs(
    plane: Plane, k8s_cluster: K8sCluster, k8s_namespace: str
) -> None:
    _apply_rbac(k8s_cluster, k8s_namespace, "limited")
    r = _attach(plane, "roled", k8s_cluster.kubeconfig_for("limited"), namespace=k8s_namespace)
    assert r.status_code == 201, r.text
    assert plane.client.delete("/api/v1/compute/roled").status_code == 200


def test_a_missing_namespace_is_created_at_attach(plane: Plane, k8s_cluster: K8sCluster) -> None:
    namespace = f"absent-{os.getpid()}"
    r = _attach(plane, "admin2", k8s_cluster.kubeconfig, namespace=namespace)
    assert r.status_code == 201, r.text
    assert r.json()["namespaceCreated"] is True
    with k8s_cluster.api_client() as api:
        from kubernetes import client

        assert client.CoreV1Api(api).read_namespace(namespace).metadata.name == namespace
    plane.client.delete("/api/v1/compute/admin2")
    k8s_cluster.delete_namespace(namespace)


def test_an_unreachable_cluster_names_the_server_and_context(plane: Plane, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken-never-shown"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "c", "user": "u"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    r = _attach(plane, "gone", path)
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert server in message and "'gone'" in message and "cannot be reached" in message
    assert "t0ken-never-shown" not in r.text


def test_admin_attaches_and_the_kubeconfig_stays_secret(
    plane: Plane, k8s_cluster: K8sCluster, k8s_namespace: str
) -> None:
    ws = Workspace(url=plane.url, token=plane.token)
    config = KubernetesCompute.attach_configuration(
        kubeconfig=k8s_cluster.kubeconfig, namespace=k8s_namespace,
        cluster_purpose=AksCompute.ClusterPurpose.DEV_TEST,
    )
    target = ComputeTarget.attach(ws, "dev", config)
    assert isinstance(target, KubernetesCompute)
    assert (target.get_status(), target.namespace, target.cluster_purpose) == (
        "Succeeded", k8s_namespace, "DevTest"
    )
    token = k8s_cluster.token_for("admin")
    for path in ("/api/v1/compute/dev", "/api/v1/compute"):
        r = plane.client.get(path)
        assert r.status_code == 200 and token not in r.text and "kubeconfig" not in r.text.lower()
    assert r.json()["value"][0]["name"] == "local"
    assert r.json()["value"][1]["kubernetesVersion"] == "v1.20.2"
    stored = plane.settings.home / "secrets" / "compute" / "dev.kubeconfig"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert "certificate-authority-data" in stored.read_text()  # the CA file was inlined by the SDK
    again = _attach(plane, "dev", k8s_cluster.kubeconfig, namespace=k8s_namespace)
    assert again.status_code == 409
    assert isinstance(ComputeTarget(ws, "local"), LocalCompute)
    with pytest.raises(ValidationError, match="cannot be detached"):
        ComputeTarget(ws, "local").detach()
    target.detach()
    assert not stored.exists()
    with pytest.raises(NotFoundError, match="ComputeTargetNotFound"):
        ComputeTarget(ws, "dev")
    ws.close()


def test_the_cli_attaches_lists_shows_and_detaches(
    plane: Plane, k8s_cluster: K8sCluster, k8s_namespace: str
) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "modelhost.cli", "compute", *args], env=plane.env,
                              capture_output=True, text=True, timeout=120, check=False)

    done = cli("attach", "viacli", "--kubeconfig", str(k8s_cluster.kubeconfig), "--namespace", k8s_namespace,
               "--purpose", "DevTest")
    assert done.returncode == 0, done.stderr
    assert f"namespace {k8s_namespace}" in done.stdout and "v1.20.2" in done.stdout
    listed = cli("list")
    assert "viacli" in listed.stdout and "local" in listed.stdout
    shown = cli("show", "viacli")
    assert k8s_cluster.server in shown.stdout and k8s_cluster.token_for("admin") not in shown.stdout
    refused = cli("attach", "nope2", "--kubeconfig", str(k8s_cluster.kubeconfig_for("limited")),
                  "--namespace", k8s_namespace)
    assert refused.returncode == 1
    assert f"cannot patch deployments/scale in namespace {k8s_namespace}" in refused.stderr
    assert cli("detach", "viacli").returncode == 0
    assert cli("show", "viacli").returncode == 1


def test_install_router_applies_its_objects_and_scales_fastprod_to_three(
    plane: Plane, k8s_cluster: K8sCluster, k8s_namespace: str
) -> None:
    from kubernetes import client

    assert _attach(plane, "routed", k8s_cluster.kubeconfig, namespace=k8s_namespace).status_code == 201
    # an image no node can pull: the objects are what is under test, not a running router
    body = {"image": "example.invalid/modelhost:0", "service_type": "ClusterIP"}
    r = plane.client.post("/api/v1/compute/routed/router", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == [
        "ServiceAccount/modelhost-router", "Role/modelhost-router", "RoleBinding/modelhost-router",
        "Deployment/modelhost-router", "Service/modelhost-router",
    ]
    with k8s_cluster.api_client() as api:
        apps = client.AppsV1Api(api)
        scale = apps.read_namespaced_deployment_scale("modelhost-router", k8s_namespace)
        assert scale.spec.replicas == 3
        apps.patch_namespaced_deployment_scale(
            "modelhost-router", k8s_namespace, {"spec": {"replicas": 5}},
            field_manager="modelhost-autoscaler", _content_type="application/merge-patch+json",
        )
        # installing again (an upgrade) keeps what the scaler set
        assert plane.client.post("/api/v1/compute/routed/router", json=body).status_code == 200
        assert apps.read_namespaced_deployment_scale("modelhost-router", k8s_namespace).spec.replicas == 5
    assert plane.client.delete("/api/v1/compute/routed").status_code == 200
