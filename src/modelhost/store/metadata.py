"""The workspace's metadata store: models, environments, snapshots (SQLAlchemy 2 Core).

``Store.open(url)`` connects (SQLite file by default, PostgreSQL by URL), migrates the schema to the
newest revision and returns a thread-safe store; any failure to reach the database raises
:class:`StoreUnavailableError` naming the URL with its password masked.

Model registry semantics follow Azure ML v1: a version is handed out per name (1, 2, 3, ...,
atomically across threads and processes, never reused after a delete); lookups by name give the
newest version; a model used by a service cannot be deleted. Every method validates its input
before it writes, and writes in one transaction, so a refused call leaves the store unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy import exc

from modelhost.errors import ConflictError, NotFoundError, StoreUnavailableError, ValidationError
from modelhost.spec.names import validate_model_name, validate_model_version, validate_service_name
from modelhost.store import migrate
from modelhost.store import schema as t
from modelhost.store._environments import EnvironmentsMixin
from modelhost.store._models import (
    check_filters,
    check_str_map,
    load_models,
    model_not_found,
    model_row,
    next_version,
    replace_pairs,
)
from modelhost.store._services import ServicesMixin
from modelhost.store.artifacts import is_digest
from modelhost.store.database import create_engine, mask_url, one_line, unavailable, write_connection
from modelhost.store.manifest import check_model_files
from modelhost.store.records import (
    EnvironmentRecord,
    ModelFile,
    ModelRecord,
    ServiceKeys,
    ServiceRecord,
    SnapshotRecord,
    as_utc,
)

__all__ = [
    "EnvironmentRecord",
    "ModelFile",
    "ModelRecord",
    "ServiceKeys",
    "ServiceRecord",
    "SnapshotRecord",
    "Store",
]

Clock = Callable[[], datetime]

# How often a write that lost a race on a unique key (two first registrations of one name) retries.
_RACE_RETRIES = 30


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store(EnvironmentsMixin, ServicesMixin):
    """Metadata of one workspace. Create with :meth:`open`; share one instance between threads."""

    def __init__(self, engine: sa.Engine, url: str, *, clock: Clock = _utc_now) -> None:
        self._engine = engine
        self.url = url
        self.display_url = mask_url(url)
        self._clock = clock

    @classmethod
    def open(cls, url: str, *, clock: Clock | None = None) -> Store:
        """Connect to ``url`` and migrate it to the newest schema revision."""
        engine = create_engine(url)
        try:
            migrate.upgrade(engine)
        except exc.DBAPIError as error:
            engine.dispose()
            raise unavailable(url, one_line(error)) from error
        except CommandError as error:
            engine.dispose()
            raise unavailable(
                url, f"its schema was written by a newer modelhost ({error}); upgrade modelhost to open it"
            ) from error
        return cls(engine, url, clock=clock or _utc_now)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations, tests and tools; modules use the methods)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # -- transactions --------------------------------------------------------------------------

    def _now(self) -> datetime:
        return as_utc(self._clock())

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise self._unavailable(error) from error

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One transaction that takes the write lock up front; rolled back on any exception."""
        try:
            with write_connection(self._engine) as conn, conn.begin():
                yield conn
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise self._unavailable(error) from error

    def _unavailable(self, error: BaseException) -> StoreUnavailableError:
        return unavailable(self.url, one_line(error))

    def _retrying(self, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` again when it lost a race on a unique key (another writer got there first)."""
        for n in range(_RACE_RETRIES):
            try:
                return attempt()
            except exc.IntegrityError as error:
                if n == _RACE_RETRIES - 1:
                    raise ConflictError(
                        f"gave up after {n + 1} conflicting writes: {one_line(error)}"
                    ) from error
                time.sleep(random.uniform(0.001, 0.01 * (n + 1)))
        raise AssertionError("unreachable")

    # -- models --------------------------------------------------------------------------------

    def register_model(
        self,
        *,
        name: str,
        basename: str,
        is_dir: bool,
        files: Sequence[ModelFile],
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        framework: str | None = None,
        framework_version: str | None = None,
    ) -> ModelRecord:
        """Record a new version of model ``name`` (1 for a new name) and return it."""
        validate_model_name(name)
        checked = check_model_files(basename, bool(is_dir), files)
        tag_map = check_str_map("tags", tags)
        prop_map = check_str_map("properties", properties)
        _check_optional_str("description", description)
        _check_optional_str("framework", framework, limit=64)
        _check_optional_str("framework_version", framework_version, limit=64)
        if framework_version is not None and framework is None:
            raise ValidationError(
                "model_framework_version was given without model_framework",
                hint="Pass model_framework too, e.g. 'ScikitLearn'.",
            )

        def attempt() -> ModelRecord:
            with self._write() as conn:
                version = next_version(conn, name)
                created = self._now()  # read under the lock, so times rise with versions
                key = conn.execute(
                    sa.insert(t.models).values(
                        name=name,
                        version=version,
                        basename=basename,
                        is_dir=bool(is_dir),
                        description=description,
                        framework=framework,
                        framework_version=framework_version,
                        created_time=created,
                    )
                ).inserted_primary_key
                assert key is not None
                model_id = key[0]
                if checked:
                    conn.execute(
                        sa.insert(t.model_files),
                        [
                            {
                                "model_id": model_id,
                                "path": f.path,
                                "sha256": f.sha256,
                                "size": f.size,
                                "executable": f.executable,
                            }
                            for f in checked
                        ],
                    )
                replace_pairs(conn, t.model_tags, model_id, tag_map, ())
                replace_pairs(conn, t.model_properties, model_id, prop_map, ())
            return ModelRecord(
                name=name,
                version=version,
                basename=basename,
                is_dir=bool(is_dir),
                files=checked,
                tags=tag_map,
                properties=prop_map,
                description=description,
                framework=framework,
                framework_version=framework_version,
                created_time=created,
            )

        result: ModelRecord = self._retrying(attempt)
        return result

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        """The newest version of ``name``, or exactly ``name:version``; ``ModelNotFoundError`` if absent."""
        if version is not None:
            validate_model_version(version)
        with self._read() as conn:
            row = model_row(conn, name, version)
            if row is None:
                raise model_not_found(name, version)
            return load_models(conn, [row])[0]

    def list_models(
        self,
        *,
        name: str | None = None,
        tags: Sequence[str | Sequence[str]] | None = None,
        properties: Sequence[str | Sequence[str]] | None = None,
        latest: bool = False,
        framework: str | None = None,
    ) -> list[ModelRecord]:
        """Models matching every filter, newest first.

        ``tags``/``properties`` items are a key (present) or a ``[key, value]`` pair (equal). With
        ``latest`` only the newest version of each name *among the matches* is kept.
        """
        query = sa.select(t.models).order_by(t.models.c.created_time.desc(), t.models.c.id.desc())
        if name is not None:
            query = query.where(t.models.c.name == name)
        if framework is not None:
            query = query.where(t.models.c.framework == framework)
        for table, items in (
            (t.model_tags, check_filters("tags", tags)),
            (t.model_properties, check_filters("properties", properties)),
        ):
            for key, value in items:
                match = sa.select(table.c.model_id).where(
                    table.c.model_id == t.models.c.id, table.c.key == key
                )
                if value is not None:
                    match = match.where(table.c.value == value)
                query = query.where(match.exists())
        with self._read() as conn:
            rows = list(conn.execute(query))
            if latest:
                newest: dict[str, int] = {}
                for row in rows:
                    newest[row.name] = max(newest.get(row.name, 0), row.version)
                rows = [row for row in rows if row.version == newest[row.name]]
            return load_models(conn, rows)

    def delete_model(self, name: str, version: int) -> None:
        """Delete ``name:version``; ``ConflictError`` while a service uses it. Its blobs stay for GC."""
        validate_model_version(version)
        with self._write() as conn:
            row = model_row(conn, name, version, lock=True)
            if row is None:
                raise model_not_found(name, version)
            users = _services_using(conn, name, version)
            if users:
                raise ConflictError(
                    f"Model {name}:{version} cannot be deleted: it is used by service(s) {', '.join(users)}",
                    hint="Delete those services or update them to another model version first.",
                )
            for child in (t.model_files, t.model_tags, t.model_properties):
                conn.execute(sa.delete(child).where(child.c.model_id == row.id))
            conn.execute(sa.delete(t.models).where(t.models.c.id == row.id))

    def update_model_tags(
        self,
        name: str,
        version: int,
        *,
        add: Mapping[str, str] | None = None,
        remove: Sequence[str] | None = None,
    ) -> ModelRecord:
        """Set the ``add`` tags (overwriting), then drop the ``remove`` keys (absent keys are ignored)."""
        validate_model_version(version)
        added = check_str_map("tags", add)
        removed = list(remove or ())
        if isinstance(remove, str) or not all(isinstance(k, str) for k in removed):
            raise ValidationError(f"Invalid tag keys to remove {remove!r}: expected a list of strings")
        return self._update_model(
            name, version, lambda conn, mid: replace_pairs(conn, t.model_tags, mid, added, removed)
        )

    def add_model_properties(self, name: str, version: int, properties: Mapping[str, str]) -> ModelRecord:
        """Add properties; as in v1 they are add-only (``ConflictError`` when one would change)."""
        validate_model_version(version)
        props = check_str_map("properties", properties)

        def change(conn: sa.Connection, model_id: int) -> None:
            have = {
                r.key: r.value
                for r in conn.execute(
                    sa.select(t.model_properties).where(t.model_properties.c.model_id == model_id)
                )
            }
            changed = sorted(k for k, v in props.items() if k in have and have[k] != v)
            if changed:
                raise ConflictError(
                    f"Properties {changed} of model {name}:{version} are already set and cannot change",
                    hint="Use tags for values that change.",
                )
            replace_pairs(
                conn, t.model_properties, model_id, {k: v for k, v in props.items() if k not in have}, ()
            )

        return self._update_model(name, version, change)

    def update_model_description(self, name: str, version: int, description: str | None) -> ModelRecord:
        validate_model_version(version)
        _check_optional_str("description", description)
        return self._update_model(
            name,
            version,
            lambda conn, mid: conn.execute(
                sa.update(t.models).where(t.models.c.id == mid).values(description=description)
            ),
        )

    def _update_model(
        self, name: str, version: int, change: Callable[[sa.Connection, int], object]
    ) -> ModelRecord:
        with self._write() as conn:
            row = model_row(conn, name, version, lock=True)
            if row is None:
                raise model_not_found(name, version)
            change(conn, row.id)
            fresh = model_row(conn, name, version)
            assert fresh is not None
            return load_models(conn, [fresh])[0]

    # -- which services use which models (filled by the deploy work) ---------------------------

    def set_service_models(self, service_name: str, models: Sequence[tuple[str, int]]) -> None:
        """Record that ``service_name`` runs exactly ``models`` (replacing what it ran before)."""
        validate_service_name(service_name)
        wanted = sorted({(n, validate_model_version(v)) for n, v in models})
        with self._write() as conn:
            for model_name, version in wanted:
                if model_row(conn, model_name, version, lock=True) is None:
                    raise model_not_found(model_name, version)
            conn.execute(sa.delete(t.service_models).where(t.service_models.c.service_name == service_name))
            if wanted:
                conn.execute(
                    sa.insert(t.service_models),
                    [{"service_name": service_name, "model_name": n, "model_version": v} for n, v in wanted],
                )

    def clear_service_models(self, service_name: str) -> None:
        """Forget the models of ``service_name`` (when the service is deleted)."""
        with self._write() as conn:
            conn.execute(sa.delete(t.service_models).where(t.service_models.c.service_name == service_name))

    def services_using_model(self, name: str, version: int) -> list[str]:
        with self._read() as conn:
            return _services_using(conn, name, version)

    def models_in_use(self) -> set[tuple[str, int]]:
        """Every ``(model name, version)`` some service runs."""
        query = sa.select(t.service_models.c.model_name, t.service_models.c.model_version).distinct()
        with self._read() as conn:
            return {(r.model_name, r.model_version) for r in conn.execute(query)}

    # -- snapshots -----------------------------------------------------------------------------

    def save_snapshot(self, record: SnapshotRecord) -> SnapshotRecord:
        """Record a snapshot; saving a digest again returns the record already stored."""
        _check_snapshot(record)

        def attempt() -> SnapshotRecord:
            with self._write() as conn:
                found = _snapshot(conn, record.digest)
                if found is not None:
                    return found
                stored = SnapshotRecord(
                    record.digest,
                    record.size,
                    record.file_count,
                    record.entry_script,
                    as_utc(record.created_time),
                )
                conn.execute(
                    sa.insert(t.snapshots).values(
                        digest=stored.digest,
                        size=stored.size,
                        file_count=stored.file_count,
                        entry_script=stored.entry_script,
                        created_time=stored.created_time,
                    )
                )
                return stored

        result: SnapshotRecord = self._retrying(attempt)
        return result

    def get_snapshot(self, digest: str) -> SnapshotRecord:
        with self._read() as conn:
            found = _snapshot(conn, digest)
        if found is None:
            raise NotFoundError(
                f"Snapshot {digest} not found in the workspace",
                hint="Deploy again; the snapshot is recorded when the source is uploaded.",
            )
        return found

    # -- garbage collection --------------------------------------------------------------------

    def referenced_blobs(self) -> set[str]:
        """Every blob digest a model file, a snapshot or a service references."""
        query = sa.union(
            sa.select(t.model_files.c.sha256),
            sa.select(t.snapshots.c.digest),
            sa.select(t.services.c.snapshot).where(t.services.c.snapshot.is_not(None)),
        )
        with self._read() as conn:
            return {row[0] for row in conn.execute(query)}


def _check_optional_str(field: str, value: object, *, limit: int | None = None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or (limit is not None and len(value) > limit):
        bound = f" of at most {limit} characters" if limit is not None else ""
        raise ValidationError(f"Invalid {field} {value!r}: expected a string{bound}")


def _check_snapshot(record: SnapshotRecord) -> None:
    if not isinstance(record, SnapshotRecord) or not is_digest(record.digest):
        raise ValidationError(f"Invalid snapshot {record!r}: its digest must be a sha256 (64 lowercase hex)")
    for field in ("size", "file_count"):
        value = getattr(record, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError(f"Invalid snapshot {field} {value!r}: expected an integer >= 0")
    if not isinstance(record.entry_script, str) or not record.entry_script:
        raise ValidationError(f"Invalid snapshot entry_script {record.entry_script!r}")
    if not isinstance(record.created_time, datetime):
        raise ValidationError(f"Invalid snapshot created_time {record.created_time!r}")


def _snapshot(conn: sa.Connection, digest: str) -> SnapshotRecord | None:
    row = conn.execute(sa.select(t.snapshots).where(t.snapshots.c.digest == digest)).first()
    if row is None:
        return None
    return SnapshotRecord(row.digest, row.size, row.file_count, row.entry_script, as_utc(row.created_time))


def _services_using(conn: sa.Connection, name: str, version: int) -> list[str]:
    query = (
        sa.select(t.service_models.c.service_name)
        .where(t.service_models.c.model_name == name, t.service_models.c.model_version == version)
        .order_by(t.service_models.c.service_name)
    )
    return [row.service_name for row in conn.execute(query)]
