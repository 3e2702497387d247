"""Initial schema: models (versions, files, tags, properties), service_models, environments, snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = sa.String(255)
    time = sa.DateTime(timezone=True)
    op.create_table(
        "model_versions",
        sa.Column("name", name, primary_key=True),
        sa.Column("last_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", name, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("basename", sa.String(1024), nullable=False),
        sa.Column("is_dir", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("framework", sa.String(64), nullable=True),
        sa.Column("framework_version", sa.String(64), nullable=True),
        sa.Column("created_time", time, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_models_name_version"),
    )
    op.create_table(
        "model_files",
        sa.Column(
            "model_id", sa.Integer, sa.ForeignKey("models.id", name="fk_model_files_model"), primary_key=True
        ),
        sa.Column("path", sa.String(4096), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("executable", sa.Boolean, nullable=False),
    )
    op.create_index("ix_model_files_sha256", "model_files", ["sha256"])
    for table in ("model_tags", "model_properties"):
        op.create_table(
            table,
            sa.Column(
                "model_id", sa.Integer, sa.ForeignKey("models.id", name=f"fk_{table}_model"), primary_key=True
            ),
            sa.Column("key", name, primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
    op.create_table(
        "service_models",
        sa.Column("service_name", sa.String(64), primary_key=True),
        sa.Column("model_name", name, primary_key=True),
        sa.Column("model_version", sa.Integer, primary_key=True),
    )
    op.create_index("ix_service_models_model", "service_models", ["model_name", "model_version"])
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", name, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec_hash", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("python_version", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("log", sa.Text, nullable=True),
        sa.Column("created_time", time, nullable=False),
        sa.Column("updated_time", time, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_environments_name_version"),
    )
    op.create_index("ix_environments_spec_hash", "environments", ["spec_hash"])
    op.create_table(
        "snapshots",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("entry_script", sa.Text, nullable=False),
        sa.Column("created_time", time, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "snapshots",
        "environments",
        "service_models",
        "model_properties",
        "model_tags",
        "model_files",
        "models",
        "model_versions",
    ):
        op.drop_table(table)
