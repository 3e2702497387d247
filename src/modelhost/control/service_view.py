"""The JSON view of a service (v1's GET shape plus modelhost's block) and the list filters. Pure.

``state`` is the live one: ``Deleting`` while a delete runs, ``Transitioning`` while another
operation runs, ``Failed`` when the last operation failed, else the runtime's state (a service that
crash-loops after it was healthy turns ``Failed`` there), else what the store recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelhost.runtime.base import ServiceStatus
from modelhost.spec.deployment import config_from_payload, service_payload
from modelhost.store.records import ServiceRecord

__all__ = ["LiveService", "live_state", "matches_filters", "scoring_uri", "service_to_dict", "set_front_door"]

# (bind host, router port) -> (scheme, host name clients use): set by control.tls_config when the
# router's TLS configuration is loaded or changed, so scoring URIs say https://<cname> while it is on.
_FRONT_DOORS: dict[tuple[str, int], tuple[str, str]] = {}


def set_front_door(host: str, router_port: int, scheme: str, public_host: str) -> None:
    _FRONT_DOORS[(host, router_port)] = (scheme, public_host)


@dataclass(frozen=True)
class LiveService:
    """A stored service with what is known about it now."""

    record: ServiceRecord
    status: ServiceStatus | None
    operation_id: str | None
    operation_kind: str | None  # of the operation running now, None when none runs
    utilization: float | None = None


def live_state(live: LiveService) -> str:
    if live.operation_kind == "delete":
        return "Deleting"
    if live.operation_kind is not None:
        return "Transitioning"
    if live.record.state == "Failed":
        return "Failed"
    if live.status is not None:
        return live.status.state
    return live.record.state


def scoring_uri(record: ServiceRecord, host: str, router_port: int) -> str | None:
    """Through the router for AKS/ACI; the replica itself for Local (``localhost:<port>``)."""
    if record.compute_type == "Local":
        port = record.config.get("port")
        return f"http://localhost:{port}/score" if port else None
    scheme, public_host = _FRONT_DOORS.get((host, router_port), ("http", host))
    return f"{scheme}://{public_host}:{router_port}/api/v1/service/{record.name}/score"


def _iso(value: datetime) -> str:
    return value.isoformat()


def _error(live: LiveService, state: str) -> object:
    if live.record.error is not None:
        return live.record.error
    if state == "Failed" and live.status is not None and live.status.error:
        return {"code": "CrashLoopBackOff", "message": live.status.error, "details": []}
    return None


def service_to_dict(live: LiveService, *, host: str, router_port: int) -> dict[str, Any]:
    """v1's GET ``/services/<name>`` payload plus ``modelhost``: replicas, generation, models..."""
    record, status = live.record, live.status
    state = live_state(live)
    payload = service_payload(
        config_from_payload(record.config),
        name=record.name,
        state=state,
        created_time=_iso(record.created_time),
        updated_time=_iso(record.updated_time),
        scoring_uri=scoring_uri(record, host, router_port),
        error=_error(live, state),
        compute_name="local",
        created_by={"userName": record.created_by} if record.created_by else None,
    )
    current = [r for r in status.replicas if r.generation == status.generation] if status else []
    environment = (
        {"name": record.environment_name, "version": record.environment_version}
        if record.environment_name
        else None
    )
    payload["modelhost"] = {
        "replicas": [
            {
                "id": r.id,
                "generation": r.generation,
                "state": r.state,
                "port": r.port,
                "pid": r.pid,
                "restarts": r.restarts,
                "lastError": r.last_error,
            }
            for r in (status.replicas if status else ())
        ],
        "desiredReplicas": status.desired_replicas if status else 0,
        "readyReplicas": sum(1 for r in current if r.state == "ready"),
        "utilization": live.utilization,
        "operationId": live.operation_id,
        "generation": record.generation,
        "models": list(record.models),
        "environment": environment,
        "entryScript": record.entry_script,
        "sourceDirectory": record.source_dir,
        "snapshot": record.snapshot,
        "error": status.error if status else None,
    }
    return payload


def _pairs(record_map: dict[str, Any], filters: Sequence[str]) -> bool:
    for item in filters:
        key, sep, value = item.partition("=")
        if key not in record_map or (sep and str(record_map[key]) != value):
            return False
    return True


def matches_filters(
    record: ServiceRecord,
    *,
    compute_type: str | None = None,
    model: str | None = None,
    tags: Sequence[str] = (),
    properties: Sequence[str] = (),
) -> bool:
    """``compute_type``; ``model`` as ``name`` or ``name:version``; ``tags``/``properties`` as
    ``key`` (present) or ``key=value`` (equal): v1's list filters."""
    if compute_type is not None and record.compute_type.lower() != compute_type.lower():
        return False
    if model is not None:
        if ":" in model and model not in record.models:
            return False
        if ":" not in model and not any(m.rpartition(":")[0] == model for m in record.models):
            return False
    config = record.config
    return _pairs(dict(config.get("kvTags") or {}), tags) and _pairs(
        dict(config.get("properties") or {}), properties
    )
