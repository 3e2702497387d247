"""The local runtime's state files: one JSON document per service, so a restarted control plane can
adopt the replicas a previous one left running. Written atomically (temp file + ``os.replace``)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelhost.runtime.base import ModelFileSpec, ModelSpec, ProbeSettings, Resources, ServiceDeployment
from modelhost.types import ServiceName

__all__ = ["ReplicaRecord", "ServiceRecord", "deployment_from_json", "deployment_to_json", "load", "save"]

FORMAT = 1


@dataclass
class ReplicaRecord:
    id: str
    generation: int
    state: str
    pid: int | None
    port: int
    argv: list[str]
    folder: str
    log: str
    started_at: float
    restarts: int
    cpus: list[int]
    gpus: list[int]
    nice: int
    memory_bytes: int
    ever_ready: bool = False
    last_error: str | None = None


@dataclass
class ServiceRecord:
    service: str
    generation: int
    desired: int
    error: str | None
    deployments: dict[int, ServiceDeployment]
    replicas: list[ReplicaRecord] = field(default_factory=list)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def deployment_to_json(d: ServiceDeployment) -> dict[str, Any]:
    return dict(_plain(asdict(d)))


def _model_from_json(m: dict[str, Any]) -> ModelSpec:
    files = tuple(
        ModelFileSpec(
            path=f["path"],
            sha256=f.get("sha256"),
            source=Path(f["source"]) if f.get("source") else None,
            executable=bool(f.get("executable")),
        )
        for f in m["files"]
    )
    return ModelSpec(name=m["name"], version=int(m["version"]), files=files)


def deployment_from_json(doc: dict[str, Any]) -> ServiceDeployment:
    return ServiceDeployment(
        service=ServiceName(doc["service"]),
        generation=int(doc["generation"]),
        python=Path(doc["python"]),
        entry_script=doc["entry_script"],
        source_dir=doc["source_dir"],
        snapshot=Path(doc["snapshot"]) if doc.get("snapshot") else None,
        models=tuple(_model_from_json(m) for m in doc.get("models", [])),
        env=dict(doc.get("env", {})),
        resources=Resources(**doc.get("resources", {})),
        replicas=int(doc.get("replicas", 1)),
        max_concurrent_requests=int(doc.get("max_concurrent_requests", 1)),
        scoring_timeout_ms=int(doc.get("scoring_timeout_ms", 60_000)),
        probe=ProbeSettings(**doc.get("probe", {})),
        port=int(doc["port"]) if doc.get("port") else None,  # fixed port of a Local service
        environment_hash=doc.get("environment_hash"),  # added with the Kubernetes runtime
        snapshot_sha256=doc.get("snapshot_sha256"),
    )


def save(path: Path, record: ServiceRecord) -> None:
    doc = {
        "format": FORMAT,
        "service": record.service,
        "generation": record.generation,
        "desired": record.desired,
        "error": record.error,
        "deployments": {str(g): deployment_to_json(d) for g, d in record.deployments.items()},
        "replicas": [asdict(r) for r in record.replicas],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: Path) -> ServiceRecord:
    doc = json.loads(path.read_text())
    return ServiceRecord(
        service=doc["service"],
        generation=int(doc["generation"]),
        desired=int(doc["desired"]),
        error=doc.get("error"),
        deployments={int(g): deployment_from_json(d) for g, d in doc["deployments"].items()},
        replicas=[ReplicaRecord(**r) for r in doc["replicas"]],
    )
