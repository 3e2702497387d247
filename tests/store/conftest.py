"""Store fixtures: every store test runs against SQLite (a file in tmp_path) and PostgreSQL.

PostgreSQL comes from ``MODELHOST_TEST_POSTGRES_URL`` (``scripts/setup-postgres.sh`` prints it); each
test gets a freshly created schema, dropped afterwards. Without the variable the PostgreSQL cases
are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelhost.store import ArtifactStore, Store
from modelhost.store import schema as t

POSTGRES_ENV = "MODELHOST_TEST_POSTGRES_URL"
TICK_START = datetime(2026, 3, 1, tzinfo=UTC)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def postgres_base_url() -> str:
    """The test server's URL, or skip (fail under CI) when it is not configured."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        reason = (
            f"{POSTGRES_ENV} is not set: run `export {POSTGRES_ENV}=$(scripts/setup-postgres.sh)` "
            "(or `make test`) to run the PostgreSQL cases"
        )
        if _in_ci():
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    return url


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A URL whose connections work in a new, uniquely named schema (``search_path``); dropped afterwards.

    A schema per test keeps tests independent at a fraction of the cost of CREATE DATABASE.
    """
    base = sa.make_url(postgres_base_url())
    schema = f"mh_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            url = base.update_query_dict({"options": f"-csearch_path={schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database's URL: a SQLite file that does not exist yet, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'workspace' / 'modelhost.db'}"
    else:
        with fresh_postgres_schema() as url:
            yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def ticking_store(db_url: str) -> Iterator[Store]:
    """A store whose clock advances one minute per reading, from 2026-03-01 UTC (ordering by time)."""
    ticks = itertools.count()
    opened = Store.open(db_url, clock=lambda: TICK_START + timedelta(minutes=next(ticks)))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "blobs")


def row_counts(store: Store) -> dict[str, int]:
    """Rows per table: a cheap fingerprint to show a refused call wrote nothing."""
    with store.engine.connect() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in t.metadata.sorted_tables
        }
