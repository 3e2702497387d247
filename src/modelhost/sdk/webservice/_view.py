"""A service's GET payload as v1's attribute names and value objects (pure: no I/O).

v1's ``Webservice`` reads camelCase keys into snake_case attributes and small value classes
(``AutoScaler``, ``ContainerResourceRequirements``, ``LivenessProbeRequirements``,
``DataCollection``); :func:`attributes` does the same for the control plane's answer, plus the
modelhost fields under ``"modelhost"`` (replicas, desired/ready counts, the last operation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "AutoScaler",
    "ContainerResourceRequirements",
    "DataCollection",
    "LivenessProbeRequirements",
    "attributes",
    "parse_time",
]


def _get(payload: Mapping[str, Any] | None, key: str) -> Any:
    return None if payload is None else payload.get(key)


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class AutoScaler:
    """v1 ``azureml.core.webservice.aks.AutoScaler``."""

    autoscale_enabled: bool | None
    max_replicas: int | None
    min_replicas: int | None
    refresh_period_seconds: int | None
    target_utilization: int | None

    def serialize(self) -> dict[str, Any]:
        return {
            "autoscaleEnabled": self.autoscale_enabled,
            "maxReplicas": self.max_replicas,
            "minReplicas": self.min_replicas,
            "refreshPeriodInSeconds": self.refresh_period_seconds,
            "targetUtilization": self.target_utilization,
        }

    @staticmethod
    def deserialize(payload: Mapping[str, Any] | None) -> AutoScaler | None:
        if payload is None:
            return None
        return AutoScaler(
            payload.get("autoscaleEnabled"),
            payload.get("maxReplicas"),
            payload.get("minReplicas"),
            payload.get("refreshPeriodInSeconds"),
            payload.get("targetUtilization"),
        )


@dataclass(frozen=True)
class ContainerResourceRequirements:
    """v1 ``ContainerResourceRequirements`` (cores, GB, GPUs, limits)."""

    cpu: float | None
    memory_in_gb: float | None
    gpu: int | None = None
    cpu_limit: float | None = None
    memory_in_gb_limit: float | None = None

    def serialize(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "cpuLimit": self.cpu_limit,
            "memoryInGB": self.memory_in_gb,
            "memoryInGBLimit": self.memory_in_gb_limit,
            "gpu": self.gpu,
        }

    @staticmethod
    def deserialize(payload: Mapping[str, Any] | None) -> ContainerResourceRequirements | None:
        if payload is None:
            return None
        return ContainerResourceRequirements(
            payload.get("cpu"),
            payload.get("memoryInGB"),
            payload.get("gpu"),
            payload.get("cpuLimit"),
            payload.get("memoryInGBLimit"),
        )


@dataclass(frozen=True)
class LivenessProbeRequirements:
    """v1 ``LivenessProbeRequirements``; a missing block reads as v1's fallback 10/310/1/1/3."""

    period_seconds: int = 10
    initial_delay_seconds: int = 310
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    def serialize(self) -> dict[str, Any]:
        return {
            "periodSeconds": self.period_seconds,
            "initialDelaySeconds": self.initial_delay_seconds,
            "timeoutSeconds": self.timeout_seconds,
            "successThreshold": self.success_threshold,
            "failureThreshold": self.failure_threshold,
        }

    @staticmethod
    def deserialize(payload: Mapping[str, Any] | None) -> LivenessProbeRequirements:
        if payload is None:
            return LivenessProbeRequirements()
        fallback = LivenessProbeRequirements()
        return LivenessProbeRequirements(
            payload.get("periodSeconds") or fallback.period_seconds,
            payload.get("initialDelaySeconds") or fallback.initial_delay_seconds,
            payload.get("timeoutSeconds") or fallback.timeout_seconds,
            payload.get("successThreshold") or fallback.success_threshold,
            payload.get("failureThreshold") or fallback.failure_threshold,
        )


