"""Services and their keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    time = sa.DateTime(timezone=True)
    op.create_table(
        "services",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("compute_type", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("entry_script", sa.Text, nullable=False),
        sa.Column("source_dir", sa.Text, nullable=False),
        sa.Column("snapshot", sa.String(64), nullable=True),
        sa.Column("environment_name", sa.String(255), nullable=True),
        sa.Column("environment_version", sa.Integer, nullable=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("created_time", time, nullable=False),
        sa.Column("updated_time", time, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
    )
    op.create_table(
        "service_keys",
        sa.Column("service_name", sa.String(64), primary_key=True),
        sa.Column("primary_key", sa.Text, nullable=False),
        sa.Column("secondary_key", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_keys")
    op.drop_table("services")
