"""Frozen records the store returns (re-exported by :mod:`modelhost.store.metadata`).

Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ENVIRONMENT_STATUSES",
    "SERVICE_STATES",
    "EnvironmentRecord",
    "ModelFile",
    "ModelRecord",
    "ServiceKeys",
    "ServiceRecord",
    "SnapshotRecord",
    "as_utc",
]

ENVIRONMENT_STATUSES = ("building", "ready", "failed")


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, stored as one blob.

    ``path`` is posix and includes the model's basename: for a file model it *is* the basename
    (``model.pkl``); for a folder model it is ``"<basename>/<path inside the folder>"``
    (``model/weights/w.bin``), which is the layout under ``azureml-models/<name>/<version>/``.
    """

    path: str
    sha256: str
    size: int
    executable: bool = False


@dataclass(frozen=True)
class ModelRecord:
    name: str
    version: int
    basename: str
    is_dir: bool
    files: tuple[ModelFile, ...]
    tags: dict[str, str]
    properties: dict[str, str]
    description: str | None
    framework: str | None
    framework_version: str | None
    created_time: datetime

    @property
    def id(self) -> str:
        """v1's model id, ``"<name>:<version>"``."""
        return f"{self.name}:{self.version}"

    @property
    def size(self) -> int:
        """Total bytes of the model's files."""
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class EnvironmentRecord:
    name: str
    version: int
    spec_hash: str
    spec: dict[str, Any]
    python_version: str | None
    status: str  # one of ENVIRONMENT_STATUSES
    path: str | None
    log: str | None
    created_time: datetime
    updated_time: datetime


@dataclass(frozen=True)
class SnapshotRecord:
    """A source-directory snapshot: ``digest`` is the sha256 of its archive blob."""

    digest: str
    size: int
    file_count: int
    entry_script: str
    created_time: datetime


SERVICE_STATES = ("Transitioning", "Healthy", "Unhealthy", "Failed")


@dataclass(frozen=True)
class ServiceRecord:
    """A deployed service as the store keeps it (its keys are apart: :class:`ServiceKeys`).

    ``config`` is the resolved v1 deployment payload (``to_payload()``) without keys; ``models`` are
    model ids ``"name:version"``; ``state``/``error`` are what the last operation recorded.
    """

    name: str
    compute_type: str
    config: dict[str, Any]
    models: tuple[str, ...]
    entry_script: str
    source_dir: str
    snapshot: str | None
    environment_name: str | None
    environment_version: int | None
    generation: int
    state: str  # one of SERVICE_STATES
    error: dict[str, Any] | None
    created_time: datetime
    updated_time: datetime
    created_by: str | None


@dataclass(frozen=True)
class ServiceKeys:
    """A service's two keys. Secrets: never logged, returned only by ``listkeys``."""

    primary: str
    secondary: str

    def __repr__(self) -> str:
        return "ServiceKeys(primary=***, secondary=***)"


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive one is taken to be UTC already, as SQLite returns it)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
