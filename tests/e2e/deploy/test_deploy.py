"""Deploy end to end on one machine: deploy -> Healthy -> score through the router -> update under
load -> delete; keys; validation; conflicts; failures. Real control plane, router and replicas."""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import pytest

from tests.e2e.deploy.conftest import Plane, aks, echo_script
from tests.support.net import free_port, wait_until


def _score(plane: Plane, name: str, key: str | None, body: Any = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        plane.score_url(name), json=body if body is not None else {"x": 1}, headers=headers, timeout=30, **kw
    )


def _pid_alive(pid: int) -> bool:
    from modelhost.sdk.local import pid_alive

    return pid_alive(pid)


@pytest.mark.slow
def test_deploy_score_rolling_update_under_load_and_delete(plane: Plane) -> None:
    model = plane.register_model("iris")
    op = plane.deploy("iris-svc", models=[model], config=aks(num_replicas=2))
    assert op["state"] == "Succeeded", op
    steps = "\n".join(op["lines"])
    for step in (
        "snapshot:",
        "environment:",
        "models: 1 model(s)",
        "start: 2 replica(s)",
        "health check:",
        "route traffic: http://127.0.0.1:",
    ):
        assert step in steps
    svc = plane.service("iris-svc")
    assert svc["state"] == "Healthy" and svc["computeType"] == "AKS" and svc["authEnabled"] is True
    assert svc["scoringUri"] == plane.score_url("iris-svc")
    assert svc["swaggerUri"].endswith("/api/v1/service/iris-svc/swagger.json")
    assert svc["modelhost"]["readyReplicas"] == 2 and svc["modelhost"]["models"] == ["iris:1"]
    old_pids = {r["pid"] for r in svc["modelhost"]["replicas"]}

    primary, secondary = plane.keys("iris-svc")
    assert primary != secondary and len(primary) >= 32
    assert _score(plane, "iris-svc", None).status_code == 401
    assert _score(plane, "iris-svc", "wrong").status_code == 401
    ok = _score(plane, "iris-svc", primary)
    assert ok.status_code == 200 and ok.json()["version"] == "v1"
    assert _score(plane, "iris-svc", secondary).status_code == 200

    # the model is in use: it cannot be deleted
    assert plane.client.delete("/api/v1/models/iris/1").status_code == 409

    # a client scoring without pause while the service rolls to a new entry script version
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(
                    plane.score_url("iris-svc"), json={"x": 1}, headers={"Authorization": f"Bearer {primary}"}
                )
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.append(r.json()["version"])

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_until(lambda: len(statuses) >= 20, 30, what="load running")
        snapshot = plane.snapshot(echo_script("v2"))
        r = plane.client.patch(
            "/api/v1/services/iris-svc", json={"snapshot": snapshot, "entry_script": "score.py"}
        )
        assert r.status_code == 202, r.text
        update = plane.wait(r.json()["operation"]["id"])
        assert update["state"] == "Succeeded", update
        assert "rolling to generation 2" in "\n".join(update["lines"])
        wait_until(lambda: versions[-1:] == ["v2"], 30, what="v2 serving")
        # the old replicas drain and stop; the load keeps running through it
        wait_until(lambda: not any(_pid_alive(p) for p in old_pids), 30, what="old replicas stopped")
        count = len(statuses)
        wait_until(lambda: len(statuses) >= count + 20, 30, what="load after the roll")
    finally:
        stop.set()
        worker.join(30)
    failed = [s for s in statuses if s != 200]
    assert failed == [], (
        f"{len(failed)} of {len(statuses)} requests failed during the rolling update: {failed[:10]}"
    )
    assert "v1" in versions and versions[-1] == "v2"

    def generations() -> set[int]:
        return {r["generation"] for r in plane.service("iris-svc")["modelhost"]["replicas"]}

    wait_until(lambda: generations() == {2}, 10, what="the old generation forgotten")
    svc = plane.service("iris-svc")
    assert svc["state"] == "Healthy" and svc["modelhost"]["generation"] == 2

    # delete: routes gone (404 from the router), replicas gone, the model may be deleted again
    new_pids = {r["pid"] for r in svc["modelhost"]["replicas"]}
    r = plane.client.delete("/api/v1/services/iris-svc")
    assert r.status_code == 202 and r.json()["service"]["state"] == "Deleting"
    assert plane.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    assert _score(plane, "iris-svc", primary).status_code == 404
    assert plane.client.get("/api/v1/services/iris-svc").status_code == 404
    assert "WebserviceNotFound" in plane.client.get("/api/v1/services/iris-svc").json()["error"]["message"]
    assert not any(_pid_alive(p) for p in new_pids)
    assert plane.client.delete("/api/v1/models/iris/1").status_code == 200


