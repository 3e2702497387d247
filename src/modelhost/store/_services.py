"""Service records for :class:`modelhost.store.metadata.Store` (revision 0002).

A service row, its keys (``service_keys``) and the model versions it runs (``service_models``) are
written together in one transaction, so a model cannot be deleted between the check that it exists
and the link that protects it. Keys are read only by :meth:`ServicesMixin.get_service_keys`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modelhost.errors import ConflictError, NotFoundError, ValidationError
from modelhost.spec.names import validate_model_version, validate_service_name
from modelhost.store import schema as t
from modelhost.store._models import model_not_found, model_row
from modelhost.store.records import SERVICE_STATES, ServiceKeys, ServiceRecord, as_utc

__all__ = ["ServicesMixin", "service_not_found"]

_svc = t.services
_UPDATABLE = frozenset(
    {
        "compute_type",
        "config",
        "entry_script",
        "source_dir",
        "snapshot",
        "environment_name",
        "environment_version",
        "generation",
        "state",
        "error",
    }
)


def service_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"WebserviceNotFound: Service {name} not found in workspace",
        hint="List services with 'modelhost service list'.",
    )


def _parse_model_id(model_id: str) -> tuple[str, int]:
    name, sep, version = model_id.rpartition(":")
    if not sep or not name or not version.isdigit():
        raise ValidationError(f"Invalid model id {model_id!r}: expected 'name:version'")
    return name, validate_model_version(int(version))


def _models(conn: sa.Connection, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    sm = t.service_models
    query = sa.select(sm).where(sm.c.service_name.in_(list(names))) if names else sa.select(sm)
    found: dict[str, list[str]] = {}
    for row in conn.execute(query.order_by(sm.c.model_name, sm.c.model_version)):
        found.setdefault(row.service_name, []).append(f"{row.model_name}:{row.model_version}")
    return {k: tuple(v) for k, v in found.items()}


def _record(row: sa.Row[Any], models: tuple[str, ...]) -> ServiceRecord:
    return ServiceRecord(
        name=row.name,
        compute_type=row.compute_type,
        config=dict(row.config),
        models=models,
        entry_script=row.entry_script,
        source_dir=row.source_dir,
        snapshot=row.snapshot,
        environment_name=row.environment_name,
        environment_version=row.environment_version,
        generation=row.generation,
        state=row.state,
        error=dict(row.error) if row.error is not None else None,
        created_time=as_utc(row.created_time),
        updated_time=as_utc(row.updated_time),
        created_by=row.created_by,
    )


def _check_record(record: ServiceRecord) -> None:
    validate_service_name(record.name)
    if record.state not in SERVICE_STATES:
        raise ValidationError(f"Invalid service state {record.state!r}: expected one of {SERVICE_STATES}")
    try:
        json.dumps(record.config)
        json.dumps(record.error)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"Service {record.name}: config or error is not JSON ({error})") from error


def _link_models(conn: sa.Connection, name: str, models: Sequence[str]) -> None:
    wanted = sorted({_parse_model_id(m) for m in models})
    for model_name, version in wanted:
        if model_row(conn, model_name, version, lock=True) is None:
            raise model_not_found(model_name, version)
    conn.execute(sa.delete(t.service_models).where(t.service_models.c.service_name == name))
    if wanted:
        conn.execute(
            sa.insert(t.service_models),
            [{"service_name": name, "model_name": n, "model_version": v} for n, v in wanted],
        )


def _set_keys(conn: sa.Connection, name: str, keys: ServiceKeys) -> None:
    conn.execute(sa.delete(t.service_keys).where(t.service_keys.c.service_name == name))
    conn.execute(
        sa.insert(t.service_keys).values(
            service_name=name, primary_key=keys.primary, secondary_key=keys.secondary
        )
    )


class ServicesMixin:
    """The service methods of ``Store``."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[sa.Connection]: ...
        def _write(self) -> AbstractContextManager[sa.Connection]: ...
        def _now(self) -> datetime: ...
        def _retrying(self, attempt: Callable[[], Any]) -> Any: ...

    def create_service(
        self, record: ServiceRecord, *, keys: ServiceKeys | None, replace: bool = False
    ) -> ServiceRecord:
        """Record a new service with its models and keys in one transaction.

        ``ConflictError`` when the name exists (unless ``replace``: the old row, keys and model links
        are replaced); ``ModelNotFoundError`` when a model is gone (nothing is written then).
        """
        _check_record(record)
        now = self._now()
        values = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "models"}
        values.update(created_time=as_utc(record.created_time), updated_time=now)
        with self._write() as conn:
            exists = conn.execute(sa.select(_svc.c.name).where(_svc.c.name == record.name)).first()
            if exists is not None and not replace:
                raise ConflictError(
                    f"A service named {record.name} already exists in the workspace",
                    hint="Choose another name, pass overwrite=True, or update the service.",
                )
            if exists is not None:
                conn.execute(sa.delete(_svc).where(_svc.c.name == record.name))
            conn.execute(sa.insert(_svc).values(**values))
            _link_models(conn, record.name, record.models)
            if keys is not None:
                _set_keys(conn, record.name, keys)
            else:
                conn.execute(sa.delete(t.service_keys).where(t.service_keys.c.service_name == record.name))
            return _record(
                conn.execute(sa.select(_svc).where(_svc.c.name == record.name)).one(),
                tuple(sorted(set(record.models))),
            )

    def get_service(self, name: str) -> ServiceRecord:
        """The service ``name``; ``NotFoundError`` (v1's WebserviceNotFound) if absent."""
        with self._read() as conn:
            row = conn.execute(sa.select(_svc).where(_svc.c.name == name)).first()
            if row is None:
                raise service_not_found(name)
            return _record(row, _models(conn, [name]).get(name, ()))

    def list_services(self) -> list[ServiceRecord]:
        """Every service, by name."""
        with self._read() as conn:
            rows = list(conn.execute(sa.select(_svc).order_by(_svc.c.name)))
            models = _models(conn, [])
            return [_record(row, models.get(row.name, ())) for row in rows]

    def update_service(
        self, name: str, *, models: Sequence[str] | None = None, **changes: Any
    ) -> ServiceRecord:
        """Change columns of ``name`` (and, with ``models``, its model links) in one transaction."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValidationError(f"Cannot update service fields {sorted(unknown)}")
        if "state" in changes and changes["state"] not in SERVICE_STATES:
            raise ValidationError(f"Invalid service state {changes['state']!r}")
        with self._write() as conn:
            where = _svc.c.name == name
            update = sa.update(_svc).where(where).values(updated_time=self._now(), **changes)
            if conn.execute(update).rowcount == 0:
                raise service_not_found(name)
            if models is not None:
                _link_models(conn, name, models)
            row = conn.execute(sa.select(_svc).where(where)).one()
            return _record(row, _models(conn, [name]).get(name, ()))

    def delete_service(self, name: str) -> None:
        """Forget ``name``: its row, keys and model links (the models may be deleted afterwards)."""
        with self._write() as conn:
            if conn.execute(sa.delete(_svc).where(_svc.c.name == name)).rowcount == 0:
                raise service_not_found(name)
            conn.execute(sa.delete(t.service_keys).where(t.service_keys.c.service_name == name))
            conn.execute(sa.delete(t.service_models).where(t.service_models.c.service_name == name))

    def get_service_keys(self, name: str) -> ServiceKeys | None:
        """The keys of ``name`` (None for a service without keys, e.g. Local)."""
        with self._read() as conn:
            if conn.execute(sa.select(_svc.c.name).where(_svc.c.name == name)).first() is None:
                raise service_not_found(name)
            row = conn.execute(sa.select(t.service_keys).where(t.service_keys.c.service_name == name)).first()
            return None if row is None else ServiceKeys(row.primary_key, row.secondary_key)

    def set_service_keys(self, name: str, keys: ServiceKeys) -> None:
        with self._write() as conn:
            if conn.execute(sa.select(_svc.c.name).where(_svc.c.name == name)).first() is None:
                raise service_not_found(name)
            _set_keys(conn, name, keys)

    def all_service_keys(self) -> dict[str, ServiceKeys]:
        """Every service's keys (for the routing table)."""
        with self._read() as conn:
            return {
                row.service_name: ServiceKeys(row.primary_key, row.secondary_key)
                for row in conn.execute(sa.select(t.service_keys))
            }
