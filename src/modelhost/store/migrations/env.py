"""Alembic environment for the modelhost store: online only, on the connection the store hands in.

:func:`modelhost.store.migrate.upgrade` builds the Config in code and passes an open connection
(inside a transaction that holds the migration lock) as ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from modelhost.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("modelhost migrations run online only: use modelhost.store.migrate.upgrade()")

# render_as_batch: SQLite alters tables by copying them; Alembic's batch mode does that for us.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
