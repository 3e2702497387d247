"""``AksWebservice``: v1's AKS service; on modelhost, replicas on this machine behind the router.

``AksWebservice.deploy_configuration(...)`` takes all of v1's parameters and validates them at
once, as v1's constructor does, with :class:`modelhost.spec.deployment.AksDeploymentConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from modelhost.sdk.webservice._view import (
    AutoScaler,
    ContainerResourceRequirements,
    DataCollection,
    LivenessProbeRequirements,
)
from modelhost.sdk.webservice.webservice import Webservice, unsupported
from modelhost.spec.deployment import AksDeploymentConfig

if TYPE_CHECKING:
    from modelhost.sdk.inference import InferenceConfig

__all__ = [
    "AksEndpoint",
    "AksServiceDeploymentConfiguration",
    "AksWebservice",
    "AutoScaler",
    "ContainerResourceRequirements",
    "DataCollection",
    "LivenessProbeRequirements",
]

AksServiceDeploymentConfiguration = AksDeploymentConfig
"""v1's configuration class name; ``deploy_configuration(...)`` returns one."""


class AksWebservice(Webservice):
    """A service deployed with ``AksWebservice.deploy_configuration(...)`` (v1 ``AksWebservice``)."""

    _webservice_type = "AKS"

    autoscaler: AutoScaler | None
    container_resource_requirements: ContainerResourceRequirements | None
    liveness_probe_requirements: LivenessProbeRequirements
    data_collection: DataCollection | None

    @staticmethod
    def deploy_configuration(
        autoscale_enabled: bool | None = None,
        autoscale_min_replicas: int | None = None,
        autoscale_max_replicas: int | None = None,
        autoscale_refresh_seconds: int | None = None,
        autoscale_target_utilization: int | None = None,
        collect_model_data: bool | None = None,
        auth_enabled: bool | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        enable_app_insights: bool | None = None,
        scoring_timeout_ms: int | None = None,
        replica_max_concurrent_requests: int | None = None,
        max_request_wait_time: int | None = None,
        num_replicas: int | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        gpu_cores: int | None = None,
        period_seconds: int | None = None,
        initial_delay_seconds: int | None = None,
        timeout_seconds: int | None = None,
        success_threshold: int | None = None,
        failure_threshold: int | None = None,
        namespace: str | None = None,
        token_auth_enabled: bool | None = None,
        compute_target_name: str | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        blobfuse_enabled: bool | None = None,
        **extensions: Any,
    ) -> AksDeploymentConfig:
        """v1's AKS configuration, validated now (one error listing every violation).

        ``extensions``: modelhost's ``autoscale_scale_down_delay_seconds`` and
        ``autoscale_scale_to_zero_delay_seconds`` (see docs/deployment-config.md).
        """
        params = {k: v for k, v in locals().items() if k != "extensions"}
        return AksDeploymentConfig.checked(**params, **extensions)

    def update(
        self,
        image: Any = None,
        autoscale_enabled: bool | None = None,
        autoscale_min_replicas: int | None = None,
        autoscale_max_replicas: int | None = None,
        autoscale_refresh_seconds: int | None = None,
        autoscale_target_utilization: int | None = None,
        collect_model_data: bool | None = None,
        auth_enabled: bool | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        enable_app_insights: bool | None = None,
        scoring_timeout_ms: int | None = None,
        replica_max_concurrent_requests: int | None = None,
        max_request_wait_time: int | None = None,
        num_replicas: int | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        models: Any = None,
        inference_config: InferenceConfig | None = None,
        gpu_cores: int | None = None,
        period_seconds: int | None = None,
        initial_delay_seconds: int | None = None,
        timeout_seconds: int | None = None,
        success_threshold: int | None = None,
        failure_threshold: int | None = None,
        namespace: str | None = None,
        token_auth_enabled: bool | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Change the service (v1's keyword arguments; None = unchanged). ``models`` or
        ``inference_config`` roll out new replicas; the rest changes the configuration. Does not
        wait: call :meth:`wait_for_deployment` (v1)."""
        if image is not None:
            unsupported(
                "AksWebservice.update(image=...)", "Update with inference_config=InferenceConfig(...)."
            )
        for key in ("is_migration", "compute_target"):
            if kwargs.get(key):
                unsupported(f"AksWebservice.update({key}=...)", "There is no other compute to migrate to.")
        changes = {
            k: v
            for k, v in locals().items()
            if k not in ("self", "image", "models", "inference_config", "kwargs", "key", "__class__")
        }
        changes.update({k: v for k, v in kwargs.items() if k not in ("is_migration", "compute_target")})
        self._send_update(changes, models, inference_config)


class AksEndpoint(AksWebservice):
    """v1's experimental AKS endpoint with versions and a traffic split: not offered by modelhost."""

    _webservice_type = "AKSENDPOINT"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        unsupported("AksEndpoint", "Deploy one AksWebservice per version; traffic splits are not offered.")

    @staticmethod
    def deploy_configuration(*args: Any, **kwargs: Any) -> NoReturn:
        unsupported("AksEndpoint.deploy_configuration", "Use AksWebservice.deploy_configuration(...).")
