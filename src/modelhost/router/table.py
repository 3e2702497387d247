"""The routing table: which replicas serve which service, and with which limits and keys.

The table is one frozen value. Whoever owns the truth (a JSON file today, the control plane
through ``PUT /-/table`` later) publishes a whole new value; the router swaps it in atomically and
keeps serving the last good one when the source disappears or sends something invalid.

JSON form (``services`` maps each name to its route; every field but ``replicas`` has a default)::

    {"version": 3,
     "services": {"iris": {"replicas": [{"id": "iris-0", "host": "127.0.0.1", "port": 9001, "ready": true}],
                           "auth_enabled": true, "keys": ["primary", "secondary"],
                           "max_concurrent_per_replica": 1, "max_queue_wait_ms": 500,
                           "scoring_timeout_ms": 60000, "scale_to_zero": false,
                           "cold_start_wait_ms": 30000}}}

Token auth (docs/auth.md): a route with ``"auth_mode": "token"`` accepts JWTs signed by one of the
table-level ``"token_keys": {kid: Ed25519 public key}`` (base64 of the 32 raw bytes, or PEM) and
issued by ``"token_issuer"``. ``auth_mode`` is ``none``, ``key`` or ``token``; tables without it
(older control planes) derive it from ``auth_enabled``. The table never holds a private key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.errors import ValidationError
from modelhost.router.tokens import public_key_from_text

__all__ = [
    "Replica",
    "RoutingTable",
    "ServiceLoad",
    "ServiceRoute",
    "TableFileWatcher",
    "read_table_file",
    "table_from_json",
    "table_to_json",
]

log = logging.getLogger("modelhost.router")

_HINT = "Fix the routing table (see docs/router.md, 'Routing table')."
AUTH_MODES = ("none", "key", "token")


@dataclass(frozen=True)
class Replica:
    """One replica's address; ``ready`` is false while it boots or drains."""

    id: str
    host: str
    port: int
    ready: bool = True


@dataclass(frozen=True)
class ServiceRoute:
    """How the router treats one service: replicas, keys (primary, secondary) and limits.

    ``scale_to_zero`` (autoscale_min_replicas 0): with no ready replica, a request waits up to
    ``cold_start_wait_ms`` for one to start (counted as ``queued`` in the load signal, so the
    autoscaler activates the service) instead of failing at once with 503.
    """

    name: str
    replicas: tuple[Replica, ...]
    auth_enabled: bool = True
    keys: tuple[str, ...] = ()
    max_concurrent_per_replica: int = 1
    max_queue_wait_ms: int = 500
    scoring_timeout_ms: int = 60000
    # Added for the autoscaler's scale to zero (docs/autoscaling.md, "Cold start").
    scale_to_zero: bool = False
    cold_start_wait_ms: int = 30000
    # The replica count the control plane wants (the autoscaler's decision), shown on /metrics.
    desired_replicas: int | None = None
    # "none" | "key" | "token"; None derives it from auth_enabled (tables written before token auth).
    auth_mode: str | None = None
    # Request telemetry (docs/telemetry.md): a span per request; log_response adds the response value.
    telemetry: bool = False
    log_response: bool = True

    def __post_init__(self) -> None:
        # auth_mode and auth_enabled always agree, whichever of the two the writer set
        if self.auth_mode is None:
            object.__setattr__(self, "auth_mode", "key" if self.auth_enabled else "none")
        elif self.auth_mode not in AUTH_MODES:
            raise ValidationError(f"auth_mode={self.auth_mode!r} is not one of {', '.join(AUTH_MODES)}",
                                  hint=_HINT)
        else:
            object.__setattr__(self, "auth_enabled", self.auth_mode != "none")


@dataclass(frozen=True)
class RoutingTable:
    """Every service the router knows, by name; ``version`` identifies the publication."""

    services: Mapping[str, ServiceRoute] = field(default_factory=dict)
    version: int = 0
    # Token auth: who issues the tokens, and the public keys (kid -> key text) that verify them.
    token_issuer: str | None = None
    token_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceLoad:
    """The load signal the autoscaler reads, sampled at one instant.

    ``busy`` counts busy replica-equivalents (in-flight requests divided by the per-replica limit,
    so with the default limit of 1 it is the number of busy replicas). ``in_flight_by_replica``
    lists every ready replica (0 included) and every replica still draining (in flight > 0): a
    replica absent from it receives no new requests and has none in flight, so the autoscaler may
    stop it.
    """

    replicas: int
    busy: float
    queued: int
    in_flight: int
    in_flight_by_replica: Mapping[str, int] = field(default_factory=dict)


