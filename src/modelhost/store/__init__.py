"""The workspace store: metadata (models, environments, snapshots, services) and content-addressed artifacts.

``Store.open(settings.database_url)`` and ``ArtifactStore(settings.blobs_dir)`` are the two entry
points; everything they return is a frozen record from :mod:`modelhost.store.records`.
"""

from __future__ import annotations

from modelhost.store.artifacts import ArtifactStore, is_digest
from modelhost.store.metadata import Store
from modelhost.store.model_files import ModelManifest, collect_model, materialize_model
from modelhost.store.records import (
    ENVIRONMENT_STATUSES,
    EnvironmentRecord,
    ModelFile,
    ModelRecord,
    ServiceKeys,
    ServiceRecord,
    SnapshotRecord,
)

__all__ = [
    "ENVIRONMENT_STATUSES",
    "ArtifactStore",
    "EnvironmentRecord",
    "ModelFile",
    "ModelManifest",
    "ModelRecord",
    "ServiceKeys",
    "ServiceRecord",
    "SnapshotRecord",
    "Store",
    "collect_model",
    "is_digest",
    "materialize_model",
]
