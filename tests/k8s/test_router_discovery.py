"""The router learns its table from the Kubernetes API: a real router process with ``--discover
kubernetes`` against the real test API server (1.20, so EndpointSlices are ``v1beta1`` only: this
exercises the fallback), and a real scoring server as the replica.

The EndpointSlice is created directly (no Service selecting pods): the test then decides when the
endpoint is ready or not, without waiting for a kubelet's probes. The anchor ConfigMap and keys
Secret are what the Kubernetes runtime renders for a service.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.k8s.cluster import K8sCluster
from tests.support.net import free_port, port_open, wait_until

SERVICE = "disc"
HOST = "127.3.0.5"  # off the node agents' 127.1/127.2 blocks
KEY = "discovered-primary-key"


def _port_on(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[int]:
    script = tmp_path / "score.py"
    script.write_text(
        "import json\ndef init():\n    pass\ndef run(raw):\n    return {'echo': json.loads(raw)}\n"
    )
    port = _port_on(HOST)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelhost.scoring", "--entry_script", str(script), "--port", str(port),
         "--host", HOST],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _healthy(f"http://{HOST}:{port}/"), 60, what="replica ready")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def router(k8s_cluster: K8sCluster, k8s_namespace: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "router.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelhost.router", "--port", str(port), "--access-log", "off",
             "--discover", "kubernetes", "--namespace", k8s_namespace,
             "--kubeconfig", str(k8s_cluster.kubeconfig)],
            stdout=subprocess.DEVNULL, stderr=out,
        )
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 30, what="router listening")
        assert proc.poll() is None, log.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _meta(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": {"app.kubernetes.io/managed-by": "modelhost",
                                     "app.kubernetes.io/component": component,
                                     "modelhost.io/service": SERVICE}}


def _slice(namespace: str, port: int, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"modelhost-{SERVICE}-1",
                     "labels": {"kubernetes.io/service-name": f"modelhost-{SERVICE}"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [HOST], "conditions": {"ready": ready},
                       "targetRef": {"kind": "Pod", "name": f"{SERVICE}-pod-1", "namespace": namespace}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def test_the_routers_table_follows_endpointslices(
    k8s_cluster: K8sCluster, k8s_namespace: str, replica: int, router: str
) -> None:
    from kubernetes import client

    ns = k8s_namespace
    url = f"{router}/api/v1/service/{SERVICE}/score"

    def score() -> int:
        auth = {"Authorization": f"Bearer {KEY}"}
        return httpx.post(url, json={"x": 1}, headers=auth, timeout=10).status_code

    with k8s_cluster.api_client() as api:
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        route = {"auth_enabled": True, "max_queue_wait_ms": 100}
        core.create_namespaced_config_map(ns, {"metadata": _meta(f"modelhost-svc-{SERVICE}", "anchor"),
                                               "data": {"service": SERVICE, "route": json.dumps(route)}})
        key = base64.b64encode(KEY.encode()).decode()
        core.create_namespaced_secret(ns, {"metadata": _meta(f"modelhost-keys-{SERVICE}", "keys"),
                                           "data": {"primaryKey": key, "secondaryKey": key}})
        # the service is known, with no ready endpoint yet: 503, not 404
        wait_until(lambda: score() == 503, 30, what="service discovered without replicas")
        custom.create_namespaced_custom_object("discovery.k8s.io", "v1beta1", ns, "endpointslices",
                                               _slice(ns, replica, ready=True))
        wait_until(lambda: score() == 200, 30, what="ready endpoint routed")
        answer = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert answer.json() == {"echo": {"x": 1}}
        assert httpx.post(url, json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        custom.patch_namespaced_custom_object("discovery.k8s.io", "v1beta1", ns, "endpointslices",
                                              f"modelhost-{SERVICE}-1", _slice(ns, replica, ready=False))
        wait_until(lambda: score() == 503, 30, what="not-ready endpoint removed")
        core.delete_namespaced_config_map(f"modelhost-svc-{SERVICE}", ns)
        wait_until(lambda: score() == 404, 30, what="service gone with its anchor")