def _int(where: str, raw: object, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ValidationError(f"{where}={raw!r} is not an integer in {low}..{high}", hint=_HINT)
    return raw


def _str(where: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValidationError(f"{where}={raw!r} is not a non-empty string", hint=_HINT)
    return raw


def _bool(where: str, raw: object) -> bool:
    if not isinstance(raw, bool):
        raise ValidationError(f"{where}={raw!r} is not true or false", hint=_HINT)
    return raw


def _obj(where: str, raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationError(f"{where} is {type(raw).__name__}, expected an object", hint=_HINT)
    return raw


def _replica(where: str, raw: object) -> Replica:
    obj = _obj(where, raw)
    return Replica(
        id=_str(f"{where}.id", obj.get("id")),
        host=_str(f"{where}.host", obj.get("host", "127.0.0.1")),
        port=_int(f"{where}.port", obj.get("port"), 1, 65535),
        ready=_bool(f"{where}.ready", obj.get("ready", True)),
    )


def _route(name: str, raw: object) -> ServiceRoute:
    where = f"services.{name}"
    obj = _obj(where, raw)
    replicas = obj.get("replicas", [])
    if not isinstance(replicas, list):
        raise ValidationError(f"{where}.replicas is not a list", hint=_HINT)
    keys = obj.get("keys", [])
    if not isinstance(keys, list) or len(keys) > 2:
        raise ValidationError(f"{where}.keys={keys!r} is not a list of at most two keys", hint=_HINT)
    return ServiceRoute(
        name=name,
        replicas=tuple(_replica(f"{where}.replicas[{i}]", r) for i, r in enumerate(replicas)),
        auth_enabled=_bool(f"{where}.auth_enabled", obj.get("auth_enabled", True)),
        keys=tuple(_str(f"{where}.keys[{i}]", k) for i, k in enumerate(keys)),
        max_concurrent_per_replica=_int(
            f"{where}.max_concurrent_per_replica", obj.get("max_concurrent_per_replica", 1), 1, 1000
        ),
        max_queue_wait_ms=_int(f"{where}.max_queue_wait_ms", obj.get("max_queue_wait_ms", 500), 0, 3_600_000),
        scoring_timeout_ms=_int(
            f"{where}.scoring_timeout_ms", obj.get("scoring_timeout_ms", 60000), 1, 3_600_000
        ),
        scale_to_zero=_bool(f"{where}.scale_to_zero", obj.get("scale_to_zero", False)),
        cold_start_wait_ms=_int(f"{where}.cold_start_wait_ms", obj.get("cold_start_wait_ms", 30000),
                                0, 3_600_000),
        desired_replicas=(
            None if obj.get("desired_replicas") is None
            else _int(f"{where}.desired_replicas", obj.get("desired_replicas"), 0, 100_000)
        ),
        auth_mode=_auth_mode(where, obj.get("auth_mode")),
        telemetry=_bool(f"{where}.telemetry", obj.get("telemetry", False)),
        log_response=_bool(f"{where}.log_response", obj.get("log_response", True)),
    )


def _auth_mode(where: str, raw: object) -> str | None:
    if raw is not None and raw not in AUTH_MODES:
        raise ValidationError(f"{where}.auth_mode={raw!r} is not one of {', '.join(AUTH_MODES)}", hint=_HINT)
    return raw


def _token_keys(raw: object) -> dict[str, str]:
    keys = _obj("token_keys", raw)
    for kid, text in keys.items():
        try:
            public_key_from_text(_str(f"token_keys.{kid}", text))
        except ValueError as exc:
            raise ValidationError(f"token_keys.{kid} is not an Ed25519 public key: {exc}",
                                  hint=_HINT) from exc
    return dict(keys)


def table_from_json(raw: object) -> RoutingTable:
    """Validate a decoded JSON document into a table; ValidationError names the bad key."""
    obj = _obj("table", raw)
    services = _obj("services", obj.get("services", {}))
    return RoutingTable(
        services={_str("service name", name): _route(name, route) for name, route in services.items()},
        version=_int("version", obj.get("version", 0), 0, 2**63 - 1),
        token_issuer=None if obj.get("token_issuer") is None else _str("token_issuer", obj["token_issuer"]),
        token_keys=_token_keys(obj.get("token_keys", {})),
    )


def table_to_json(table: RoutingTable) -> dict[str, Any]:
    """The JSON form :func:`table_from_json` reads back."""
    return {
        "version": table.version,
        "services": {
            name: {
                "replicas": [{"id": r.id, "host": r.host, "port": r.port, "ready": r.ready}
                             for r in route.replicas],
                "auth_enabled": route.auth_enabled,
                "keys": list(route.keys),
                "max_concurrent_per_replica": route.max_concurrent_per_replica,
                "max_queue_wait_ms": route.max_queue_wait_ms,
                "scoring_timeout_ms": route.scoring_timeout_ms,
                "scale_to_zero": route.scale_to_zero,
                "cold_start_wait_ms": route.cold_start_wait_ms,
                "desired_replicas": route.desired_replicas,
                "auth_mode": route.auth_mode,
                "telemetry": route.telemetry,
                "log_response": route.log_response,
            }
            for name, route in table.services.items()
        },
        "token_issuer": table.token_issuer,
        "token_keys": dict(table.token_keys),
    }


def read_table_file(path: Path) -> RoutingTable:
    """Read and validate a table file; OSError when unreadable, ValidationError when invalid."""
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path} is not valid JSON: {exc}", hint=_HINT) from exc
    return table_from_json(raw)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class TableFileWatcher:
    """Polls a table file's stat every ``interval_s`` and publishes each new valid table.

    A missing or invalid file is logged once per change and the last table stays in force.
    """

    def __init__(self, path: Path, publish: Callable[[RoutingTable], None], interval_s: float = 0.5) -> None:
        self.path = path
        self._publish = publish
        self._interval_s = interval_s
        self._stamp: tuple[int, int, int] | None = None
        self._missing_logged = False
        self._task: asyncio.Task[None] | None = None

    def check(self, *, strict: bool = False) -> bool:
        """Re-read the file if its stat changed; True when a new table was published.

        ``strict`` (at start) lets an invalid file raise instead of being logged.
        """
        stamp = _stamp(self.path)
        if stamp is None:
            if not self._missing_logged:
                log.warning("routing table %s is missing; keeping the last table", self.path)
                self._missing_logged = True
            self._stamp = None
            return False
        self._missing_logged = False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            table = read_table_file(self.path)
        except (OSError, ValidationError) as exc:
            if strict:
                raise
            log.warning("routing table %s not loaded, keeping the last table: %s", self.path, exc)
            return False
        self._publish(table)
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.check()