def test_key_regeneration_old_key_refused_new_key_accepted(shared: Plane) -> None:
    assert shared.deploy("keys-svc")["state"] == "Succeeded"
    primary, secondary = shared.keys("keys-svc")
    assert _score(shared, "keys-svc", primary).status_code == 200

    r = shared.client.post(
        "/api/v1/services/keys-svc/regenerateKeys", json={"keyType": "primary", "keyValue": None}
    )
    assert r.status_code == 202, r.text
    assert shared.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    new_primary, same_secondary = shared.keys("keys-svc")
    assert new_primary != primary and same_secondary == secondary
    assert _score(shared, "keys-svc", primary).status_code == 401
    assert _score(shared, "keys-svc", new_primary).status_code == 200

    r = shared.client.post(
        "/api/v1/services/keys-svc/regenerateKeys",
        json={"keyType": "Secondary", "keyValue": "my-own-secondary-key"},
    )
    assert shared.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    assert shared.keys("keys-svc") == (new_primary, "my-own-secondary-key")
    assert _score(shared, "keys-svc", secondary).status_code == 401
    assert _score(shared, "keys-svc", "my-own-secondary-key").status_code == 200

    bad = shared.client.post("/api/v1/services/keys-svc/regenerateKeys", json={"keyType": "Tertiary"})
    assert bad.status_code == 400 and "keyType" in bad.json()["error"]["message"]
    # keys never show up in the service's description
    assert new_primary not in shared.client.get("/api/v1/services/keys-svc").text


def test_a_second_operation_while_one_runs_is_409(shared: Plane) -> None:
    slow_init = "import time\ndef init():\n    time.sleep(3)\ndef run(raw):\n    return raw\n"
    r = shared.client.post("/api/v1/services", json=shared.deploy_body("busy-svc", slow_init))
    assert r.status_code == 202
    op_id = r.json()["operation"]["id"]
    assert r.json()["service"]["state"] == "Transitioning"
    second = shared.client.patch("/api/v1/services/busy-svc", json={"changes": {"auth_enabled": False}})
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "conflict" and op_id in error["message"] and "busy-svc" in error["message"]
    assert shared.client.delete("/api/v1/services/busy-svc").status_code == 409
    # while the replica boots the router knows the service but has no ready replica: v1's 503
    key = shared.keys("busy-svc")[0]
    wait_until(lambda: _score(shared, "busy-svc", key).status_code == 503, 10, what="503 while booting")
    assert "No ready replicas" in _score(shared, "busy-svc", key).json()["message"]
    assert shared.wait(op_id)["state"] == "Succeeded"
    again = shared.client.post("/api/v1/services", json=shared.deploy_body("busy-svc"))
    assert again.status_code == 409 and "already exists" in again.json()["error"]["message"]


