"""Collected data flows back from pods to the workspace (issue 8 item 3): the upload route, the
uploader sidecar's process, and end to end on the test cluster.

Real parts: the control plane (subprocess), its router, ``python -m modelhost.runtime.upload`` as a
process, the real API server with the stand-in kubelet (the one stand-in: pods are local processes,
see D17), the scoring server's real data writer. The route tests need no cluster.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from modelhost.build.environment import EnvironmentBuilder
from modelhost.control.compute import read_or_create_fetch_token
from modelhost.runtime.upload import Uploader, upload_token
from modelhost.scoring.data_spool import hold_writer_lock
from modelhost.spec.environment import EnvironmentSpec
from tests.e2e.deploy.conftest import Plane, aks, make_plane
from tests.support.k8s.cluster import K8sCluster
from tests.support.k8s.images import LocalImages
from tests.support.k8s.node_agent import NodeAgent
from tests.support.net import wait_until

DAY = "2026/11/23"
PART = f"m/1/inputs/{DAY}"
CSV_A = "a,b\n1,2\n3,4\n"


@pytest.fixture
def plane(tmp_path_factory: pytest.TempPathFactory, machine_cache: Path) -> Iterator[Plane]:
    p = make_plane(tmp_path_factory.mktemp("data-flow"), machine_cache)
    p.start()
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture(scope="session")
def machine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("machine-cache")


def _token(plane: Plane, service: str) -> str:
    return upload_token(read_or_create_fetch_token(plane.settings.home), service)


def _put(plane: Plane, service: str, rel: str, body: bytes, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.put(f"{plane.url}/api/v1/services/{service}/data/{rel}", content=body, headers=headers,
                     timeout=30)


def _export(plane: Plane, service: str, designation: str) -> list[dict[str, str]]:
    r = plane.client.get(f"/api/v1/services/{service}/data/export", params={"designation": designation})
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


# ---------------------------------------------------------------------------------------------
# the route


def test_upload_route_stores_once_per_name_for_its_own_service_only(plane: Plane) -> None:
    token_a = _token(plane, "svc-a")
    rel = f"{PART}/data-pod-1-7.1763900000000.csv"
    assert _put(plane, "svc-a", rel, CSV_A.encode(), token_a).status_code == 201
    assert _put(plane, "svc-a", rel, CSV_A.encode(), token_a).status_code == 201  # a retry
    stored = plane.settings.home / "data" / "svc-a" / rel
    assert stored.read_text() == CSV_A
    assert [r["a"] for r in _export(plane, "svc-a", "inputs")] == ["1", "3"]  # not duplicated
    assert plane.client.get("/api/v1/services/svc-a/data").json()["totals"]["rows"] == 2

    # A's token cannot write B's data; no token, the fetch token, a wrong token: 401, nothing written
    fetch = read_or_create_fetch_token(plane.settings.home)
    for token in (token_a, None, fetch, "x" * 64):
        r = _put(plane, "svc-b", rel, CSV_A.encode(), token)
        assert r.status_code == 401, (token is None, r.text)
        assert fetch not in r.text and token_a not in r.text
    assert not (plane.settings.home / "data" / "svc-b").exists()
    # the upload token opens nothing else: not reading data, not blobs
    assert httpx.get(f"{plane.url}/api/v1/services/svc-a/data",
                     headers={"Authorization": f"Bearer {token_a}"}).status_code == 401


@pytest.mark.parametrize(
    "rel",
    [f"m/1/inputs/{DAY}/%2E%2E", f"%2E%2E/1/inputs/{DAY}/x.csv", f"m/1/inputs/{DAY}/x/y.csv",
     f"m/1/nope/{DAY}/x.csv", f"m/1/inputs/{DAY}/x.sh"],
    ids=["dotdot-file", "dotdot-model", "too-deep", "designation", "not-csv"],
)
def test_upload_route_refuses_paths_outside_the_layout(plane: Plane, rel: str) -> None:
    r = _put(plane, "svc-a", rel, CSV_A.encode(), _token(plane, "svc-a"))
    assert r.status_code == 400, r.text
    assert "<model>/<version>/<designation>" in r.json()["error"]["hint"]
    data = plane.settings.home / "data"
    assert not data.exists() or not any(p.is_file() for p in data.rglob("*"))


def test_upload_route_refuses_a_file_over_the_limit(plane: Plane) -> None:
    # a raw request: announce 300 MiB, send nothing, and get 413 before any body is read
    url = urlsplit(plane.url)
    rel = f"{PART}/big.1763900000000.csv"
    head = (
        f"PUT /api/v1/services/svc-a/data/{rel} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {_token(plane, 'svc-a')}\r\nContent-Length: {300 << 20}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert not (plane.settings.home / "data" / "svc-a" / rel).exists()


def test_uploader_sends_sealed_files_and_sets_refused_ones_aside(plane: Plane, tmp_path: Path) -> None:
    day = tmp_path / "svc-a" / PART
    day.mkdir(parents=True)
    (day / "data-p-1.1763900000000.csv").write_text(CSV_A)
    (day / "data-p-1.csv").write_text("a,b\n9,9\n")  # still open: not sent
    odd = tmp_path / "svc-a" / "m" / "1" / "outputs" / DAY
    odd.mkdir(parents=True)
    (odd / "data-p-1.1763900000000.csv").write_text(CSV_A)
    lines: list[str] = []
    up = Uploader(plane.url, "svc-a", _token(plane, "svc-a"), tmp_path, log=lines.append)
    assert up.sweep(final=False) == (1, 0)
    assert sorted(p.name for p in day.iterdir()) == ["data-p-1.csv"]
    assert (plane.settings.home / "data" / "svc-a" / PART / "data-p-1.1763900000000.csv").read_text() == CSV_A
    aside = tmp_path / ".rejected" / "svc-a" / "m" / "1" / "outputs" / DAY
    assert (aside / "data-p-1.1763900000000.csv").exists()
    assert any("400" in line and "outputs" in line for line in lines), lines
    # a wrong token: the file stays for a retry, the token is never logged
    wrong = Uploader(plane.url, "svc-a", "not-the-token", tmp_path, log=lines.append)
    (day / "data-p-2.1763900000001.csv").write_text(CSV_A)
    assert wrong.sweep(final=False) == (0, 1)
    assert (day / "data-p-2.1763900000001.csv").exists()
    assert not any("not-the-token" in line for line in lines)


def test_uploader_process_drains_after_sigterm_until_the_writers_are_gone(
    plane: Plane, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    day = data / "svc-a" / PART
    day.mkdir(parents=True)
    token_file = tmp_path / "token"
    token_file.write_text(_token(plane, "svc-a"))
    lock = hold_writer_lock(str(data))  # a scoring process that is still writing
    (day / "data-p-1.csv").write_text("a,b\n5,6\n")  # its open file
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelhost.runtime.upload", "--artifact-url", plane.url, "--service", "svc-a",
         "--token-file", str(token_file), "--data-dir", str(data), "--interval-s", "0.2", "--drain-s", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once its SIGTERM handler is in place
        assert "sending sealed files" in first, first
        time.sleep(0.5)  # a few sweeps: the open file must not be sent while its writer lives
        assert (day / "data-p-1.csv").exists()
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None, "exited while a writer still held the lock"
        (day / "data-p-1.csv").write_text("a,b\n5,6\n7,8\n")  # the writer's last rows at its shutdown
        os.close(lock)  # the scoring process exits
        out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert not (day / "data-p-1.csv").exists(), out
    assert (plane.settings.home / "data" / "svc-a" / PART / "data-p-1.csv").read_text() == "a,b\n5,6\n7,8\n"
    assert _token(plane, "svc-a") not in out


# ---------------------------------------------------------------------------------------------
# end to end on the test cluster

SERVICE = "k8s-dc"
TARGET = "kc"
REGISTRY = "registry.test:5000/ml"
COLLECTING_SCRIPT = """
import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("echo_model", designation="inputs", feature_names=["x"])
    prediction_dc = ModelDataCollector("echo_model", designation="predictions", feature_names=["y"])
    print("data-flow init done")

