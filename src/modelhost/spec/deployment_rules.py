"""Building blocks shared by the deployment configurations: field tables, type checks, messages.

Pure. Every message starts with :data:`PREFIX` (``Invalid configuration, ``) as v1's
``validate_configuration`` writes it, keeps v1's sentence word for word where v1 has one, and then
adds ``Got ...`` with the values involved, marking a value that came from the running service
(``(current value)``, during an update) or from a server-side default (``(default)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Final, Literal, TypedDict

from modelhost.autoscale import AutoscaleConfig

__all__ = [
    "PREFIX",
    "AuthMode",
    "Field",
    "Kind",
    "ProbeKwargs",
    "ResourcesKwargs",
    "RuntimeSettings",
    "Values",
    "field_values",
    "get_path",
    "is_kind",
    "nested_payload",
    "set_path",
]

PREFIX: Final = "Invalid configuration, "

Kind = Literal["bool", "int", "number", "str", "str_map", "object"]
AuthMode = Literal["key", "token", "none"]
Origin = Literal["given", "current", "default"]

_EXPECTED: Final[dict[Kind, str]] = {
    "bool": "a bool (True or False)",
    "int": "an integer",
    "number": "a number",
    "str": "a string",
    "str_map": "a dict of string keys to string values",
    "object": "any value",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One configuration parameter: its v1 name, its type and where it lives in v1's JSON."""

    name: str
    kind: Kind
    path: tuple[str, ...] | None  # None: not part of the JSON payload


def is_kind(kind: Kind, value: object) -> bool:
    """Whether ``value`` has the type ``kind`` (bools are not numbers; numbers are finite)."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "str_map":
        return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in value.items())
    return True


def field_values(config: object) -> dict[str, object]:
    """A dataclass config's fields by name (in declaration order)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}  # type: ignore[arg-type]


class Values:
    """The values one validation looks at, and where each came from.

    ``raw(name)`` is the configured value (given, or the running service's during an update);
    ``effective(name)`` falls back to the server-side default, for checks between two fields
    (``cpu_cores_limit >= cpu_cores`` holds against the default request too).
    """

    def __init__(self, table: Iterable[Field], raw: Mapping[str, object], defaults: Mapping[str, object],
                 current: Iterable[str] = ()) -> None:
        self.table = tuple(table)
        self._kinds = {f.name: f.kind for f in self.table}
        self._raw = dict(raw)
        self._defaults = dict(defaults)
        self._current = frozenset(current)

    def raw(self, name: str) -> object:
        return self._raw.get(name)

    def effective(self, name: str) -> object:
        value = self._raw.get(name)
        return self._defaults.get(name) if value is None else value

    def origin(self, name: str) -> Origin:
        if self._raw.get(name) is None:
            return "default"
        return "current" if name in self._current else "given"

    def ok(self, *names: str) -> bool:
        """True when each named value is unset or of its declared type (type errors are reported once)."""
        return all(self._raw.get(n) is None or is_kind(self._kinds[n], self._raw[n]) for n in names)

    def label(self, name: str) -> str:
        note = {"given": "", "current": " (current value)", "default": " (default)"}[self.origin(name)]
        return f"{name}={self.effective(name)!r}{note}"

    def got(self, *names: str) -> str:
        return " Got " + ", ".join(self.label(n) for n in names) + "."

    def type_problems(self) -> list[str]:
        """One message per value of the wrong type, naming the key, the value and the expected type."""
        return [f"{PREFIX}{f.name} must be {_EXPECTED[f.kind]}, got {self._raw[f.name]!r} "
                f"({type(self._raw[f.name]).__name__})."
                for f in self.table if not self.ok(f.name)]

    def positive(self, *names: str) -> list[str]:
        """v1's '<name> must be greater than zero.' for each set, well-typed value <= 0."""
        return [f"{PREFIX}{n} must be greater than zero.{self.got(n)}" for n in names
                if self._raw.get(n) is not None and self.ok(n) and self._raw[n] <= 0]  # type: ignore[operator]

    def all_or_none(self, names: tuple[str, ...], what: str) -> list[str]:
        """One message when some but not all of ``names`` are set."""
        given = [n for n in names if self._raw.get(n) is not None]
        if not given or len(given) == len(names):
            return []
        missing = [n for n in names if n not in given]
        return [f"{PREFIX}{', '.join(names[:-1])} and {names[-1]} must be provided together ({what}); "
                f"missing: {', '.join(missing)}."]


def get_path(payload: Mapping[str, object], path: tuple[str, ...]) -> object:
    """The value at ``path`` in a nested JSON object, None where any level is missing."""
    node: object = payload
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def set_path(payload: dict[str, object], path: tuple[str, ...], value: object) -> None:
    node = payload
    for key in path[:-1]:
        child = node.setdefault(key, {})
        assert isinstance(child, dict)
        node = child
    node[path[-1]] = value


def nested_payload(table: Iterable[Field], values: Mapping[str, object]) -> dict[str, object]:
    """Every field with a JSON path placed at it (``None`` stays ``null``); maps are copied."""
    payload: dict[str, object] = {}
    for f in table:
        if f.path is None:
            continue
        value = values.get(f.name)
        set_path(payload, f.path, dict(value) if isinstance(value, Mapping) else value)
    return payload


class ResourcesKwargs(TypedDict):
    """Keyword arguments of ``modelhost.runtime.base.Resources`` (``Resources(**kwargs)``)."""

    cpu_cores: float
    memory_gb: float
    gpu_cores: int
    cpu_cores_limit: float | None
    memory_gb_limit: float | None


class ProbeKwargs(TypedDict):
    """Keyword arguments of ``modelhost.runtime.base.ProbeSettings`` (``ProbeSettings(**kwargs)``)."""

    period_seconds: int
    initial_delay_seconds: int
    timeout_seconds: int
    success_threshold: int
    failure_threshold: int


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """What the control plane, the runtime and the router need from a resolved configuration.

    ``replicas`` is the count to start with: ``num_replicas``, or with autoscaling
    ``max(1, autoscale_min_replicas)`` (a new service proves it starts before it may scale to zero).
    ``autoscale`` is None when the replica count is fixed. ``auth``: ``key`` (either service key as
    ``Bearer``), ``token`` (a token from ``POST /services/<name>/token``) or ``none``.
    """

    compute_type: str
    replicas: int
    autoscale: AutoscaleConfig | None
    resources: ResourcesKwargs
    probe: ProbeKwargs
    max_concurrent_requests: int
    max_queue_wait_ms: int
    scoring_timeout_ms: int
    auth: AuthMode
    collect_model_data: bool
    enable_app_insights: bool
    port: int | None = None
