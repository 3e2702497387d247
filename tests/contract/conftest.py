"""The runtime contract suite's fixtures: one ``harness`` per runtime implementation.

A harness makes runtime instances over one workspace (a second instance stands for a restarted
control plane), builds real deployments (a snapshot of a real entry script, models in the real
artifact store) and does the few implementation-specific things a test needs: crash a replica,
find its kept outputs and its temp folders. Tests talk to the runtime through the Protocol only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelhost.build.snapshot import make_snapshot
from modelhost.runtime.base import (
    ModelFileSpec,
    ModelSpec,
    ProbeSettings,
    ReplicaStatus,
    Resources,
    Runtime,
    ServiceDeployment,
    ServiceStatus,
)
from modelhost.runtime.local import LocalRuntime
from modelhost.runtime.supervision import RestartPolicy
from modelhost.store.artifacts import ArtifactStore
from modelhost.types import ReplicaId, ServiceName


def score(port: int, payload: object, timeout_s: float = 10.0, host: str = "127.0.0.1") -> dict[str, object]:
    """POST ``payload`` as JSON to a replica's /score and decode the JSON answer."""
    req = urllib.request.Request(
        f"http://{host}:{port}/score",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        body = json.loads(resp.read())
    # an entry script returning a JSON string comes back double-encoded, as in v1
    return json.loads(body) if isinstance(body, str) else body


def served_by(answer: dict[str, object], pid: int | None) -> bool:
    """Whether replica process ``pid`` served ``answer`` (the scoring server runs ``run()`` in a
    worker it forks, so the script reports its own pid and its parent's)."""
    return pid is not None and pid in (answer.get("pid"), answer.get("ppid"))


def score_at(replica: ReplicaStatus, payload: object) -> dict[str, object]:
    """``score`` at the replica's own address (a pod has its own IP on Kubernetes)."""
    return score(replica.port, payload, host=replica.host)


def served_by_replica(answer: dict[str, object], replica: ReplicaStatus) -> bool:
    """Whether ``replica`` served ``answer``: the script reports ``MODELHOST_REPLICA_ID`` (and its
    pids, checked where the runtime knows the replica's process)."""
    return answer.get("replica") == replica.id and (replica.pid is None or served_by(answer, replica.pid))


def wait_status(
    rt: Runtime,
    service: str,
    pred: Callable[[ServiceStatus], bool],
    deadline_s: float = 60.0,
    what: str = "status",
) -> ServiceStatus:
    """Poll ``rt.status(service)`` until ``pred`` holds; fail with the last status seen."""
    end = time.monotonic() + deadline_s
    st = rt.status(ServiceName(service))
    while time.monotonic() < end:
        st = rt.status(ServiceName(service))
        if pred(st):
            return st
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {deadline_s} s; last status: {st}")


def healthy(n: int) -> Callable[[ServiceStatus], bool]:
    def pred(st: ServiceStatus) -> bool:
        return (
            st.state == "Healthy" and len(st.replicas) == n and all(r.state == "ready" for r in st.replicas)
        )

    return pred


@dataclass
class Harness:
    kind: str
    home: Path
    work: Path
    make: Callable[[], Runtime]
    kill_replica: Callable[[int], None]
    outputs_of: Callable[[str], Path]
    temp_folders_of: Callable[[str], list[Path]]
    python: Path = field(default_factory=lambda: Path(sys.executable))
    # Added for the kubernetes harness: crash a replica whatever runs it; fill in what a runtime
    # needs beyond the local one's deployment; what only the local runtime promises.
    crash_replica: Callable[[ReplicaStatus], None] | None = None
    prepare: Callable[[ServiceDeployment], ServiceDeployment] = lambda d: d
    gives_up_after: int | None = 3  # starts of a failing init() before Failed (Kubernetes: never stops)
    keeps_outputs: bool = True  # ./outputs kept after delete (an emptyDir on Kubernetes is not)

    def crash(self, replica: ReplicaStatus) -> None:
        if self.crash_replica is not None:
            self.crash_replica(replica)
        else:
            assert replica.pid is not None
            self.kill_replica(replica.pid)

    @property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.home / "blobs")

    def deployment(
        self,
        service: str,
        script: str,
        *,
        models: tuple[ModelSpec, ...] = (),
        replicas: int = 1,
        generation: int = 1,
        env: dict[str, str] | None = None,
        resources: Resources | None = None,
        extra_files: dict[str, str] | None = None,
    ) -> ServiceDeployment:
        src = self.work / f"{service}-g{generation}-src"
        src.mkdir(parents=True, exist_ok=True)
        (src / "score.py").write_text(textwrap.dedent(script))
        for rel, text in (extra_files or {}).items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text(text)
        snap = make_snapshot(src, "score.py", self.work / "snapshots")
        deployment = ServiceDeployment(
            service=ServiceName(service),
            generation=generation,
            python=self.python,
            entry_script="score.py",
            source_dir="src",
            snapshot=snap.path,
            models=models,
            env=env or {},
            replicas=replicas,
            resources=resources or Resources(),
            probe=ProbeSettings(period_seconds=1, initial_delay_seconds=60),
        )
        return self.prepare(deployment)

    def model(self, name: str, version: int, files: dict[str, bytes]) -> ModelSpec:
        store = self.artifacts
        return ModelSpec(
            name=name,
            version=version,
            files=tuple(ModelFileSpec(path=rel, sha256=store.put_bytes(data)) for rel, data in files.items()),
        )


FAST_POLICY = RestartPolicy(base_s=0.2, cap_s=1.0, reset_after_s=60.0, max_start_failures=3)


def _local_harness(tmp_path: Path, made: list[Runtime]) -> Harness:
    home = tmp_path / "home"

    def make() -> Runtime:
        rt = LocalRuntime(home, policy=FAST_POLICY, stop_grace_s=5.0, gpus=lambda: ())
        made.append(rt)
        return rt

    def kill(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def temp_folders(service: str) -> list[Path]:
        root = home / "replicas" / service
        return sorted(root.iterdir()) if root.is_dir() else []

    return Harness(
        kind="local",
        home=home,
        work=tmp_path / "work",
        make=make,
        kill_replica=kill,
        outputs_of=lambda s: home / "services" / s / "outputs",
        temp_folders_of=temp_folders,
    )


def _kubernetes_harness(request: pytest.FixtureRequest, tmp_path: Path, made: list[Runtime]) -> Harness:
    from tests.contract.k8s_harness import kubernetes_parts

    return kubernetes_parts(request, tmp_path / "home", made).harness(tmp_path / "work")


@pytest.fixture(params=["local", "kubernetes"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made: list[Runtime] = []
    if request.param == "kubernetes":
        h = _kubernetes_harness(request, tmp_path, made)
        yield h
        for rt in made:  # the namespace (and every pod in it) goes with the k8s_namespace fixture
            rt.close()
        return
    h = _local_harness(tmp_path, made)
    yield h
    # Leave no replica behind: the last instance deletes what it still knows, every instance closes.
    for rt in made:
        rt.close()
    last = LocalRuntime(h.home, gpus=lambda: ())
    try:
        for st in last.adopt():
            last.delete(st.service)
    finally:
        last.close()


@pytest.fixture
def runtime(harness: Harness) -> Runtime:
    return harness.make()


def replica_ids(st: ServiceStatus) -> list[ReplicaId]:
    return [r.id for r in st.replicas]
