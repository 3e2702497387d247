"""Where replicas run: the :class:`Runtime` Protocol and its value types (``base``), and the local
implementation (``local``, imported on demand: it pulls in the snapshot and store code)."""

from modelhost.runtime.base import (
    ModelFileSpec,
    ModelSpec,
    ProbeSettings,
    ReplicaState,
    ReplicaStatus,
    Resources,
    Runtime,
    ServiceDeployment,
    ServiceState,
    ServiceStatus,
)

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