def test_validation_lists_every_violation_and_stores_nothing(shared: Plane) -> None:
    config = {
        "computeType": "AKS",
        "autoScaler": {"autoscaleEnabled": True},
        "numReplicas": 2,
        "containerResourceRequirements": {"cpu": -1},
        "scoringTimeoutMs": 0,
    }
    body = shared.deploy_body("Bad_Name", config=config, models=["nope:x"])
    r = shared.client.post("/api/v1/services", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    text = error["message"]
    assert len(error["details"]) >= 4, error
    for fragment in ("service name", "num_replicas", "cpu_cores", "scoring_timeout_ms", "nope:x"):
        assert fragment in text, (fragment, text)
    assert shared.client.get("/api/v1/services/Bad_Name").status_code == 404


def test_unknown_model_environment_or_snapshot_is_404_and_nothing_is_stored(shared: Plane) -> None:
    r = shared.client.post("/api/v1/services", json=shared.deploy_body("ghost-svc", models=["ghost:7"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = shared.client.post(
        "/api/v1/services", json=shared.deploy_body("ghost-svc", environment={"name": "no-env", "version": 1})
    )
    assert r.status_code == 404
    r = shared.client.post("/api/v1/services", json=shared.deploy_body("ghost-svc", snapshot="0" * 64))
    assert r.status_code == 404 and "Snapshot" in r.json()["error"]["message"]
    assert shared.client.get("/api/v1/services/ghost-svc").status_code == 404
    names = [s["name"] for s in shared.client.get("/api/v1/services").json()["value"]]
    assert "ghost-svc" not in names


def test_an_unparseable_entry_script_is_400_naming_file_and_line(shared: Plane) -> None:
    snapshot = shared.raw_snapshot({"score.py": "def init():\n    pass\ndef run(x)\n"})
    r = shared.client.post("/api/v1/services", json=shared.deploy_body("syntax-svc", snapshot=snapshot))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "entry_script" and "score.py" in error["message"] and "line 3" in error["message"]
    assert shared.client.get("/api/v1/services/syntax-svc").status_code == 404
    missing = shared.raw_snapshot({"other.py": "x = 1\n"})
    r = shared.client.post("/api/v1/services", json=shared.deploy_body("syntax-svc", snapshot=missing))
    assert r.status_code == 400 and "score.py not found" in r.json()["error"]["message"]


def test_init_failure_fails_the_service_with_the_last_log_lines(shared: Plane) -> None:
    script = (
        "def init():\n    print('loading the model')\n    raise ValueError('model file is corrupt')\n"
        "def run(x):\n    return x\n"
    )
    op = shared.deploy("broken-svc", script)
    assert op["state"] == "Failed"
    message = op["error"]["message"]
    assert "crashed" in message and "init()" in message and "model file is corrupt" in message
    svc = shared.service("broken-svc")
    assert svc["state"] == "Failed" and "model file is corrupt" in svc["error"]["message"]
    logs = shared.client.get("/api/v1/services/broken-svc/logs", params={"tail": 200}).json()["content"]
    assert "model file is corrupt" in logs and "loading the model" in logs
    # a failed service can be deleted
    r = shared.client.delete("/api/v1/services/broken-svc")
    assert shared.wait(r.json()["operation"]["id"])["state"] == "Succeeded"


def test_a_thousand_models_in_one_deployment(shared: Plane) -> None:
    ids = [shared.register_model(f"tiny-{i}", f"weights {i}".encode()) for i in range(1000)]
    script = (
        "import os\ndef init():\n    pass\n"
        "def run(raw):\n    root = os.environ['AZUREML_MODEL_DIR']\n"
        "    return len(os.listdir(root)), open(os.path.join(root, 'tiny-999', '1', 'model.bin')).read()\n"
    )
    op = shared.deploy("many-models", script, models=ids)
    assert op["state"] == "Succeeded", op["error"]
    assert "models: 1000 model(s)" in "\n".join(op["lines"])
    r = _score(shared, "many-models", shared.keys("many-models")[0])
    assert r.status_code == 200 and r.json() == [1000, "weights 999"]
    too_many = shared.deploy_body("too-many", models=[*ids, "extra:1"])
    r = shared.client.post("/api/v1/services", json=too_many)
    assert r.status_code == 400 and "at most 1000 models" in r.json()["error"]["message"]


def test_config_only_update_keeps_the_replicas(shared: Plane) -> None:
    assert shared.deploy("cfg-svc")["state"] == "Succeeded"
    pids = {r["pid"] for r in shared.service("cfg-svc")["modelhost"]["replicas"]}
    assert _score(shared, "cfg-svc", None).status_code == 401
    r = shared.client.patch(
        "/api/v1/services/cfg-svc", json={"changes": {"auth_enabled": False, "tags": {"team": "a"}}}
    )
    assert r.status_code == 202, r.text
    op = shared.wait(r.json()["operation"]["id"])
    assert op["state"] == "Succeeded" and "configuration only" in "\n".join(op["lines"])
    svc = shared.service("cfg-svc")
    assert svc["authEnabled"] is False and svc["kvTags"] == {"team": "a"}
    assert {r["pid"] for r in svc["modelhost"]["replicas"]} == pids
    assert _score(shared, "cfg-svc", None).status_code == 200
    # v1's JSON-patch form, and the list filters
    patch = [{"op": "replace", "path": "/authEnabled", "value": True}]
    r = shared.client.patch(
        "/api/v1/services/cfg-svc", json=patch, headers={"Content-Type": "application/json-patch+json"}
    )
    assert shared.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    assert _score(shared, "cfg-svc", None).status_code == 401
    listed = shared.client.get("/api/v1/services", params={"tag": "team=a"}).json()["value"]
    assert [s["name"] for s in listed] == ["cfg-svc"]
    bad = shared.client.patch(
        "/api/v1/services/cfg-svc", json={"changes": {"cpu_cores": -2, "num_replicas": 0}}
    )
    assert bad.status_code == 400 and len(bad.json()["error"]["details"]) >= 2


def test_local_compute_type_answers_on_its_own_port_without_auth(shared: Plane) -> None:
    port = free_port()
    op = shared.deploy("local-svc", config={"computeType": "Local", "port": port})
    assert op["state"] == "Succeeded", op["error"]
    svc = shared.service("local-svc")
    assert svc["computeType"] == "Local" and svc["scoringUri"] == f"http://localhost:{port}/score"
    r = httpx.post(f"http://127.0.0.1:{port}/score", json={"a": 1}, timeout=10)
    assert r.status_code == 200 and r.json()["echo"] == {"a": 1}
    assert _score(shared, "local-svc", None).status_code == 404  # not behind the router
    keys = shared.client.post("/api/v1/services/local-svc/listkeys")
    assert keys.status_code == 400 and "LocalWebservice" in keys.json()["error"]["message"]
    # reload: a new copy of the code, same port
    snapshot = shared.snapshot(echo_script("v2"))
    r = shared.client.post("/api/v1/services/local-svc/reload", json={"snapshot": snapshot})
    assert shared.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    assert httpx.post(f"http://127.0.0.1:{port}/score", json={}, timeout=10).json()["version"] == "v2"


def test_router_status_endpoint(shared: Plane) -> None:
    status = shared.client.get("/api/v1/router").json()
    assert status["url"] == shared.router_url and status["healthy"] is True
    assert isinstance(status["pid"], int) and _pid_alive(status["pid"])
    assert os.stat(shared.settings.home / "router" / "table.json").st_mode & 0o077 == 0


@pytest.mark.slow
def test_deploy_with_a_built_environment_streams_the_build_and_reuses_it(shared: Plane) -> None:
    r = shared.client.post("/api/v1/environments", json={"name": "six-env", "pip_requirements": "six\n"})
    assert r.status_code == 201, r.text
    env = {"name": "six-env", "version": r.json()["version"]}
    script = "import six\ndef init():\n    pass\ndef run(raw):\n    return {'six': six.__version__}\n"
    first = shared.deploy("env-svc", script, environment=env)
    assert first["state"] == "Succeeded", first["error"]
    lines = "\n".join(first["lines"])
    assert "environment:" in lines and "Python" in lines
    r = _score(shared, "env-svc", shared.keys("env-svc")[0])
    assert r.status_code == 200 and r.json()["six"]
    assert shared.service("env-svc")["modelhost"]["environment"] == env
    second = shared.deploy("env-svc-2", script, environment=env)
    assert second["state"] == "Succeeded", second["error"]
    assert "cache hit" in "\n".join(second["lines"])
