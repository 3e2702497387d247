"""State files round-trip everything adoption needs."""

from __future__ import annotations

from pathlib import Path

from modelhost.runtime.base import ModelFileSpec, ModelSpec, ProbeSettings, Resources, ServiceDeployment
from modelhost.runtime.state import ReplicaRecord, ServiceRecord, load, save
from modelhost.types import ServiceName


def test_round_trip(tmp_path: Path) -> None:
    d = ServiceDeployment(
        service=ServiceName("svc"),
        generation=3,
        python=Path("/env/bin/python"),
        entry_script="score.py",
        source_dir="src",
        snapshot=Path("/snap.zip"),
        models=(
            ModelSpec(
                "m",
                1,
                (ModelFileSpec("a", sha256="f" * 64), ModelFileSpec("b", source=Path("/b"), executable=True)),
            ),
        ),
        env={"A": "1"},
        resources=Resources(cpu_cores=0.5, memory_gb=2, gpu_cores=1, memory_gb_limit=3),
        replicas=2,
        max_concurrent_requests=4,
        scoring_timeout_ms=1000,
        probe=ProbeSettings(
            period_seconds=3, initial_delay_seconds=4, timeout_seconds=5, failure_threshold=6
        ),
    )
    replica = ReplicaRecord(
        id="svc-3-abc",
        generation=3,
        state="ready",
        pid=42,
        port=5000,
        argv=["py", "-m", "x"],
        folder="/f",
        log="/l",
        started_at=1.5,
        restarts=2,
        cpus=[0],
        gpus=[1],
        nice=5,
        memory_bytes=10,
        ever_ready=True,
        last_error=None,
    )
    record = ServiceRecord(
        service="svc", generation=3, desired=2, error=None, deployments={3: d}, replicas=[replica]
    )
    path = tmp_path / "state" / "svc.json"
    save(path, record)
    assert load(path) == record
    assert [p.name for p in path.parent.iterdir()] == ["svc.json"]
