"""The in-cluster router, really running as a pod: routes, keys and tokens reach it from the control plane.

Real parts: the control plane (subprocess), the test cluster's API server, controller-manager and
scheduler, ``modelhost compute install-router`` and the router it installs, running
``python -m modelhost.router --discover kubernetes`` with the in-cluster configuration (its own
ServiceAccount token, mounted by the real ServiceAccount admission) as the node agent's process.
The one stand-in is the node agent itself (no container runtime here): the router's image
``modelhost/modelhost:<tag>`` is this venv, and a pod's address is 127.1.x.y. Every score below goes
to the router POD's address, never to the control plane's local router.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelhost.build.environment import EnvironmentBuilder
from modelhost.runtime.k8s_render_router import ROUTER_NAME, ROUTER_PORT
from modelhost.spec.environment import EnvironmentSpec
from tests.e2e.deploy.conftest import Plane, aks, make_plane
from tests.support.k8s.cluster import K8sCluster
from tests.support.k8s.images import LocalImages
from tests.support.k8s.node_agent import NodeAgent
from tests.support.net import wait_until

TARGET = "incluster"
REGISTRY = "registry.test:5000/ml"


@pytest.fixture
def plane(tmp_path_factory: pytest.TempPathFactory, k8s_images: LocalImages) -> Iterator[Plane]:
    assert k8s_images.envs_dir is not None
    p = make_plane(tmp_path_factory.mktemp("k8s-router-pod"), k8s_images.envs_dir.parent)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


def router_pod_urls(cluster: K8sCluster, namespace: str) -> list[str]:
    """The base URL of every ready router pod, by its pod IP."""
    from kubernetes import client

    with cluster.api_client() as api:
        pods = client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/name={ROUTER_NAME}").items
    ready = [p for p in pods if p.status.pod_ip and not p.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
    return [f"http://{p.status.pod_ip}:{ROUTER_PORT}" for p in ready]


def attach_and_install(plane: Plane, cluster: K8sCluster, namespace: str, purpose: str) -> None:
    r = plane.client.put(
        f"/api/v1/compute/{TARGET}",
        json={"kubeconfig": cluster.kubeconfig.read_text(), "namespace": namespace,
              "registry": REGISTRY, "cluster_purpose": purpose},
    )
    assert r.status_code == 201, r.text
    r = plane.client.post(f"/api/v1/compute/{TARGET}/router", json={"service_type": "ClusterIP"})
    assert r.status_code == 200, r.text


def register_env(plane: Plane, images: LocalImages) -> dict[str, Any]:
    r = plane.client.post("/api/v1/environments", json={"name": "pod-env", "inherit": True})
    assert r.status_code == 201, r.text
    env_hash = EnvironmentBuilder(plane.settings).spec_hash(EnvironmentSpec.inherit_current("pod-env"))
    images.register(f"{REGISTRY}/modelhost-env:{env_hash}", Path(sys.prefix))
    return {"name": "pod-env", "version": 1}


def _score(url: str, service: str, auth: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {auth}"} if auth is not None else {}
    return httpx.post(f"{url}/api/v1/service/{service}/score", json={"x": 1}, headers=headers, timeout=30)


def _eventually(check: Any, what: str, timeout_s: float = 30) -> None:
    wait_until(check, timeout_s, what=what)


def test_router_pod_serves_routes_keys_and_tokens(
    plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    attach_and_install(plane, k8s_cluster, k8s_namespace, "DevTest")
    env = register_env(plane, k8s_images)
    _eventually(lambda: len(router_pod_urls(k8s_cluster, k8s_namespace)) == 1, "the router pod ready", 90)
    (router,) = router_pod_urls(k8s_cluster, k8s_namespace)
    assert httpx.get(f"{router}/-/health", timeout=5).status_code == 200

    # key auth through the router pod
    done = plane.deploy("keyed", config=aks(compute_target_name=TARGET), environment=env)
    assert done["state"] == "Succeeded", (done.get("error"), done["lines"][-12:])
    primary, secondary = plane.keys("keyed")
    _eventually(lambda: _score(router, "keyed", primary).status_code == 200, "the pod routes keyed")
    assert _score(router, "keyed", "wrong").status_code == 401
    assert _score(router, "keyed", None).status_code == 401

    # regenerating the primary key: the router pod refuses the old one within seconds
    r = plane.client.post("/api/v1/services/keyed/regenerateKeys", json={"keyType": "Primary"})
    assert r.status_code == 202, r.text
    assert plane.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    new_primary, _ = plane.keys("keyed")
    assert new_primary != primary
    _eventually(lambda: _score(router, "keyed", primary).status_code == 401, "the old key refused", 10)
    assert _score(router, "keyed", new_primary).status_code == 200
    assert _score(router, "keyed", secondary).status_code == 200

    # a configuration-only update of a route setting (auth off) reaches the pod without a redeploy
    r = plane.client.patch("/api/v1/services/keyed", json={"changes": {"auth_enabled": False}})
    assert r.status_code == 202, r.text
    updated = plane.wait(r.json()["operation"]["id"])
    assert updated["state"] == "Succeeded", updated["lines"][-8:]
    assert any("configuration only" in line for line in updated["lines"]), updated["lines"]
    _eventually(lambda: _score(router, "keyed", None).status_code == 200, "auth off applied", 10)

    # token auth: the control plane's token is accepted, another service's token is not
    config = aks(compute_target_name=TARGET, token_auth_enabled=True, auth_enabled=False)
    for name in ("tokened", "other"):
        done = plane.deploy(name, config=config, environment=env)
        assert done["state"] == "Succeeded", (done.get("error"), done["lines"][-12:])

    def token(service: str) -> str:
        r = plane.client.post(f"/api/v1/services/{service}/token")
        assert r.status_code == 200, r.text
        return str(r.json()["accessToken"])

    mine, theirs = token("tokened"), token("other")
    _eventually(lambda: _score(router, "tokened", mine).status_code == 200, "the token accepted")
    refused = _score(router, "tokened", theirs)
    assert refused.status_code == 401, refused.text
    assert _score(router, "tokened", primary).status_code == 401  # a key is no token

    # rotating the signing keys: a token signed by the new key is accepted by the pod too
    assert plane.client.post("/api/v1/signing-keys/rotate").status_code in (200, 201)
    fresh = token("tokened")
    _eventually(lambda: _score(router, "tokened", fresh).status_code == 200, "the new key's token", 10)

    # the cluster holds only public keys: nothing PEM-private in the token keys ConfigMap
    from kubernetes import client

    with k8s_cluster.api_client() as api:
        cm = client.CoreV1Api(api).read_namespaced_config_map("modelhost-token-keys", k8s_namespace)
    assert "PRIVATE" not in str(cm.data) and len(cm.data["keys"]) > 10


@pytest.fixture
def loaded_plane(tmp_path_factory: pytest.TempPathFactory, k8s_images: LocalImages,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Plane]:
    """A control plane whose router scaler counts one held request as a full router pod, so that a
    few slow requests are real load enough on this 2-core machine (the load itself is not faked)."""
    monkeypatch.setenv("MODELHOST_ROUTER_CAPACITY", "1")
    monkeypatch.setenv("MODELHOST_ROUTER_MAX_REPLICAS", "5")
    assert k8s_images.envs_dir is not None
    p = make_plane(tmp_path_factory.mktemp("k8s-router-scale"), k8s_images.envs_dir.parent)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


def _router_scale(cluster: K8sCluster, namespace: str) -> tuple[int, set[str], int]:
    """The router Deployment's ``spec.replicas`` through ``scale``, the managers of that field, and
    how many HorizontalPodAutoscalers the namespace has."""
    from kubernetes import client

    with cluster.api_client() as api:
        apps = client.AppsV1Api(api)
        replicas = int(apps.read_namespaced_deployment_scale(ROUTER_NAME, namespace).spec.replicas)
        deployment = apps.read_namespaced_deployment(ROUTER_NAME, namespace)
        hpas = client.AutoscalingV1Api(api).list_namespaced_horizontal_pod_autoscaler(namespace).items
    managers = {m.manager for m in deployment.metadata.managed_fields or []
                if "f:replicas" in ((m.fields_v1 or {}).get("f:spec") or {})}
    return replicas, managers, len(hpas)


def test_fastprod_router_starts_with_three_and_scales_up_by_its_own_load(
    loaded_plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str,
    k8s_images: LocalImages,
) -> None:
    plane = loaded_plane
    attach_and_install(plane, k8s_cluster, k8s_namespace, "FastProd")
    assert _router_scale(k8s_cluster, k8s_namespace)[0] == 3
    _eventually(lambda: len(router_pod_urls(k8s_cluster, k8s_namespace)) == 3, "three router pods ready", 120)
    env = register_env(plane, k8s_images)
    # requests wait in the router for the one replica instead of failing after v1's 500 ms
    config = aks(compute_target_name=TARGET, max_request_wait_time=20000)
    done = plane.deploy("slow", config=config, environment=env)
    assert done["state"] == "Succeeded", (done.get("error"), done["lines"][-12:])
    key, _ = plane.keys("slow")
    router = router_pod_urls(k8s_cluster, k8s_namespace)[0]
    _eventually(lambda: _score(router, "slow", key).status_code == 200, "the pod routes slow")
    # idle routers stay at the floor of three
    assert _router_scale(k8s_cluster, k8s_namespace)[0] == 3

    stop = threading.Event()
    statuses: list[int] = []

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                r = http.post(f"{router}/api/v1/service/slow/score", json={"sleep": 0.5},
                              headers={"Authorization": f"Bearer {key}"})
                statuses.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        # 4 requests held by one pod of 3, capacity 1: ceil(4 / 0.7) = 6 -> the maximum of 5
        _eventually(lambda: _router_scale(k8s_cluster, k8s_namespace)[0] > 3, "the router scaled up", 60)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    replicas, managers, hpas = _router_scale(k8s_cluster, k8s_namespace)
    assert 3 < replicas <= 5
    # only the scale subresource's manager writes spec.replicas (1.20 may record no manager for
    # a scale write at all), and there is no HPA to fight it
    assert managers <= {"modelhost-autoscaler"}, managers
    assert hpas == 0
    assert statuses and set(statuses) == {200}
    _eventually(lambda: len(router_pod_urls(k8s_cluster, k8s_namespace)) == replicas, "new router pods ready",
                120)
