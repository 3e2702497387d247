"""The issue's "done when", end to end: a control plane, its local router and an attached cluster.

Real parts only: the control plane (subprocess, as clients start it), the router, the real test API
server with its controller-manager and scheduler, and the node agent that plays the kubelet (the
one stand-in: there is no container runtime here, so a pod's container is a local process on its
own 127.1.x.y address, and the image ``<registry>/modelhost-env:<hash>`` is the environment the
control plane built for that hash, here the inherited interpreter). The pods' init container
fetches the snapshot from the control plane with the fetch token; the router reaches the pods by
their IPs.

deploy -> Healthy -> score through the router -> rolling update under steady load (0 failures) ->
the autoscaler scales up and down through the ``scale`` subresource -> delete leaves nothing behind.
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
from modelhost.spec.environment import EnvironmentSpec
from tests.e2e.deploy.conftest import Plane, aks, echo_script, make_plane
from tests.support.k8s.cluster import K8sCluster
from tests.support.k8s.images import LocalImages
from tests.support.k8s.node_agent import NodeAgent
from tests.support.net import wait_until

SERVICE = "k8s-echo"
TARGET = "kc"
REGISTRY = "registry.test:5000/ml"


@pytest.fixture
def plane(tmp_path_factory: pytest.TempPathFactory, k8s_images: LocalImages) -> Iterator[Plane]:
    # the control plane builds environments where the node agent resolves environment images
    assert k8s_images.envs_dir is not None
    p = make_plane(tmp_path_factory.mktemp("k8s-e2e"), k8s_images.envs_dir.parent)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


def _objects(cluster: K8sCluster, namespace: str) -> list[str]:
    """Every object of the service in the namespace, as ``Kind/name``."""
    from kubernetes import client

    selector = f"modelhost.io/service={SERVICE}"
    with cluster.api_client() as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        found = []
        for kind, call in (
            ("ConfigMap", core.list_namespaced_config_map),
            ("Secret", core.list_namespaced_secret),
            ("Service", core.list_namespaced_service),
            ("Deployment", apps.list_namespaced_deployment),
            ("ReplicaSet", apps.list_namespaced_replica_set),
            ("Pod", core.list_namespaced_pod),
        ):
            found += [f"{kind}/{o.metadata.name}" for o in call(namespace, label_selector=selector).items]
        return found


def _scale(cluster: K8sCluster, namespace: str) -> dict[str, int]:
    """``{deployment: spec.replicas}`` read through the ``scale`` subresource."""
    from kubernetes import client

    with cluster.api_client() as api:
        apps = client.AppsV1Api(api)
        names = [
            d.metadata.name
            for d in apps.list_namespaced_deployment(
                namespace, label_selector=f"modelhost.io/service={SERVICE}"
            ).items
        ]
        scales = {}
        for n in names:
            try:
                scales[n] = int(apps.read_namespaced_deployment_scale(n, namespace).spec.replicas)
            except client.ApiException as exc:
                if exc.status != 404:  # deleted between the list and the read: it is gone
                    raise
        return scales


def _score(plane: Plane, key: str, body: Any, client: httpx.Client | None = None) -> httpx.Response:
    send = client or httpx
    return send.post(plane.score_url(SERVICE), json=body, headers={"Authorization": f"Bearer {key}"},
                     timeout=30)


class Load:
    """Clients scoring without pause through the router, recording every status and version."""

    def __init__(self, plane: Plane, key: str, clients: int = 1, body: Any = None) -> None:
        self.plane, self.key, self.body = plane, key, body if body is not None else {"x": 1}
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                r = _score(self.plane, self.key, self.body, client)
                self.statuses.append(r.status_code)
                if r.status_code == 200:
                    self.versions.append(r.json()["version"])

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def test_deploy_score_update_autoscale_delete_on_kubernetes(
    plane: Plane, k8s_cluster: K8sCluster, k8s_node: NodeAgent, k8s_namespace: str, k8s_images: LocalImages
) -> None:
    r = plane.client.put(
        f"/api/v1/compute/{TARGET}",
        json={"kubeconfig": k8s_cluster.kubeconfig.read_text(), "namespace": k8s_namespace,
              "registry": REGISTRY, "cluster_purpose": "DevTest"},
    )
    assert r.status_code == 201, r.text
    r = plane.client.post("/api/v1/environments", json={"name": "k8s-env", "inherit": True})
    assert r.status_code == 201, r.text
    # An inherited environment is the control plane's own interpreter (this venv): the image named by
    # the environment's real hash (computed as the deployer does) is that prefix.
    env_hash = EnvironmentBuilder(plane.settings).spec_hash(EnvironmentSpec.inherit_current("k8s-env"))
    k8s_images.register(f"{REGISTRY}/modelhost-env:{env_hash}", Path(sys.prefix))
    config = aks(
        compute_target_name=TARGET, autoscale_enabled=True, num_replicas=None, autoscale_min_replicas=1,
        autoscale_max_replicas=3, autoscale_refresh_seconds=1, autoscale_target_utilization=50,
        autoscale_scale_down_delay_seconds=3,
    )
    env = {"name": "k8s-env", "version": 1}
    deployed = plane.deploy(SERVICE, config=config, environment=env)
    assert deployed["state"] == "Succeeded", (deployed.get("error"), deployed["lines"][-12:])
    svc = plane.service(SERVICE)
    assert svc["state"] == "Healthy" and svc["computeName"] == TARGET

    # the pods run the image named by the environment's real hash, which the control plane built
    from kubernetes import client

    with k8s_cluster.api_client() as api:
        pods = client.CoreV1Api(api).list_namespaced_pod(
            k8s_namespace, label_selector=f"modelhost.io/service={SERVICE}"
        ).items
    assert {c.image for p in pods for c in p.spec.containers} == {f"{REGISTRY}/modelhost-env:{env_hash}"}
    assert all(p.status.pod_ip.startswith("127.1.") for p in pods)

    primary, _ = plane.keys(SERVICE)
    assert _score(plane, "wrong", {"x": 1}).status_code == 401
    ok = _score(plane, primary, {"x": 1})
    assert ok.status_code == 200 and ok.json()["version"] == "v1", ok.text

    # a rolling update under steady load: not one failed request
    with Load(plane, primary) as load:
        wait_until(lambda: len(load.statuses) >= 20, 30, what="load running")
        snapshot = plane.snapshot(echo_script("v2"))
        r = plane.client.patch(f"/api/v1/services/{SERVICE}", json={"snapshot": snapshot})
        assert r.status_code == 202, r.text
        update = plane.wait(r.json()["operation"]["id"])
        assert update["state"] == "Succeeded", update
        wait_until(lambda: load.versions[-1:] == ["v2"], 30, what="v2 serving")
        wait_until(lambda: len(_scale(k8s_cluster, k8s_namespace)) == 1, 60, what="the old Deployment gone")
        count = len(load.statuses)
        wait_until(lambda: len(load.statuses) >= count + 20, 30, what="load after the roll")
    failed = [s for s in load.statuses if s != 200]
    assert failed == [], f"{len(failed)} of {len(load.statuses)} requests failed during the update"
    assert "v1" in load.versions and load.versions[-1] == "v2"

    # the autoscaler: 4 clients of 0.3 s requests keep every replica busy -> up; then idle -> down
    with Load(plane, primary, clients=4, body={"sleep": 0.3}) as load:
        wait_until(lambda: max(_scale(k8s_cluster, k8s_namespace).values()) >= 2, 60,
                   what="scaled up through the scale subresource")
        wait_until(lambda: plane.service(SERVICE)["modelhost"]["readyReplicas"] >= 2, 60,
                   what="the new replicas ready")
    assert [s for s in load.statuses if s != 200] == []
    wait_until(lambda: max(_scale(k8s_cluster, k8s_namespace).values()) == 1, 90,
               what="scaled down after the idle window")

    # delete: the anchor goes last, so nothing of the service is left
    r = plane.client.delete(f"/api/v1/services/{SERVICE}")
    assert r.status_code == 202, r.text
    assert plane.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    assert _objects(k8s_cluster, k8s_namespace) == []
    assert plane.client.delete(f"/api/v1/compute/{TARGET}").status_code == 200
