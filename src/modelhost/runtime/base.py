"""The runtime seam: what the control plane asks of any place replicas run, and the values it gets back.

One :class:`Runtime` Protocol, implemented by ``local`` (supervised processes on this machine) and,
later, ``kubernetes`` (Deployments scaled through the ``scale`` subresource). It works at the level
of a *service*: the caller hands over a whole :class:`ServiceDeployment` and asks for a replica
count; the runtime owns replicas, restarts, logs and clean-up. The tests in ``tests/contract`` are
written against this Protocol only and run over every implementation.

This module holds the Protocol and frozen value types only; no implementation, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from modelhost.types import ReplicaId, ServiceName

__all__ = [
    "ModelFileSpec",
    "ModelSpec",
    "ProbeSettings",
    "ReplicaState",
    "ReplicaStatus",
    "Resources",
    "Runtime",
    "ServiceDeployment",
    "ServiceState",
    "ServiceStatus",
]

ReplicaState = Literal["starting", "ready", "crashed", "failed", "stopping"]
"""``starting``: launched, ``GET /`` not yet 200 · ``ready``: serving · ``crashed``: exited, waiting
for its restart (backoff) · ``failed``: given up (init keeps failing) · ``stopping``: being stopped."""

ServiceState = Literal["Transitioning", "Healthy", "Unhealthy", "Failed"]
"""v1's service states: ``Healthy`` when every wanted replica of the current generation is ready,
``Failed`` when the runtime gave up on it, ``Unhealthy`` while a replica that served is restarting,
``Transitioning`` otherwise (starting, scaling, rolling to a new generation)."""


@dataclass(frozen=True)
class ModelFileSpec:
    """One file of a registered model, placed at ``azureml-models/<name>/<version>/<path>``.

    ``path`` is relative: a file model's path is its base name (``model.pkl``), a folder model's
    paths are ``<basename>/<rel>`` (``model/weights.bin``). The bytes come from the artifact store
    (``sha256``) or from an existing file (``source``); exactly one of the two is set.
    """

    path: str
    sha256: str | None = None
    source: Path | None = None
    executable: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A registered model as a replica sees it: ``Model.get_model_path(name)`` finds its files."""

    name: str
    version: int
    files: tuple[ModelFileSpec, ...]


@dataclass(frozen=True)
class ProbeSettings:
    """v1's ``livenessProbeRequirements`` (defaults as AKS applies them).

    A starting replica has ``initial_delay_seconds + failure_threshold * period_seconds`` to answer
    ``GET /`` with 200; a ready one is probed every ``period_seconds`` (each probe waits at most
    ``timeout_seconds``) and restarted after ``failure_threshold`` failures in a row.
    """

    period_seconds: int = 10
    initial_delay_seconds: int = 310
    timeout_seconds: int = 2
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Resources:
    """v1's ``containerResourceRequirements`` for one replica.

    ``memory_gb_limit`` / ``cpu_cores_limit`` default to the request (what a replica may use is
    what it asked for). How each runtime enforces them is its own business (see docs/runtime.md).
    """

    cpu_cores: float = 0.1
    memory_gb: float = 0.5
    gpu_cores: int = 0
    cpu_cores_limit: float | None = None
    memory_gb_limit: float | None = None


@dataclass(frozen=True)
class ServiceDeployment:
    """Everything a runtime needs to run one generation of a service.

    The replica's application root holds the snapshot unpacked under ``source_dir`` and the models
    under ``azureml-models``; ``entry_script`` is relative to ``source_dir``. Without a snapshot,
    ``entry_script`` is an absolute path to a lone script, copied into ``source_dir``.
    ``generation`` grows with every update; deploying a new generation replaces the replicas of the
    old one once the new ones are ready.
    """

    service: ServiceName
    generation: int
    python: Path
    entry_script: str
    source_dir: str
    snapshot: Path | None = None
    models: tuple[ModelSpec, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    replicas: int = 1
    max_concurrent_requests: int = 1
    scoring_timeout_ms: int = 60_000
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    # Added for LocalWebservice.deploy_configuration(port=...) (control-services): a fixed port for
    # the replica (one replica only; the runtime picks a free port when None).
    port: int | None = None
    # Added for the Kubernetes runtime (the control plane fills them; local ignores them): the
    # environment's content hash names its image, the snapshot's sha256 names the blob pods fetch.
    environment_hash: str | None = None
    snapshot_sha256: str | None = None


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica as the router and the control plane see it. ``host``/``port`` are where it
    serves (meaningful when ``state == "ready"``); ``pid`` is None where no local process exists."""

    id: ReplicaId
    service: ServiceName
    generation: int
    state: ReplicaState
    host: str
    port: int
    pid: int | None
    restarts: int
    last_error: str | None
    started_at: float


@dataclass(frozen=True)
class ServiceStatus:
    """A service's replicas (all generations still running) and its v1 state.

    ``generation`` is the newest deployed one; ``desired_replicas`` counts its wanted replicas.
    ``error`` carries the reason of a ``Failed`` state (v1's CrashLoopBackOff message).
    """

    service: ServiceName
    generation: int
    state: ServiceState
    desired_replicas: int
    replicas: tuple[ReplicaStatus, ...]
    error: str | None = None

    @property
    def ready(self) -> tuple[ReplicaStatus, ...]:
        """The replicas that serve now (any generation): what the router routes to."""
        return tuple(r for r in self.replicas if r.state == "ready")


class Runtime(Protocol):
    """Where replicas run. Every method is safe to call from any thread.

    Calls return promptly: ``deploy`` and ``scale`` start work and return the status at that moment;
    callers poll :meth:`status` (with a deadline) for ``Healthy`` or ``Failed``.
    """

    def deploy(self, deployment: ServiceDeployment) -> ServiceStatus:
        """Create the service, or roll it to ``deployment.generation`` (new replicas first, the old
        generation stopped once they are ready). Raises ValidationError for a spec this runtime
        cannot run (resources larger than the machine, missing artifacts), ConflictError for a
        generation older than the deployed one or GPUs all in use."""
        ...

    def scale(self, service: ServiceName, replicas: int) -> ServiceStatus:
        """Start or stop replicas of the current generation until ``replicas`` are wanted.
        Raises NotFoundError for an unknown service, ValidationError for a negative count."""
        ...

    def stop_replica(self, replica: ReplicaId, grace_s: float = 10.0) -> ServiceStatus:
        """Stop one replica (the caller drained it first) and want one replica fewer: SIGTERM (or
        the platform's equivalent), then a hard kill after ``grace_s``. NotFoundError if unknown."""
        ...

    def status(self, service: ServiceName) -> ServiceStatus:
        """The service's replicas and state now. NotFoundError for an unknown service."""
        ...

    def services(self) -> list[ServiceStatus]:
        """Every service this runtime runs, by name."""
        ...

    def logs(self, service: ServiceName, *, replica: ReplicaId | None = None, tail: int = 5000) -> str:
        """The last ``tail`` lines of a replica's output (stdout and stderr, across its restarts);
        without ``replica``, each replica's under a ``==> <replica-id> <==`` header."""
        ...

    def delete(self, service: ServiceName) -> None:
        """Stop every replica, wait until they are gone and forget the service. What the replicas
        wrote to ``./outputs`` and their logs are kept. NotFoundError for an unknown service."""
        ...

    def adopt(self) -> list[ServiceStatus]:
        """After a control-plane restart: supervise again the replicas a previous instance left
        running (without restarting them) and restart those that died. Returns every service."""
        ...

    def close(self) -> None:
        """Stop supervising and release this instance's resources; replicas keep running, for a
        later instance to :meth:`adopt`."""
        ...
