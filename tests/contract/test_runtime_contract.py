"""What every runtime must do, written against the Runtime Protocol only (run over each implementation)."""

from __future__ import annotations

import time

import pytest

from modelhost.errors import NotFoundError
from modelhost.runtime.base import Runtime
from modelhost.types import ServiceName
from tests.contract.conftest import Harness, healthy, score_at, served_by_replica, wait_status
from tests.support.net import wait_until

ECHO = """
    import json, os

    def init():
        print("init called in", os.getcwd(), flush=True)
        os.makedirs("outputs", exist_ok=True)
        with open("outputs/started.txt", "a") as f:
            f.write("init ran\\n")

    def run(raw):
        return {"pid": os.getpid(), "ppid": os.getppid(), "echo": json.loads(raw), "version": VERSION,
                "replica": os.environ.get("MODELHOST_REPLICA_ID"),
                "model_dir": os.environ.get("AZUREML_MODEL_DIR"), "cwd": os.getcwd(),
                "app_root": os.environ.get("AML_APP_ROOT"), "entry": os.environ.get("AZUREML_ENTRY_SCRIPT"),
                "source_dir": os.environ.get("AZUREML_SOURCE_DIRECTORY")}

    VERSION = 1
"""

FAILING_INIT = """
    print("init attempt", flush=True)

    def init():
        raise RuntimeError("boom: cannot load the model file")

    def run(raw):
        return raw
"""

MODELS = """
    import os

    def init():
        pass

    def run(raw):
        model_dir = os.environ["AZUREML_MODEL_DIR"]
        found = {}
        for name in ("m1", "m2"):
            try:
                from azureml.core.model import Model
                found[name] = Model.get_model_path(name)
            except Exception as exc:
                found[name] = f"error: {exc!r}"
        files = sorted(os.path.relpath(os.path.join(d, f), model_dir)
                       for d, _, fs in os.walk(model_dir) for f in fs)
        return {"model_dir": model_dir, "files": files, "found": found}
"""


def test_deploy_one_replica_serves(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("echo", ECHO))
    st = wait_status(runtime, "echo", healthy(1), what="one ready replica")
    replica = st.replicas[0]
    answer = score_at(replica, {"data": [1, 2]})
    assert served_by_replica(answer, replica)
    assert answer["echo"] == {"data": [1, 2]}
    assert answer["cwd"] == answer["app_root"]
    assert str(answer["entry"]).endswith("src/score.py")  # v1's server makes it the real path
    assert answer["source_dir"] == "src"
    assert "init called in" in runtime.logs(ServiceName("echo"))
    assert "init called in" in runtime.logs(ServiceName("echo"), replica=replica.id)


def test_scale_up_then_down(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("scaled", ECHO))
    wait_status(runtime, "scaled", healthy(1))
    runtime.scale(ServiceName("scaled"), 3)
    st = wait_status(runtime, "scaled", healthy(3), what="three ready replicas")
    addresses = {(r.host, r.port) for r in st.replicas}
    assert len(addresses) == 3
    assert all(served_by_replica(score_at(r, {"n": r.port}), r) for r in st.replicas)
    runtime.scale(ServiceName("scaled"), 1)
    st = wait_status(runtime, "scaled", healthy(1), what="back to one replica")
    assert st.desired_replicas == 1
    assert served_by_replica(score_at(st.replicas[0], {}), st.replicas[0])


def test_crashed_replica_is_restarted(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("crashy", ECHO))
    before = wait_status(runtime, "crashy", healthy(1)).replicas[0]
    harness.crash(before)
    after = wait_status(
        runtime,
        "crashy",
        lambda s: healthy(1)(s) and s.replicas[0].restarts > before.restarts,
        what="a restarted replica",
    )
    replica = after.replicas[0]
    assert replica.id == before.id
    assert replica.restarts == before.restarts + 1
    assert served_by_replica(score_at(replica, {"again": True}), replica)


def test_init_that_keeps_failing_fails_the_service(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("broken", FAILING_INIT))
    st = wait_status(runtime, "broken", lambda s: s.state == "Failed", what="a Failed service")
    assert st.error is not None
    assert "Your container application crashed" in st.error
    assert "init()" in st.error
    assert "boom: cannot load the model file" in st.error  # the last log lines are in the message
    assert [r.state for r in st.replicas] == ["failed"]
    if harness.gives_up_after is None:  # Kubernetes: the kubelet keeps backing off; Failed is reported
        wait_until(lambda: "init attempt" in runtime.logs(ServiceName("broken")), 20, what="init()'s lines")
        return
    attempts = runtime.logs(ServiceName("broken")).count("init attempt")
    assert attempts == harness.gives_up_after
    time.sleep(1.5)  # several backoff periods of the test policy: nothing may restart it
    assert runtime.logs(ServiceName("broken")).count("init attempt") == attempts
    assert runtime.status(ServiceName("broken")).state == "Failed"


