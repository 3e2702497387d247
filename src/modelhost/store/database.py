"""Engines for the store's URLs: SQLite (WAL, busy timeout, write transactions) or PostgreSQL.

* ``sqlite:///<path>`` creates the parent folder, turns on WAL and a 30 s busy timeout, and lets
  :func:`write_connection` start ``BEGIN IMMEDIATE`` so writers queue instead of failing with
  "database is locked" when a snapshot is upgraded to a write.
* ``postgresql://``, ``postgres://`` and ``postgresql+psycopg://`` all use psycopg 3.

Every failure to reach the database becomes :class:`StoreUnavailableError` naming the URL with its
password masked.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.pool import StaticPool

from modelhost.errors import StoreUnavailableError

__all__ = ["BUSY_TIMEOUT_S", "create_engine", "mask_url", "one_line", "unavailable", "write_connection"]

BUSY_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 10

_SUPPORTED = "sqlite:///<path> or postgresql+psycopg://user:password@host:port/database"


def mask_url(url: str | sa.URL) -> str:
    """The URL for messages and display, with its password replaced by ``***``."""
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def one_line(error: BaseException) -> str:
    """A driver error as one line (the DBAPI's own message, without SQLAlchemy's boilerplate)."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error) or type(error).__name__
    return " ".join(text.split())


def unavailable(url: str | sa.URL, reason: str) -> StoreUnavailableError:
    return StoreUnavailableError(f"cannot open the store at {mask_url(url)}: {reason}")


def _parse(url: str) -> sa.URL:
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError as error:
        raise unavailable(url, f"not a database URL; use {_SUPPORTED}") from error
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise unavailable(url, f"unsupported database {parsed.drivername!r}; use {_SUPPORTED}")


def _sqlite_file(url: sa.URL) -> Path | None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; creates a SQLite file's parent folder. Does not connect yet."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(
            parsed, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S}
        )
    path = _sqlite_file(parsed)
    if path is not None:
        try:
            path.expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise unavailable(
                url, f"cannot create the folder {path.parent}: {error.strerror or error}"
            ) from error
        engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
    else:  # in-memory: one shared connection, or every checkout would see an empty database
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    _configure_sqlite(engine, wal=path is not None)
    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, retrying while another process holds it.

    Changing the journal mode needs the database to itself, and SQLite answers "database is locked"
    at once rather than waiting out the busy timeout when another process is, say, migrating a new
    workspace; WAL is a property of the file, so once any process has switched it this is a no-op.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _configure_sqlite(engine: sa.Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so we can choose BEGIN IMMEDIATE for writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if wal:
                _enable_wal(cursor)
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("modelhost_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def write_connection(engine: sa.Engine) -> sa.Connection:
    """A connection whose transactions take the write lock up front (SQLite); plain on PostgreSQL."""
    return engine.connect().execution_options(modelhost_write=True)
