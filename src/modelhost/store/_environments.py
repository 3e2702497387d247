"""Environment records for :class:`modelhost.store.metadata.Store`.

A named environment gets a new version only when its ``spec_hash`` differs from its newest
version's (as v1 registers a new environment version when the definition changes); the builder
moves each version through ``building`` -> ``ready`` | ``failed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modelhost.errors import NotFoundError, ValidationError
from modelhost.store import schema as t
from modelhost.store.records import ENVIRONMENT_STATUSES, EnvironmentRecord, as_utc

__all__ = ["EnvironmentsMixin"]

_env = t.environments


def _record(row: sa.Row[Any]) -> EnvironmentRecord:
    return EnvironmentRecord(
        name=row.name,
        version=row.version,
        spec_hash=row.spec_hash,
        spec=dict(row.spec),
        python_version=row.python_version,
        status=row.status,
        path=row.path,
        log=row.log,
        created_time=as_utc(row.created_time),
        updated_time=as_utc(row.updated_time),
    )


def _not_found(name: str, version: int | None) -> NotFoundError:
    which = name if version is None else f"{name} version {version}"
    return NotFoundError(
        f"Environment {which} not found in the workspace", hint="List environments with 'modelhost env list'."
    )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 255:
        raise ValidationError(
            f"Invalid environment name {name!r}: expected 1..255 characters without surrounding spaces"
        )
    return name


def _check_spec(spec: object, spec_hash: object) -> tuple[dict[str, Any], str]:
    if not isinstance(spec, Mapping):
        raise ValidationError(f"Invalid environment spec {spec!r}: expected a mapping")
    try:
        plain = json.loads(json.dumps(dict(spec)))
    except (TypeError, ValueError) as error:
        raise ValidationError(f"Invalid environment spec: not JSON-serializable ({error})") from error
    if not isinstance(spec_hash, str) or not spec_hash or len(spec_hash) > 128:
        raise ValidationError(f"Invalid environment spec_hash {spec_hash!r}: expected 1..128 characters")
    return plain, spec_hash


def _latest(conn: sa.Connection, name: str) -> sa.Row[Any] | None:
    query = sa.select(_env).where(_env.c.name == name).order_by(_env.c.version.desc()).limit(1)
    return conn.execute(query).first()


class EnvironmentsMixin:
    """The environment methods of ``Store``."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[sa.Connection]: ...
        def _write(self) -> AbstractContextManager[sa.Connection]: ...
        def _now(self) -> datetime: ...
        def _retrying(self, attempt: Callable[[], Any]) -> Any: ...

    def save_environment(self, *, name: str, spec: Mapping[str, Any], spec_hash: str) -> EnvironmentRecord:
        """The newest version of ``name`` if it has ``spec_hash``, else a new version in ``building``."""
        _check_name(name)
        plain, digest = _check_spec(spec, spec_hash)

        def attempt() -> EnvironmentRecord:
            with self._write() as conn:
                latest = _latest(conn, name)
                if latest is not None and latest.spec_hash == digest:
                    return _record(latest)
                now = self._now()
                version = 1 if latest is None else latest.version + 1
                conn.execute(
                    sa.insert(_env).values(
                        name=name,
                        version=version,
                        spec_hash=digest,
                        spec=plain,
                        python_version=None,
                        status="building",
                        path=None,
                        log=None,
                        created_time=now,
                        updated_time=now,
                    )
                )
                return EnvironmentRecord(name, version, digest, plain, None, "building", None, None, now, now)

        result: EnvironmentRecord = self._retrying(attempt)
        return result

    def set_environment_status(
        self,
        name: str,
        version: int,
        *,
        status: str,
        path: str | None = None,
        python_version: str | None = None,
        log: str | None = None,
    ) -> EnvironmentRecord:
        """Move ``name:version`` to ``status``; ``path``, ``python_version`` and ``log`` change when given."""
        if status not in ENVIRONMENT_STATUSES:
            raise ValidationError(
                f"Invalid environment status {status!r}: expected one of {ENVIRONMENT_STATUSES}"
            )
        for field, value in (("path", path), ("python_version", python_version), ("log", log)):
            if value is not None and not isinstance(value, str):
                raise ValidationError(f"Invalid environment {field} {value!r}: expected a string")
        changes: dict[str, Any] = {"status": status, "updated_time": self._now()}
        changes.update(
            {
                k: v
                for k, v in (("path", path), ("python_version", python_version), ("log", log))
                if v is not None
            }
        )
        where = (_env.c.name == name, _env.c.version == version)
        with self._write() as conn:
            if conn.execute(sa.update(_env).where(*where).values(**changes)).rowcount == 0:
                raise _not_found(name, version)
            row = conn.execute(sa.select(_env).where(*where)).one()
            return _record(row)

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        """The newest version of ``name`` or exactly ``version``; ``NotFoundError`` if absent."""
        with self._read() as conn:
            if version is None:
                row = _latest(conn, name)
            else:
                row = conn.execute(
                    sa.select(_env).where(_env.c.name == name, _env.c.version == version)
                ).first()
            if row is None:
                raise _not_found(name, version)
            return _record(row)

    def list_environments(self) -> list[EnvironmentRecord]:
        """Every environment version, by name, newest version first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(_env).order_by(_env.c.name, _env.c.version.desc()))
            return [_record(row) for row in rows]

    def environments_by_hash(self, spec_hash: str) -> list[EnvironmentRecord]:
        """Every environment version (any name) built from ``spec_hash``, most recently updated first."""
        query = (
            sa.select(_env)
            .where(_env.c.spec_hash == spec_hash)
            .order_by(_env.c.updated_time.desc(), _env.c.id.desc())
        )
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]
