"""v1's deployment configurations as pure, validated values: the one place their rules live.

The control plane (authoritative) and the SDK facades (v1 validates in the constructor) both use
this module::

    config = AksDeploymentConfig.checked(cpu_cores=1, autoscale_enabled=True, autoscale_max_replicas=4)
    payload = config.to_payload()                           # SDK -> POST /services (v1 JSON keys)
    config = config_from_payload(payload)                   # control plane
    resolved = check_deploy(name, config)                   # one ValidationError listing everything
    settings = resolved.runtime_settings()                  # replicas, autoscale, resources, probe, auth
    view = service_payload(resolved, name=..., state=..., created_time=..., scoring_uri=...)  # GET shape
    new = apply_update(resolved, changes_from_json_patch(patch))                              # PATCH

Every message starts ``Invalid configuration, `` with v1's wording where v1 has one;
``docs/deployment-config.md`` lists each parameter, its JSON key, its default and its v1 source.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from modelhost.errors import ValidationError
from modelhost.spec.deployment_aci import ACI_DEFAULTS, AciDeploymentConfig, LocalDeploymentConfig
from modelhost.spec.deployment_aks import (
    AKS_DEFAULTS,
    MAX_SCORING_TIMEOUT_MS,
    NAMESPACE_REGEX,
    AksDeploymentConfig,
    raise_problems,
)
from modelhost.spec.deployment_inference import InferenceConfig
from modelhost.spec.deployment_rules import PREFIX, ProbeKwargs, ResourcesKwargs, RuntimeSettings
from modelhost.spec.deployment_update import (
    CALLER_KEYS,
    PATCH_PATHS,
    UPDATE_KEYS,
    DeploymentConfig,
    apply_update,
    changes_from_json_patch,
    json_patch_from_changes,
    validate_update,
)
from modelhost.spec.names import validate_service_name

__all__ = [
    "ACI_DEFAULTS",
    "AKS_DEFAULTS",
    "AKS_GET_KEYS",
    "AKS_GET_NESTED_KEYS",
    "AKS_TARGET_TYPES",
    "BASE_GET_KEYS",
    "CALLER_KEYS",
    "CONFIG_CLASSES",
    "MAX_SCORING_TIMEOUT_MS",
    "NAMESPACE_REGEX",
    "PATCH_PATHS",
    "PREFIX",
    "UPDATE_KEYS",
    "AciDeploymentConfig",
    "AksDeploymentConfig",
    "DeployTarget",
    "DeploymentConfig",
    "InferenceConfig",
    "LocalDeploymentConfig",
    "ProbeKwargs",
    "ResourcesKwargs",
    "RuntimeSettings",
    "apply_update",
    "changes_from_json_patch",
    "check_deploy",
    "choose_deploy_config",
    "config_from_payload",
    "json_patch_from_changes",
    "service_payload",
    "validate_update",
]

CONFIG_CLASSES: Final[Mapping[str, type[DeploymentConfig]]] = {
    "AKS": AksDeploymentConfig, "ACI": AciDeploymentConfig, "Local": LocalDeploymentConfig,
}
AKS_TARGET_TYPES: Final = frozenset({"AKS"})

# What v1's Webservice._validate_get_payload requires of GET /services/<name> (core webservice.py, aks.py).
BASE_GET_KEYS: Final = ("computeType", "createdTime", "description", "kvTags", "name", "properties")
AKS_GET_KEYS: Final = (
    *BASE_GET_KEYS, "appInsightsEnabled", "authEnabled", "autoScaler", "computeName",
    "containerResourceRequirements", "dataCollection", "maxConcurrentRequestsPerContainer", "maxQueueWaitMs",
    "numReplicas", "scoringTimeoutMs", "scoringUri", "livenessProbeRequirements", "aadAuthEnabled",
)
AKS_GET_NESTED_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "autoScaler": ("autoscaleEnabled", "maxReplicas", "minReplicas", "refreshPeriodInSeconds",
                   "targetUtilization"),
    "containerResourceRequirements": ("cpu", "cpuLimit", "memoryInGB", "memoryInGBLimit", "gpu"),
    "dataCollection": ("eventHubEnabled", "storageEnabled"),
    "livenessProbeRequirements": ("periodSeconds", "initialDelaySeconds", "timeoutSeconds",
                                  "successThreshold", "failureThreshold"),
}


@dataclass(frozen=True, slots=True)
class DeployTarget:
    """v1's ``deployment_target`` as the SDK describes it: the compute's name and type (``AKS``, ...)."""

    name: str
    compute_type: str


def choose_deploy_config(deployment_config: object,
                         deployment_target: DeployTarget | None) -> DeploymentConfig:
    """The configuration ``Model.deploy(..., deployment_config, deployment_target)`` deploys with.

    v1's rules: no configuration and no target -> ACI defaults; an AKS target and no configuration ->
    AKS defaults; another target without a configuration -> error. An AKS configuration takes the
    target's name as ``compute_target_name``. modelhost's deliberate difference: an AKS configuration
    without a target or ``compute_target_name`` deploys to this machine (v1: "Must have a deployment
    target for an AKS web service."). ACI and Local configurations take no target. Raises
    ``ValidationError``; does not validate the configuration's values (see :func:`check_deploy`).
    """
    kind = deployment_target.compute_type if deployment_target else None
    if deployment_config is None:
        if deployment_target is None:
            return AciDeploymentConfig()
        if kind in AKS_TARGET_TYPES:
            return AksDeploymentConfig(compute_target_name=deployment_target.name)
        raise ValidationError("Must provide deployment configuration when not deploying to AKS or ACI",
                              hint="Pass deployment_config=AksWebservice.deploy_configuration(...).")
    if not isinstance(deployment_config, AksDeploymentConfig | AciDeploymentConfig | LocalDeploymentConfig):
        raise ValidationError(f"Invalid deployment_config {deployment_config!r}: expected the result of "
                              f"AksWebservice, AciWebservice or LocalWebservice.deploy_configuration(...).")
    if deployment_target is None:
        return deployment_config
    if not isinstance(deployment_config, AksDeploymentConfig):
        raise ValidationError(f"A deployment_target ({deployment_target.name!r}) is only used with an AKS "
                              f"deployment configuration; {deployment_config.compute_type} services run on "
                              f"this machine.", hint="Leave deployment_target out.")
    if kind not in AKS_TARGET_TYPES:
        raise ValidationError(f"deployment_target {deployment_target.name!r} is of type {kind!r}, which "
                              f"cannot host an AKS web service.", hint="Pass an AKS compute target or none.")
    name = deployment_config.compute_target_name
    if name is not None and name != deployment_target.name:
        raise ValidationError(f"compute_target_name {name!r} does not match deployment_target "
                              f"{deployment_target.name!r}.", hint="Give one of the two, or the same name.")
    return replace(deployment_config, compute_target_name=deployment_target.name)


def config_from_payload(payload: Mapping[str, object]) -> DeploymentConfig:
    """The configuration of a create payload or GET answer, chosen by its ``computeType``."""
    compute_type = payload.get("computeType") if isinstance(payload, Mapping) else None
    cls = CONFIG_CLASSES.get(compute_type) if isinstance(compute_type, str) else None
    if cls is None:
        raise ValidationError(f"Invalid deployment configuration payload: computeType {compute_type!r} "
                              f"is not one of {', '.join(CONFIG_CLASSES)}.",
                              hint="Send the JSON that deploy_configuration(...).to_payload() produces.")
    return cls.from_payload(payload)


def check_deploy(name: object, config: DeploymentConfig) -> DeploymentConfig:
    """The resolved configuration to deploy service ``name`` with, or one ``ValidationError`` listing
    every violation (the name's first, then the configuration's)."""
    problems = []
    try:
        validate_service_name(name)
    except ValidationError as exc:
        problems.append(exc.message)
    raise_problems(problems + config.validate())
    return config.resolved()


def service_payload(config: DeploymentConfig, *, name: str, state: str, created_time: str,
                    scoring_uri: str | None, updated_time: str | None = None, error: object = None,
                    compute_name: str | None = None, created_by: object = None) -> dict[str, object]:
    """The v1 GET ``/services/<name>`` answer for a service with this configuration (resolved here):
    every key v1's SDK requires (:data:`AKS_GET_KEYS`), the keys themselves left out. Times are the
    caller's ISO 8601 strings; ``compute_name`` is used when the configuration names none."""
    resolved = config.resolved()
    payload = resolved.to_payload()
    payload.pop("keys", None)
    payload.setdefault("description", None)
    payload.setdefault("kvTags", {})
    payload.setdefault("properties", {})
    payload.setdefault("authEnabled", getattr(resolved, "auth_enabled", False))
    payload.setdefault("aadAuthEnabled", getattr(resolved, "token_auth_enabled", False) or False)
    if isinstance(resolved, AksDeploymentConfig):
        collect = bool(resolved.collect_model_data)
        payload["dataCollection"] = {"eventHubEnabled": False, "storageEnabled": collect}
        payload["computeName"] = resolved.compute_target_name or compute_name
        scaler = payload.setdefault("autoScaler", {})
        assert isinstance(scaler, dict)
        for key in AKS_GET_NESTED_KEYS["autoScaler"]:
            scaler.setdefault(key, None)
    payload.update(name=name, state=state, createdTime=created_time, updatedTime=updated_time, error=error,
                   createdBy=created_by, scoringUri=scoring_uri,
                   swaggerUri=posixpath.dirname(scoring_uri) + "/swagger.json" if scoring_uri else None)
    return payload

