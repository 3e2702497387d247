"""Opening the store: SQLite defaults, unreachable URLs, migrations across revisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from modelhost.errors import StoreUnavailableError
from modelhost.settings import Settings
from modelhost.store import ModelFile, Store, migrate
from modelhost.store import schema as t
from modelhost.store.database import create_engine, write_connection

from .conftest import postgres_base_url

DIGEST = "a" * 64


def test_default_sqlite_url_creates_the_workspace_folder(tmp_path: Path) -> None:
    settings = Settings.from_env({"HOME": str(tmp_path)}, home=tmp_path / "deep" / "ws")
    with Store.open(settings.database_url) as store:
        assert (tmp_path / "deep" / "ws" / "modelhost.db").is_file()
        assert store.dialect == "sqlite"
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_an_uncreatable_sqlite_folder_is_unavailable_and_creates_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker}/ws/modelhost.db"
    with pytest.raises(StoreUnavailableError) as caught:
        Store.open(url)
    message = caught.value.message
    assert "\n" not in message and str(blocker) in message and "cannot create the folder" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_unreachable_postgres_url_is_one_line_with_the_password_masked() -> None:
    url = "postgresql+psycopg://x:s3cret-pw@127.0.0.1:1/db"
    with pytest.raises(StoreUnavailableError) as caught:
        Store.open(url)
    message = caught.value.message
    assert message.startswith("cannot open the store at postgresql+psycopg://x:***@127.0.0.1:1/db: ")
    assert "s3cret-pw" not in message and "\n" not in message
    assert "refused" in message.lower() or "failed" in message.lower()
    assert caught.value.status_code == 503


@pytest.mark.parametrize(
    ("url", "reason"),
    [("mysql://u:pw@localhost/db", "unsupported database 'mysql'"), ("not a url", "not a database URL")],
)
def test_unsupported_urls_are_unavailable(url: str, reason: str) -> None:
    with pytest.raises(StoreUnavailableError, match=reason) as caught:
        Store.open(url)
    assert ":pw@" not in caught.value.message


@pytest.mark.postgres
def test_plain_postgresql_scheme_uses_psycopg() -> None:
    url = sa.make_url(postgres_base_url()).set(drivername="postgresql")
    with Store.open(url.render_as_string(hide_password=False)) as store:
        assert store.dialect == "postgresql"
        assert store.engine.dialect.driver == "psycopg"
        assert f":{url.password}@" not in store.display_url


def test_display_url_masks_the_password(store: Store) -> None:
    password = sa.make_url(store.url).password
    if password:
        assert f":{password}@" not in store.display_url and ":***@" in store.display_url
    assert repr(store) == f"Store({store.display_url!r})"


def test_opening_twice_is_idempotent(db_url: str) -> None:
    with Store.open(db_url) as first:
        first.register_model(name="m", basename="m.pkl", is_dir=False, files=[ModelFile("m.pkl", DIGEST, 1)])
    with Store.open(db_url) as second:
        assert second.get_model("m").version == 1


def test_the_migrated_schema_matches_the_table_definitions(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
        assert diff == []
        assert migrate.current_revision(conn) == migrate.head_revision()


def test_the_migrations_ship_inside_the_package() -> None:
    assert migrate.MIGRATIONS_DIR.is_relative_to(Path(migrate.__file__).parent)
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert (migrate.MIGRATIONS_DIR / "script.py.mako").is_file()
    assert "0001" in migrate.known_revisions()


def _upgrade_to(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        migrate.upgrade(engine, revision)
    finally:
        engine.dispose()


def test_a_workspace_from_the_first_revision_opens_at_head(db_url: str) -> None:
    """Rows written by the oldest schema survive the upgrade Store.open runs."""
    _upgrade_to(db_url, "0001")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    engine = create_engine(db_url)
    try:
        with write_connection(engine) as conn, conn.begin():
            assert migrate.current_revision(conn) == "0001"
            conn.execute(
                sa.text(
                    "INSERT INTO models (id, name, version, basename, is_dir, description, framework, "
                    "framework_version, created_time) VALUES (1, 'old', 1, 'old', :d, 'from 0001', "
                    "'ScikitLearn', '1.4', :c)"
                ),
                {"d": True, "c": created},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO model_files (model_id, path, sha256, size, executable) "
                    "VALUES (1, 'old/w.bin', :s, 7, :x)"
                ),
                {"s": DIGEST, "x": False},
            )
            conn.execute(sa.text("INSERT INTO model_tags (model_id, key, value) VALUES (1, 'stage', 'prod')"))
            conn.execute(sa.text("INSERT INTO model_versions (name, last_version) VALUES ('old', 1)"))
    finally:
        engine.dispose()

    with Store.open(db_url) as store:
        model = store.get_model("old", 1)
        assert model.files == (ModelFile("old/w.bin", DIGEST, 7),)
        assert (model.tags, model.description, model.framework) == (
            {"stage": "prod"},
            "from 0001",
            "ScikitLearn",
        )
        assert model.created_time == created
        assert store.register_model(name="old", basename="o", is_dir=True, files=[]).version == 2
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()


def test_a_schema_from_a_newer_modelhost_is_refused(db_url: str) -> None:
    _upgrade_to(db_url, "head")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreUnavailableError, match="newer modelhost"):
        Store.open(db_url)


def test_alembic_config_builds_without_an_ini_file() -> None:
    cfg = migrate.alembic_config()
    assert cfg.config_file_name is None
    assert cfg.get_main_option("script_location") == str(migrate.MIGRATIONS_DIR)
    command.heads(cfg)  # loads the script directory: every revision file parses
