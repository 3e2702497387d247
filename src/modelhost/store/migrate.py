"""Schema migrations with Alembic, run in code when the store opens.

The scripts live in this package (``migrations/``, shipped in the wheel); the Alembic ``Config`` is
built here, so no ``alembic.ini`` is needed. Upgrades hold a lock while they run (a
``BEGIN IMMEDIATE`` write lock on SQLite, a transaction-scoped advisory lock on PostgreSQL), so
processes that open a new workspace at the same moment migrate it once, one after the other.

To write a new revision (from the repository root)::

    .venv/bin/python -c "from modelhost.store.migrate import alembic_config; \\
        from alembic import command; command.revision(alembic_config(), message='add x', rev_id='0002')"

then edit the generated file under ``migrations/versions/`` and ``schema.py`` together.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from modelhost.store.database import write_connection

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "known_revisions",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same in every modelhost process.
_PG_MIGRATION_LOCK = 0x6D6F64656C686F  # "modelho"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic Config for the packaged scripts; ``connection`` is what the migrations run on."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this modelhost knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def upgrade(engine: sa.Engine, target: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``target`` under the migration lock.

    Raises ``alembic.util.CommandError`` for a revision this modelhost does not know, and
    SQLAlchemy's ``OperationalError`` when the database cannot be reached.
    """
    with engine.connect() as conn:
        if target == "head" and current_revision(conn) == head_revision():
            return  # the common case: nothing to do, no write lock taken
    with write_connection(engine) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
        command.upgrade(alembic_config(conn), target)
