"""The metadata tables at the migration head (SQLAlchemy Core).

This module describes the *current* schema for queries; the migrations under ``migrations/versions``
are frozen snapshots that build it step by step, so a change here always comes with a new revision.

Foreign keys are declared for PostgreSQL's integrity checks; on SQLite they stay unenforced (the
``foreign_keys`` pragma is off) because Alembic's batch mode recreates tables and would otherwise
cascade or refuse. The store deletes child rows itself, so both backends behave the same.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "environments",
    "metadata",
    "model_files",
    "model_properties",
    "model_tags",
    "model_versions",
    "models",
    "service_keys",
    "service_models",
    "services",
    "snapshots",
]

metadata = sa.MetaData()

NAME = sa.String(255)
TIME = sa.DateTime(timezone=True)

# One row per model name: the last version handed out. Versions are never reused, even after a delete.
model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("last_version", sa.Integer, nullable=False),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("basename", sa.String(1024), nullable=False),
    sa.Column("is_dir", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("framework", sa.String(64), nullable=True),
    sa.Column("framework_version", sa.String(64), nullable=True),
    sa.Column("created_time", TIME, nullable=False),
    sa.UniqueConstraint("name", "version", name="uq_models_name_version"),
)

model_files = sa.Table(
    "model_files",
    metadata,
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("models.id", name="fk_model_files_model"), primary_key=True
    ),
    sa.Column("path", sa.String(4096), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("executable", sa.Boolean, nullable=False),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("models.id", name="fk_model_tags_model"), primary_key=True
    ),
    sa.Column("key", NAME, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

model_properties = sa.Table(
    "model_properties",
    metadata,
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("models.id", name="fk_model_properties_model"), primary_key=True
    ),
    sa.Column("key", NAME, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Filled by the deploy work: which model versions a service runs. A model in here cannot be deleted.
service_models = sa.Table(
    "service_models",
    metadata,
    sa.Column("service_name", sa.String(64), primary_key=True),
    sa.Column("model_name", NAME, primary_key=True),
    sa.Column("model_version", sa.Integer, primary_key=True),
    sa.Index("ix_service_models_model", "model_name", "model_version"),
)

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", NAME, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec_hash", sa.String(128), nullable=False, index=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("python_version", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=True),
    sa.Column("log", sa.Text, nullable=True),
    sa.Column("created_time", TIME, nullable=False),
    sa.Column("updated_time", TIME, nullable=False),
    sa.UniqueConstraint("name", "version", name="uq_environments_name_version"),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("entry_script", sa.Text, nullable=False),
    sa.Column("created_time", TIME, nullable=False),
)

# One row per deployed service (revision 0002). ``config`` is the resolved v1 deployment payload
# without its keys; ``state``/``error`` are what the last operation left (the live state comes from
# the runtime). Models are in ``service_models``.
services = sa.Table(
    "services",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("compute_type", sa.String(16), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("entry_script", sa.Text, nullable=False),
    sa.Column("source_dir", sa.Text, nullable=False),
    sa.Column("snapshot", sa.String(64), nullable=True),
    sa.Column("environment_name", NAME, nullable=True),
    sa.Column("environment_version", sa.Integer, nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("created_time", TIME, nullable=False),
    sa.Column("updated_time", TIME, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=True),
)

# The service keys are secrets: kept apart so that no listing ever loads them by accident.
service_keys = sa.Table(
    "service_keys",
    metadata,
    sa.Column("service_name", sa.String(64), primary_key=True),
    sa.Column("primary_key", sa.Text, nullable=False),
    sa.Column("secondary_key", sa.Text, nullable=False),
)
