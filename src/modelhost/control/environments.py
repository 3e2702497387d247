"""Environment service: register specs, build them as operations, list, fetch and prune.

A registration body names the environment and gives exactly one source, which the control plane
parses (so every client gets the same validation)::

    {"name": "env", "conda_yaml": "<text>"}        v1 Environment.from_conda_specification / CondaDependencies
    {"name": "env", "pip_requirements": "<text>"}  v1 Environment.from_pip_requirements
    {"name": "env", "inherit": true}               the control plane's own interpreter, as it is
    {"name": "env", "spec": {...}}                 EnvironmentSpec.to_dict()

Builds run through :class:`~modelhost.build.environment.EnvironmentBuilder` on an operation; the
builder guarantees one build per spec hash, and :class:`Operations` hands a second request for the
same environment version the running operation.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from modelhost import __version__
from modelhost.build.environment import EnvironmentBuilder
from modelhost.control.operations import Operation, Operations
from modelhost.errors import EnvironmentBuildError, ValidationError
from modelhost.spec.environment import EnvironmentSpec
from modelhost.spec.names import MODEL_NAME_PATTERN
from modelhost.store.metadata import EnvironmentRecord, Store

__all__ = ["BUILD_KIND", "EnvironmentService", "environment_to_dict", "spec_from_request"]

BUILD_KIND = "environment-build"
_SOURCES = ("conda_yaml", "pip_requirements", "inherit", "spec")
_NAME_RE = re.compile(MODEL_NAME_PATTERN[1:-1])  # v1 environment names follow the model-name rule


def spec_from_request(payload: object) -> EnvironmentSpec:
    """Parse a registration body into an :class:`EnvironmentSpec` (raises ``ValidationError``)."""
    if not isinstance(payload, dict):
        raise ValidationError("The environment body must be a JSON object")
    name = payload.get("name")
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise ValidationError(
            f"Invalid environment name {name!r}: a name must match {MODEL_NAME_PATTERN}",
            hint="Start with a letter or digit, then use letters, digits, '-', '.' or '_'.",
        )
    given = [key for key in _SOURCES if payload.get(key) not in (None, False)]
    if len(given) != 1:
        raise ValidationError(
            f"Environment {name!r}: give exactly one of {', '.join(_SOURCES)} (got {given or 'none'})"
        )
    source, value = given[0], payload[given[0]]
    if source == "inherit":
        return EnvironmentSpec.inherit_current(name)
    if source == "spec":
        if not isinstance(value, dict):
            raise ValidationError(f"Environment {name!r}: 'spec' must be an object")
        return EnvironmentSpec.from_dict({**value, "name": name})
    if not isinstance(value, str):
        raise ValidationError(f"Environment {name!r}: '{source}' must be the file's text")
    if source == "conda_yaml":
        return EnvironmentSpec.from_conda_yaml(name, value)
    return EnvironmentSpec.from_pip_requirements(name, value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def environment_to_dict(record: EnvironmentRecord, *, with_log: bool = True) -> dict[str, Any]:
    """The JSON view of an environment version."""
    out: dict[str, Any] = {
        "name": record.name,
        "version": record.version,
        "spec_hash": record.spec_hash,
        "spec": record.spec,
        "python_version": record.python_version,
        "status": record.status,
        "path": record.path,
        "created_time": _iso(record.created_time),
        "updated_time": _iso(record.updated_time),
    }
    if with_log:
        out["log"] = record.log
    return out


class EnvironmentService:
    """Registers environment specs and builds them through the builder on operations."""

    def __init__(self, store: Store, builder: EnvironmentBuilder, operations: Operations) -> None:
        self._store = store
        self._builder = builder
        self._operations = operations

    def register(self, payload: object) -> EnvironmentRecord:
        spec = spec_from_request(payload)
        return self._store.save_environment(
            name=spec.name, spec=spec.to_dict(), spec_hash=spec.content_hash(__version__)
        )

    def get(self, name: str, version: int | None = None) -> EnvironmentRecord:
        return self._store.get_environment(name, version)

    def list(self) -> list[EnvironmentRecord]:
        return list(self._store.list_environments())

    def build(self, name: str, version: int | None = None) -> Operation:
        """Start (or join) the build of a registered environment version; returns its operation."""
        record = self.get(name, version)
        spec = EnvironmentSpec.from_dict(record.spec)
        target = f"{record.name}:{record.version}"
        return self._operations.start(BUILD_KIND, target, lambda op: self._build(op, record, spec))

    def _build(self, op: Operation, record: EnvironmentRecord, spec: EnvironmentSpec) -> dict[str, Any]:
        name, version = record.name, record.version
        op.append(f"Building environment {name}:{version} (spec {record.spec_hash[:12]})")
        self._store.set_environment_status(name, version, status="building")
        try:
            built = self._builder.ensure(spec, log=op.append)
        except EnvironmentBuildError as exc:
            log = "\n".join(line for _, line in op.lines()) + f"\nerror: {exc.one_line()}"
            self._store.set_environment_status(name, version, status="failed", log=log)
            raise
        cache_hit = built.source != "built"
        how = f"cache hit ({built.source})" if cache_hit else "built"
        op.append(
            f"Environment {name}:{version} ready: {how} in {built.seconds:.2f} s, "
            f"Python {built.python_version} at {built.path}"
        )
        log = "\n".join(line for _, line in op.lines())
        self._store.set_environment_status(
            name, version, status="ready", path=str(built.path), python_version=built.python_version, log=log
        )
        return {
            "name": name,
            "version": version,
            "source": built.source,
            "cache_hit": cache_hit,
            "seconds": built.seconds,
            "path": str(built.path),
            "python": str(built.python),
            "python_version": built.python_version,
            "notes": list(built.notes),
        }

    def ensure_for_service(
        self, name: str, version: int, log: Callable[[str], None]
    ) -> tuple[Path, dict[str, str]]:
        """The interpreter and environment variables of ``name:version`` for a deployment: from the
        caches or built now (lines to ``log``), its record moved to ``ready``/``failed`` as needed."""
        record = self.get(name, version)
        spec = EnvironmentSpec.from_dict(record.spec)
        try:
            built = self._builder.ensure(spec, log=log)
        except EnvironmentBuildError as exc:
            self._store.set_environment_status(name, version, status="failed", log=exc.one_line())
            raise
        if record.status != "ready":
            self._store.set_environment_status(
                name, version, status="ready", path=str(built.path), python_version=built.python_version
            )
        how = "cache hit" if built.source != "built" else "built"
        log(f"{how} ({built.source}) in {built.seconds:.2f} s: Python {built.python_version} at {built.path}")
        return built.python, dict(spec.env_vars)

    def prune(self) -> builtins.list[str]:
        """Remove built environments that no ready environment version of this workspace needs."""
        # the builder keys environments by the resolved Python minor, which the stored hash lacks
        keep = {
            self._builder.spec_hash(EnvironmentSpec.from_dict(r.spec))
            for r in self.list()
            if r.status == "ready"
        }
        return list(self._builder.prune(keep))