@dataclass(frozen=True)
class DataCollection:
    """v1 ``DataCollection``."""

    event_hub_enabled: bool | None
    storage_enabled: bool | None

    def serialize(self) -> dict[str, Any]:
        return {"eventHubEnabled": self.event_hub_enabled, "storageEnabled": self.storage_enabled}

    @staticmethod
    def deserialize(payload: Mapping[str, Any] | None) -> DataCollection | None:
        if payload is None:
            return None
        return DataCollection(payload.get("eventHubEnabled"), payload.get("storageEnabled"))


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time (``Z`` allowed) or epoch seconds as a datetime; anything else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def attributes(payload: Mapping[str, Any]) -> dict[str, Any]:
    """v1's ``Webservice`` attributes (and modelhost's) for a GET ``/services/<name>`` answer."""
    extra = _mapping(payload.get("modelhost")) or {}
    error = payload.get("error")
    if error is None:
        error = extra.get("error")
    return {
        "name": payload.get("name"),
        "description": payload.get("description"),
        "tags": dict(payload.get("kvTags") or {}),
        "properties": dict(payload.get("properties") or {}),
        "state": payload.get("state"),
        "error": error,
        "created_time": parse_time(payload.get("createdTime")),
        "updated_time": parse_time(payload.get("updatedTime")),
        "created_by": payload.get("createdBy"),
        "compute_type": payload.get("computeType"),
        "image_id": None,
        "image_digest": None,
        "image": None,
        "auth_enabled": bool(payload.get("authEnabled")),
        "token_auth_enabled": bool(payload.get("aadAuthEnabled")),
        "scoring_uri": payload.get("scoringUri"),
        "swagger_uri": payload.get("swaggerUri"),
        # AKS
        "compute_name": payload.get("computeName"),
        "autoscaler": AutoScaler.deserialize(_mapping(payload.get("autoScaler"))),
        "container_resource_requirements": ContainerResourceRequirements.deserialize(
            _mapping(payload.get("containerResourceRequirements"))
        ),
        "liveness_probe_requirements": LivenessProbeRequirements.deserialize(
            _mapping(payload.get("livenessProbeRequirements"))
        ),
        "data_collection": DataCollection.deserialize(_mapping(payload.get("dataCollection"))),
        "enable_app_insights": payload.get("appInsightsEnabled"),
        "max_concurrent_requests_per_container": payload.get("maxConcurrentRequestsPerContainer"),
        "max_request_wait_time": payload.get("maxQueueWaitMs"),
        "num_replicas": payload.get("numReplicas"),
        "scoring_timeout_ms": payload.get("scoringTimeoutMs"),
        "namespace": payload.get("namespace"),
        "deployment_status": payload.get("deploymentStatus"),
        "is_default": payload.get("isDefault"),
        "traffic_percentile": payload.get("trafficPercentile"),
        "version_type": payload.get("versionType"),
        # ACI
        "location": payload.get("location"),
        "ssl_enabled": payload.get("sslEnabled"),
        "cname": payload.get("cname"),
        "dns_name_label": payload.get("dnsNameLabel"),
        # Local
        "port": payload.get("port"),
        # modelhost
        "model_ids": [str(m) for m in extra.get("models") or []],
        "replicas": [dict(r) for r in extra.get("replicas") or []],
        "desired_replicas": extra.get("desiredReplicas"),
        "ready_replicas": extra.get("readyReplicas"),
        "utilization": extra.get("utilization"),
        "generation": extra.get("generation"),
        "entry_script": extra.get("entryScript"),
        "environment_ref": _mapping(extra.get("environment")),
        "operation_id": extra.get("operationId"),
    }


def serialized(payload: Mapping[str, Any], workspace_name: str) -> dict[str, Any]:
    """v1's ``serialize()`` keys (AKS's superset; absent values None), from the GET answer."""
    keys = (
        "name", "description", "state", "createdTime", "updatedTime", "error", "computeType",
        "scoringUri", "createdBy", "appInsightsEnabled", "authEnabled", "autoScaler", "computeName",
        "containerResourceRequirements", "dataCollection", "maxConcurrentRequestsPerContainer",
        "maxQueueWaitMs", "livenessProbeRequirements", "numReplicas", "deploymentStatus",
        "scoringTimeoutMs", "aadAuthEnabled", "isDefault", "trafficPercentile", "versionType",
    )  # fmt: skip
    out: dict[str, Any] = {key: payload.get(key) for key in keys}
    extra = _mapping(payload.get("modelhost")) or {}
    out.update(
        tags=dict(payload.get("kvTags") or {}),
        properties=dict(payload.get("properties") or {}),
        workspaceName=workspace_name,
        imageId=None,
        imageDigest=None,
        imageDetails=None,
        environmentDetails=extra.get("environment"),
        modelDetails=list(extra.get("models") or []),
        swaggerUri=payload.get("swaggerUri"),
    )
    return out
