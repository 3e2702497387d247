"""What only the local runtime promises: processes that outlive the control plane, one-machine
resource limits, GPU allocation over a (fake) inventory, one supervisor per workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelhost.errors import ConflictError, NotFoundError, ValidationError
from modelhost.runtime.base import ModelFileSpec, ModelSpec, Resources
from modelhost.runtime.gpus import Gpu
from modelhost.runtime.local import LocalRuntime, detect_machine
from modelhost.runtime.resources import GIB, Machine
from modelhost.runtime.state import deployment_to_json
from modelhost.types import ServiceName
from tests.contract.conftest import (
    FAST_POLICY,
    Harness,
    healthy,
    score,
    served_by,
    wait_status,
)

LIMITS = """
    import os, resource

    def init():
        pass

    def run(raw):
        return {"pid": os.getpid(), "ppid": os.getppid(),
                "rlimit_data": resource.getrlimit(resource.RLIMIT_DATA)[0],
                "cpus": sorted(os.sched_getaffinity(0)), "nice": os.nice(0),
                "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "order": os.environ.get("CUDA_DEVICE_ORDER"),
                "user_var": os.environ.get("USER_VAR"), "model_dir": os.environ.get("AZUREML_MODEL_DIR")}
"""


def _runtime(home: Path, machine: Machine | None = None) -> LocalRuntime:
    return LocalRuntime(home, policy=FAST_POLICY, stop_grace_s=5.0, machine=machine, gpus=lambda: ())


@pytest.fixture
def local(harness: Harness) -> Harness:
    if harness.kind != "local":
        pytest.skip("local runtime only")
    return harness


def _fake_machine(gpus: int) -> Machine:
    real = detect_machine(lambda: ())
    return Machine(
        cpus=real.cpus,
        memory_bytes=real.memory_bytes,
        gpus=tuple(Gpu(index=i, uuid=f"GPU-fake-{i}") for i in range(gpus)),
    )


def test_replicas_outlive_the_control_plane_process(local: Harness) -> None:
    d = local.deployment("survivor", LIMITS)
    spec = local.work / "survivor.json"
    spec.write_text(json.dumps(deployment_to_json(d)))
    child = textwrap.dedent(f"""
        import json, os, sys, time
        from pathlib import Path
        from modelhost.runtime.local import LocalRuntime
        from modelhost.runtime.state import deployment_from_json
        rt = LocalRuntime(Path({str(local.home)!r}), gpus=lambda: ())
        rt.deploy(deployment_from_json(json.loads(Path({str(spec)!r}).read_text())))
        end = time.monotonic() + 60
        while rt.status("survivor").state != "Healthy" and time.monotonic() < end:
            time.sleep(0.05)
        print(json.dumps([r.pid for r in rt.status("survivor").replicas]), flush=True)
        os._exit(0)  # the control plane dies without stopping anything
    """)
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=True
    )
    pids = json.loads(out.stdout.strip().splitlines()[-1])
    rt = local.make()
    st = rt.adopt()[0]
    assert [r.pid for r in st.replicas] == pids
    st = wait_status(rt, "survivor", healthy(1))
    assert served_by(score(st.replicas[0].port, {}), pids[0])


def test_process_limits_follow_the_resources(local: Harness, tmp_path: Path) -> None:
    rt = _runtime(tmp_path / "h")
    res = Resources(cpu_cores=0.5, memory_gb=1.5)
    rt.deploy(local.deployment("limited", LIMITS, replicas=2, resources=res, env={"USER_VAR": "x"}))
    try:
        st = wait_status(rt, "limited", healthy(2))
        answers = [score(r.port, {}) for r in st.replicas]
        assert all(a["rlimit_data"] == int(1.5 * GIB) for a in answers)
        assert all(len(a["cpus"]) == 1 and a["nice"] == 5 for a in answers)  # type: ignore[arg-type]
        if len(os.sched_getaffinity(0)) >= 2:
            assert answers[0]["cpus"] != answers[1]["cpus"]  # spread over the CPUs
        assert all(a["cuda"] == "" and a["order"] == "PCI_BUS_ID" and a["user_var"] == "x" for a in answers)
    finally:
        rt.delete(ServiceName("limited"))
        rt.close()


def test_resources_larger_than_the_machine_are_refused(local: Harness, runtime: LocalRuntime) -> None:
    cpus = len(os.sched_getaffinity(0))
    with pytest.raises(
        ValidationError, match=rf"cpu_cores={cpus + 1} requested but this machine has {cpus} CPUs"
    ):
        runtime.deploy(local.deployment("big", LIMITS, resources=Resources(cpu_cores=cpus + 1)))
    with pytest.raises(ValidationError, match="memory_gb=100000 requested"):
        runtime.deploy(local.deployment("big", LIMITS, resources=Resources(memory_gb=100_000)))
    assert runtime.services() == []


def test_gpus_are_refused_when_there_are_none(local: Harness, runtime: LocalRuntime) -> None:
    with pytest.raises(ValidationError, match=r"gpu_cores=1 requested .* has 0 GPUs available \(0 in use\)"):
        runtime.deploy(local.deployment("gpu", LIMITS, resources=Resources(gpu_cores=1)))


def test_gpus_are_allocated_one_replica_each(local: Harness, tmp_path: Path) -> None:
    rt = _runtime(tmp_path / "h", machine=_fake_machine(2))
    try:
        rt.deploy(local.deployment("gpu", LIMITS, replicas=2, resources=Resources(gpu_cores=1)))
        st = wait_status(rt, "gpu", healthy(2))
        assert sorted(str(score(r.port, {})["cuda"]) for r in st.replicas) == ["0", "1"]
        with pytest.raises(ConflictError, match=r"has 0 GPUs available \(2 in use\)"):
            rt.scale(ServiceName("gpu"), 3)
        with pytest.raises(ConflictError):
            rt.deploy(local.deployment("other", LIMITS, resources=Resources(gpu_cores=1)))
        # an update cannot surge onto GPUs that are all taken: the old replicas make room first
        rt.deploy(local.deployment("gpu", LIMITS, replicas=2, generation=2, resources=Resources(gpu_cores=1)))
        st = wait_status(rt, "gpu", lambda s: healthy(2)(s) and all(r.generation == 2 for r in s.replicas))
        assert sorted(str(score(r.port, {})["cuda"]) for r in st.replicas) == ["0", "1"]
    finally:
        for s in rt.services():
            rt.delete(s.service)
        rt.close()


def test_one_supervisor_per_workspace(local: Harness, runtime: LocalRuntime) -> None:
    with pytest.raises(ConflictError, match="another local runtime"):
        _runtime(local.home)


def test_redeploying_a_generation(local: Harness, runtime: LocalRuntime) -> None:
    d = local.deployment("gen", LIMITS, generation=2)
    runtime.deploy(d)
    first = wait_status(runtime, "gen", healthy(1))
    again = runtime.deploy(d)  # the same spec again: nothing changes
    assert [r.id for r in again.replicas] == [r.id for r in first.replicas]
    with pytest.raises(ConflictError, match="already runs generation 2"):
        runtime.deploy(local.deployment("gen", LIMITS, generation=1))


def test_a_missing_blob_fails_the_deploy_cleanly(local: Harness, runtime: LocalRuntime) -> None:
    model = ModelSpec(name="ghost", version=1, files=(ModelFileSpec(path="m.bin", sha256="0" * 64),))
    with pytest.raises(NotFoundError, match="not found"):
        runtime.deploy(local.deployment("ghost", LIMITS, models=(model,)))
    assert runtime.services() == []
    assert local.temp_folders_of("ghost") == []


def test_stop_replica_stops_that_one(local: Harness, runtime: LocalRuntime) -> None:
    runtime.deploy(local.deployment("drained", LIMITS, replicas=2))
    st = wait_status(runtime, "drained", healthy(2))
    victim, keeper = st.replicas
    runtime.stop_replica(victim.id, grace_s=2.0)
    st = wait_status(runtime, "drained", healthy(1))
    assert st.desired_replicas == 1
    assert [r.id for r in st.replicas] == [keeper.id]
    with pytest.raises(NotFoundError):
        runtime.stop_replica(victim.id)