def test_model_dir_for_one_model(harness: Harness, runtime: Runtime) -> None:
    m1 = harness.model("m1", 3, {"model.pkl": b"one"})
    runtime.deploy(harness.deployment("single", MODELS, models=(m1,)))
    st = wait_status(runtime, "single", healthy(1))
    answer = score_at(st.replicas[0], {})
    model_dir = str(answer["model_dir"])
    assert model_dir.endswith("/azureml-models/m1/3")  # no trailing slash: scripts split('/')[-2]
    assert answer["files"] == ["model.pkl"]
    assert answer["found"]["m1"] == model_dir + "/model.pkl"  # type: ignore[index]


def test_model_dir_for_several_models(harness: Harness, runtime: Runtime) -> None:
    m1 = harness.model("m1", 1, {"model.pkl": b"one"})
    m2 = harness.model("m2", 2, {"model/weights.bin": b"two", "model/config.json": b"{}"})
    runtime.deploy(harness.deployment("multi", MODELS, models=(m1, m2)))
    st = wait_status(runtime, "multi", healthy(1))
    answer = score_at(st.replicas[0], {})
    model_dir = str(answer["model_dir"])
    assert model_dir.endswith("/azureml-models")
    assert answer["files"] == ["m1/1/model.pkl", "m2/2/model/config.json", "m2/2/model/weights.bin"]
    assert answer["found"] == {"m1": model_dir + "/m1/1/model.pkl", "m2": model_dir + "/m2/2/model"}


def test_delete_keeps_outputs_and_removes_temp_folders(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("outputs", ECHO, replicas=2))
    st = wait_status(runtime, "outputs", healthy(2))
    assert len(harness.temp_folders_of("outputs")) == (2 if harness.keeps_outputs else 0)
    runtime.delete(ServiceName("outputs"))
    with pytest.raises(NotFoundError):
        runtime.status(ServiceName("outputs"))
    assert all(s.service != "outputs" for s in runtime.services())
    assert harness.temp_folders_of("outputs") == []
    if not harness.keeps_outputs:  # a pod's emptyDir goes with it
        return
    kept = harness.outputs_of("outputs")
    for r in st.replicas:
        assert (kept / r.id / "started.txt").read_text() == "init ran\n"
    assert all(s.service != "outputs" for s in runtime.services())


def test_rolling_update_replaces_the_generation(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("rolling", ECHO, replicas=2))
    old = wait_status(runtime, "rolling", healthy(2))
    runtime.deploy(
        harness.deployment("rolling", ECHO.replace("VERSION = 1", "VERSION = 2"), generation=2, replicas=2)
    )
    st = wait_status(
        runtime,
        "rolling",
        lambda s: healthy(2)(s) and all(r.generation == 2 for r in s.replicas),
        what="generation 2 only",
    )
    assert {r.id for r in st.replicas}.isdisjoint({r.id for r in old.replicas})
    assert all(score_at(r, {})["version"] == 2 for r in st.replicas)


def test_adopt_after_a_control_plane_restart(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("adopted", ECHO, replicas=2))
    before = wait_status(runtime, "adopted", healthy(2))
    runtime.close()  # the control plane goes away; its replicas stay
    for r in before.replicas:
        assert served_by_replica(score_at(r, {}), r)
    second = harness.make()
    statuses = second.adopt()
    assert [s.service for s in statuses] == ["adopted"]
    after = wait_status(second, "adopted", healthy(2))
    assert {(r.id, r.pid, r.port) for r in after.replicas} == {(r.id, r.pid, r.port) for r in before.replicas}
    assert all(r.restarts == 0 for r in after.replicas)
    # and the new instance supervises them: a crash is restarted
    victim = after.replicas[0]
    harness.crash(victim)
    healed = wait_status(
        second,
        "adopted",
        lambda s: (
            healthy(2)(s) and any(r.id == victim.id and r.restarts > victim.restarts for r in s.replicas)
        ),
        what="the killed replica restarted by the adopting runtime",
    )
    assert {r.id for r in healed.replicas} == {r.id for r in before.replicas}


def test_adopt_restarts_replicas_that_died_meanwhile(harness: Harness, runtime: Runtime) -> None:
    runtime.deploy(harness.deployment("orphan", ECHO))
    before = wait_status(runtime, "orphan", healthy(1)).replicas[0]
    runtime.close()
    harness.crash(before)
    second = harness.make()
    second.adopt()
    after = wait_status(
        second,
        "orphan",
        lambda s: healthy(1)(s) and s.replicas[0].restarts > before.restarts,
        what="the dead replica restarted",
    )
    assert after.replicas[0].id == before.id
    assert served_by_replica(score_at(after.replicas[0], {}), after.replicas[0])


def test_unknown_service_is_not_found(runtime: Runtime) -> None:
    for call in (
        lambda: runtime.status(ServiceName("nope")),
        lambda: runtime.scale(ServiceName("nope"), 2),
        lambda: runtime.delete(ServiceName("nope")),
        lambda: runtime.logs(ServiceName("nope")),
    ):
        with pytest.raises(NotFoundError):
            call()