def run(raw):
    x = json.loads(raw)["x"]
    correlations = inputs_dc.collect([x])
    prediction_dc.collect(prediction_dc.add_correlations([x * 2], correlations))
    print(f"data-flow scored {x}")
    return {"y": x * 2}
"""


def _pods(cluster: K8sCluster, namespace: str) -> list[Any]:
    from kubernetes import client

    with cluster.api_client() as api:
        return list(client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=f"modelhost.io/service={SERVICE}"
        ).items)


def _score_all(plane: Plane, key: str, n: int, clients: int) -> dict[int, str]:
    """``{x: x-ms-request-id}`` for n requests sent by ``clients`` threads at once."""
    ids: dict[int, str] = {}
    todo = list(range(n))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=30) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    x = todo.pop()
                r = http.post(plane.score_url(SERVICE), json={"x": x},
                              headers={"Authorization": f"Bearer {key}"})
                assert r.status_code == 200 and r.json() == {"y": 2 * x}, r.text
                with lock:
                    ids[x] = r.headers["x-ms-request-id"]

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return ids


def test_collected_rows_reach_the_workspace_through_a_scale_down(
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
    env_hash = EnvironmentBuilder(plane.settings).spec_hash(EnvironmentSpec.inherit_current("k8s-env"))
    k8s_images.register(f"{REGISTRY}/modelhost-env:{env_hash}", Path(sys.prefix))
    config = aks(compute_target_name=TARGET, num_replicas=2, collect_model_data=True,
                 enable_app_insights=True)
    deployed = plane.deploy(SERVICE, textwrap.dedent(COLLECTING_SCRIPT), config=config,
                            environment={"name": "k8s-env", "version": 1})
    assert deployed["state"] == "Succeeded", (deployed.get("error"), deployed["lines"][-12:])
    pods = _pods(k8s_cluster, k8s_namespace)
    assert len(pods) == 2 and all([c.name for c in p.spec.containers] == ["scoring", "upload"] for p in pods)

    primary, _ = plane.keys(SERVICE)
    ids = _score_all(plane, primary, 20, clients=4)
    assert len(set(ids.values())) == 20

    # scale 2 -> 1 at once, before the replicas' files rotate: the drained pod ships its rows on SIGTERM
    r = plane.client.patch(f"/api/v1/services/{SERVICE}", json={"changes": {"num_replicas": 1}})
    assert r.status_code == 202, r.text
    assert plane.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    before = {p.metadata.name for p in pods}
    wait_until(lambda: len(_pods(k8s_cluster, k8s_namespace)) == 1, 120, what="one pod left")
    drained = before - {p.metadata.name for p in _pods(k8s_cluster, k8s_namespace)}

    def rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        return _export(plane, SERVICE, "inputs"), _export(plane, SERVICE, "predictions")

    wait_until(lambda: [len(x) for x in rows()] == [20, 20], 90, interval_s=1, what="20 + 20 rows exported")
    inputs, predictions = rows()
    assert {int(r["x"]): r["$aml_request_id"] for r in inputs} == ids
    assert {r["$aml_request_id"] for r in predictions} == set(ids.values())
    assert sorted(int(r["y"]) for r in predictions) == [2 * x for x in range(20)]
    by_corr = {r["$aml_dc_correlation_id"]: r for r in inputs}
    assert all(int(by_corr[p["$aml_dc_correlation_id"]]["x"]) * 2 == int(p["y"]) for p in predictions)
    # both pods collected, so the drained pod's rows came through its SIGTERM drain
    files = list((plane.settings.home / "data" / SERVICE).rglob("*.csv"))
    writers = {f.name.split(".")[0] for f in files}
    assert any(name in w for w in writers for name in drained), (writers, drained)

    listing = plane.client.get(f"/api/v1/services/{SERVICE}/data").json()
    assert listing["totals"]["rows"] == 40 and listing["collectModelData"] is True

    # the pods' output reaches `service logs` (pods/log of the replicas) and, with telemetry on,
    # becomes log records: init() and run() prints of the replicas, the drained one's included
    logs = plane.client.get(f"/api/v1/services/{SERVICE}/logs").text
    assert "data-flow init done" in logs and "data-flow scored" in logs
    scored = {f"data-flow scored {x}" for x in range(20)}

    def traces() -> list[dict[str, Any]]:
        path = plane.settings.home / "telemetry" / "traces.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [r for r in map(json.loads, lines) if r["attributes"].get("Service Name") == SERVICE]

    wait_until(lambda: scored <= {r["body"] for r in traces()}, 30, interval_s=0.5, what="prints as traces")
    records = traces()
    assert [r["body"] for r in records].count("data-flow init done") == 2  # one per pod, not repeated
    assert sorted(r["body"] for r in records if r["body"] in scored) == sorted(scored)  # each once
    assert {r["attributes"]["Replica Id"] for r in records} == before

    r = plane.client.delete(f"/api/v1/services/{SERVICE}")
    assert r.status_code == 202 and plane.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    from kubernetes import client

    with k8s_cluster.api_client() as api:
        secrets = client.CoreV1Api(api).list_namespaced_secret(
            k8s_namespace, label_selector=f"modelhost.io/service={SERVICE}"
        ).items
    assert secrets == []  # the upload token Secret went with the service
    assert len(_export(plane, SERVICE, "inputs")) == 20  # the data outlives the service
