"""Model-registry helpers for :class:`modelhost.store.metadata.Store`: checks, row loading, versions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from modelhost.errors import ModelNotFoundError, ValidationError
from modelhost.store import schema as t
from modelhost.store.records import ModelFile, ModelRecord, as_utc

__all__ = [
    "check_filters",
    "check_str_map",
    "load_models",
    "model_not_found",
    "model_row",
    "next_version",
    "replace_pairs",
]

_KEY_LIMIT = 255
_IN_CHUNK = 500  # ids per IN (...) list, well under every backend's parameter limit


def model_not_found(name: str, version: int | None = None) -> ModelNotFoundError:
    """v1 wording: "ModelNotFound: Model with name <n> [and version <v>] not found in provided workspace"."""
    which = f"name {name}" if version is None else f"name {name} and version {version}"
    return ModelNotFoundError(f"ModelNotFound: Model with {which} not found in provided workspace")


def check_str_map(kind: str, value: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of a tags/properties mapping after checking it maps non-empty string keys to strings."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"Invalid {kind} {value!r}: expected a mapping of strings to strings")
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > _KEY_LIMIT or not isinstance(item, str):
            raise ValidationError(
                f"Invalid {kind} entry {key!r}: {item!r}: keys are strings of 1..{_KEY_LIMIT} characters "
                "and values are strings",
                hint="Convert numbers and booleans to strings, as v1 stores them.",
            )
    return dict(value)


def check_filters(kind: str, items: Sequence[str | Sequence[str]] | None) -> list[tuple[str, str | None]]:
    """v1 list filters: each item is ``"key"`` (present) or ``[key, value]`` (equal) -> (key, value|None)."""
    if items is None:
        return []
    if isinstance(items, str | bytes):
        raise ValidationError(
            f"Invalid {kind} filter {items!r}: expected a list of keys or [key, value] pairs"
        )
    result: list[tuple[str, str | None]] = []
    for item in items:
        if isinstance(item, str):
            result.append((item, None))
        elif isinstance(item, Sequence) and 1 <= len(item) <= 2 and all(isinstance(p, str) for p in item):
            result.append((item[0], item[1] if len(item) == 2 else None))
        else:
            raise ValidationError(
                f"Invalid {kind} filter item {item!r}: each item is a key or a [key, value] pair of strings",
                hint=f"Example: {kind}=['stage', ['team', 'vision']].",
            )
    return result


def model_row(
    conn: sa.Connection, name: str, version: int | None, *, lock: bool = False
) -> sa.Row[Any] | None:
    """The ``models`` row of ``name:version`` (newest when ``version`` is None).

    ``lock`` takes a row lock on PostgreSQL (``FOR UPDATE``), so deleting a model and attaching it
    to a service serialize; SQLite's ``BEGIN IMMEDIATE`` already serializes writers.
    """
    query = sa.select(t.models).where(t.models.c.name == name)
    if lock:
        query = query.with_for_update()
    if version is None:
        query = query.order_by(t.models.c.version.desc()).limit(1)
    else:
        query = query.where(t.models.c.version == version)
    return conn.execute(query).first()


def next_version(conn: sa.Connection, name: str) -> int:
    """Hand out the next version of ``name`` inside the caller's write transaction.

    The counter row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
    serializes writers), so concurrent registrations get consecutive versions. Two *first*
    registrations of a name can still both insert the counter: the loser gets an IntegrityError and
    the caller retries.
    """
    counter = t.model_versions
    last = conn.execute(
        sa.select(counter.c.last_version).where(counter.c.name == name).with_for_update()
    ).scalar()
    highest = conn.execute(sa.select(sa.func.max(t.models.c.version)).where(t.models.c.name == name)).scalar()
    version = max(last or 0, highest or 0) + 1
    if last is None:
        conn.execute(sa.insert(counter).values(name=name, last_version=version))
    else:
        conn.execute(sa.update(counter).where(counter.c.name == name).values(last_version=version))
    return version


def replace_pairs(
    conn: sa.Connection, table: sa.Table, model_id: int, put: Mapping[str, str], drop: Iterable[str]
) -> None:
    """Upsert ``put`` and delete ``drop`` keys in a model's tags or properties table."""
    gone = set(put) | set(drop)
    if gone:
        conn.execute(sa.delete(table).where(table.c.model_id == model_id, table.c.key.in_(sorted(gone))))
    if put:
        conn.execute(sa.insert(table), [{"model_id": model_id, "key": k, "value": v} for k, v in put.items()])


def _by_model(conn: sa.Connection, table: sa.Table, ids: list[int]) -> dict[int, list[sa.Row[Any]]]:
    found: dict[int, list[sa.Row[Any]]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        for row in conn.execute(sa.select(table).where(table.c.model_id.in_(chunk))):
            found.setdefault(row.model_id, []).append(row)
    return found


def load_models(conn: sa.Connection, rows: Sequence[sa.Row[Any]]) -> list[ModelRecord]:
    """Records for ``models`` rows (in their order), with files, tags and properties attached."""
    ids = [row.id for row in rows]
    files = _by_model(conn, t.model_files, ids)
    tags = _by_model(conn, t.model_tags, ids)
    props = _by_model(conn, t.model_properties, ids)
    return [
        ModelRecord(
            name=row.name,
            version=row.version,
            basename=row.basename,
            is_dir=bool(row.is_dir),
            files=tuple(
                ModelFile(path=f.path, sha256=f.sha256, size=f.size, executable=bool(f.executable))
                for f in sorted(files.get(row.id, []), key=lambda f: f.path)
            ),
            tags={p.key: p.value for p in sorted(tags.get(row.id, []), key=lambda p: p.key)},
            properties={p.key: p.value for p in sorted(props.get(row.id, []), key=lambda p: p.key)},
            description=row.description,
            framework=row.framework,
            framework_version=row.framework_version,
            created_time=as_utc(row.created_time),
        )
        for row in rows
    ]
