"""Updates of a running service's configuration: v1's ``update(...)`` keyword arguments and JSON patch.

Pure. ``changes`` is a dict of v1 ``update()`` keyword arguments; ``None`` means unchanged.
:func:`validate_update` repeats every configuration check against the service with the changes
applied (a new ``cpu_cores`` must not exceed the current ``cpu_cores_limit``, ...), marking values
that come from the running service ``(current value)``; :func:`apply_update` returns the new
resolved configuration. v1's SDK sends the same changes as an RFC 6902 patch
(``replace /autoScaler/minReplicas``, ``add /properties/<key>``); :func:`changes_from_json_patch`
reads it back, :func:`json_patch_from_changes` writes it.

Rules beyond the field checks: all-``None`` changes -> ``No parameters provided to update.``;
``tags`` replace all tags; ``properties`` only add (changing an existing value is an error);
``models``, ``inference_config`` and ``environment_image_request`` are the caller's to act on and
count as something to update; ``image`` (v1 container images) is not supported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Final

from modelhost.errors import ValidationError
from modelhost.spec.deployment_aci import (
    ACI_FIELDS,
    LOCAL_FIELDS,
    AciDeploymentConfig,
    LocalDeploymentConfig,
    aci_problems,
    local_problems,
)
from modelhost.spec.deployment_aks import (
    AKS_FIELDS,
    SCALE_DOWN_DELAY_KEY,
    SCALE_TO_ZERO_DELAY_KEY,
    AksDeploymentConfig,
    aks_problems,
    raise_problems,
)
from modelhost.spec.deployment_rules import PREFIX, Values

__all__ = [
    "CALLER_KEYS",
    "PATCH_PATHS",
    "UPDATE_KEYS",
    "DeploymentConfig",
    "apply_update",
    "changes_from_json_patch",
    "json_patch_from_changes",
    "validate_update",
]

DeploymentConfig = AksDeploymentConfig | AciDeploymentConfig | LocalDeploymentConfig

# Keyword arguments of v1's update() that are not configuration: the control plane acts on them.
CALLER_KEYS: Final = frozenset({"models", "inference_config", "environment_image_request"})

# The configuration parameters each service type's update() takes (v1's, plus modelhost's delays;
# Local: the port of a new LocalWebservice.deploy_configuration).
UPDATE_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "AKS": frozenset({
        "autoscale_enabled", "autoscale_min_replicas", "autoscale_max_replicas", "autoscale_refresh_seconds",
        "autoscale_target_utilization", "collect_model_data", "auth_enabled", "cpu_cores", "memory_gb",
        "enable_app_insights", "scoring_timeout_ms", "replica_max_concurrent_requests",
        "max_request_wait_time", "num_replicas", "tags", "properties", "description", "gpu_cores",
        "period_seconds", "initial_delay_seconds", "timeout_seconds", "success_threshold",
        "failure_threshold", "namespace", "token_auth_enabled", "cpu_cores_limit", "memory_gb_limit",
        SCALE_DOWN_DELAY_KEY, SCALE_TO_ZERO_DELAY_KEY,
    }),
    "ACI": frozenset({
        "tags", "properties", "description", "auth_enabled", "ssl_enabled", "ssl_cert_pem_file",
        "ssl_key_pem_file", "ssl_cname", "enable_app_insights", "token_auth_enabled",
    }),
    "Local": frozenset({"port"}),
}

_UNSUPPORTED: Final[Mapping[str, str]] = {
    "image": "image is not supported by modelhost: v1 container images cannot run here; update with "
             "inference_config (entry script and environment) instead.",
    "is_migration": "is_migration is not supported by modelhost: there is no v2 endpoint to migrate to.",
    "compute_target": "compute_target is not supported by modelhost: services run on this machine.",
}

_AUTOSCALE_KNOBS: Final = ("autoscale_min_replicas", "autoscale_max_replicas", "autoscale_refresh_seconds",
                           "autoscale_target_utilization", SCALE_DOWN_DELAY_KEY, SCALE_TO_ZERO_DELAY_KEY)


def _patch_paths() -> dict[str, str]:
    paths = {"/imageId": "image", "/environmentImageRequest": "environment_image_request"}
    for compute_type, table in (("AKS", AKS_FIELDS), ("ACI", ACI_FIELDS), ("Local", LOCAL_FIELDS)):
        for f in table:
            if f.path and f.name in UPDATE_KEYS[compute_type] and f.name != "properties":
                paths["/" + "/".join(f.path)] = f.name
    return paths


PATCH_PATHS: Final[Mapping[str, str]] = _patch_paths()
"""JSON-patch path -> ``update()`` keyword (``add /properties/<key>`` is handled apart)."""
_PARAM_PATHS: Final = {name: path for path, name in PATCH_PATHS.items()}

_PROBLEMS: Final[Mapping[str, Callable[[Values], list[str]]]] = {
    "AKS": aks_problems, "ACI": aci_problems, "Local": local_problems,
}


def validate_update(current: DeploymentConfig, changes: Mapping[str, object]) -> list[str]:
    """Every violation of applying ``changes`` to the running service's resolved ``current``."""
    if all(value is None for value in changes.values()):
        return ["No parameters provided to update."]
    allowed = UPDATE_KEYS[current.compute_type]
    problems = []
    for key, value in changes.items():
        if value is None or key in allowed or key in CALLER_KEYS:
            continue
        if key in _UNSUPPORTED:
            problems.append(f"{PREFIX}{_UNSUPPORTED[key]}")
        else:
            problems.append(f"{PREFIX}{key} cannot be updated on a {current.compute_type} service; "
                            f"updatable: {', '.join(sorted(allowed | CALLER_KEYS))}.")
    problems += _property_problems(current, changes)
    given = _config_changes(current, changes)
    merged = _merge(current, given)
    unchanged = [f.name for f in fields(merged) if f.name not in given]
    return problems + _PROBLEMS[current.compute_type](merged.view(current=unchanged))


def apply_update(current: DeploymentConfig, changes: Mapping[str, object]) -> DeploymentConfig:
    """The new resolved configuration, or ``ValidationError`` listing every violation."""
    raise_problems(validate_update(current, changes))
    return _merge(current, _config_changes(current, changes)).resolved()


def _config_changes(current: DeploymentConfig, changes: Mapping[str, object]) -> dict[str, object]:
    allowed = UPDATE_KEYS[current.compute_type]
    return {k: v for k, v in changes.items() if v is not None and k in allowed}


def _property_problems(current: DeploymentConfig, changes: Mapping[str, object]) -> list[str]:
    new, old = changes.get("properties"), getattr(current, "properties", None)
    if not isinstance(new, Mapping) or not isinstance(old, Mapping):
        return []
    return [f"{PREFIX}properties are add-only: property {key!r} is {old[key]!r} and cannot be changed to "
            f"{value!r}." for key, value in new.items() if key in old and old[key] != value]


def _merge(current: DeploymentConfig, given: dict[str, object]) -> DeploymentConfig:
    merged = dict(given)
    props, old = given.get("properties"), getattr(current, "properties", None)
    if isinstance(props, Mapping) and isinstance(old, Mapping):
        merged["properties"] = {**old, **props}
    if isinstance(current, AksDeploymentConfig):
        # Switching autoscaling off drops the service's knobs; switching it on drops its fixed count.
        if given.get("autoscale_enabled") is False:
            merged.update({knob: None for knob in _AUTOSCALE_KNOBS if knob not in given})
        if given.get("autoscale_enabled") is True and "num_replicas" not in given:
            merged["num_replicas"] = None
    return replace(current, **merged)  # type: ignore[arg-type]


def changes_from_json_patch(ops: object) -> dict[str, object]:
    """The ``update()`` keyword arguments an RFC 6902 patch from v1's SDK stands for.

    ``add``/``replace`` only (v1 sends nothing else); a later op on the same path wins; ``add
    /properties/<key>`` ops gather into one ``properties`` dict (``~1``/``~0`` unescaped).
    Raises ``ValidationError`` listing every op it cannot read.
    """
    if not isinstance(ops, list):
        raise ValidationError(f"Invalid update: expected a JSON patch (a list of operations), got "
                              f"{type(ops).__name__}.", hint="Send [{\"op\": \"replace\", \"path\": ..., "
                              "\"value\": ...}, ...] with Content-Type application/json-patch+json.")
    changes: dict[str, object] = {}
    problems = []
    for index, op in enumerate(ops):
        problem = _read_op(op, changes)
        if problem:
            problems.append(f"Invalid update: operation {index} {problem}")
    raise_problems(problems)
    return changes


def _read_op(op: object, changes: dict[str, object]) -> str | None:
    if not isinstance(op, Mapping) or not isinstance(op.get("path"), str) or "value" not in op:
        return f"must be an object with 'op', 'path' and 'value', got {op!r}."
    path, value = op["path"], op["value"]
    if op.get("op") not in ("add", "replace"):
        return f"({path}): op {op.get('op')!r} is not supported; use 'replace' (or 'add' for properties)."
    if path.startswith("/properties/") and len(path) > len("/properties/"):
        key = path[len("/properties/"):].replace("~1", "/").replace("~0", "~")
        props = changes.setdefault("properties", {})
        assert isinstance(props, dict)
        props[key] = value
    elif path == "/properties" and isinstance(value, Mapping):
        props = changes.setdefault("properties", {})
        assert isinstance(props, dict)
        props.update(value)
    elif path in PATCH_PATHS:
        changes[PATCH_PATHS[path]] = value
    else:
        return f"has an unknown path {path!r}."
    return None


def json_patch_from_changes(changes: Mapping[str, object]) -> list[dict[str, object]]:
    """The patch v1's SDK would send for ``changes`` (every non-None value; ``models`` and
    ``inference_config`` are not part of it: the SDK turns them into ``environment_image_request``).
    Raises ``ValidationError`` for a keyword that has no path."""
    ops: list[dict[str, object]] = []
    unknown = [key for key, value in changes.items() if value is not None and key not in _PARAM_PATHS
               and not (key == "properties" and isinstance(value, Mapping))]
    if unknown:
        raise_problems([f"{PREFIX}{key} has no JSON-patch path." for key in unknown])
    for key, value in changes.items():
        if value is None:
            continue
        if key == "properties" and isinstance(value, Mapping):
            ops += [{"op": "add", "path": "/properties/" + str(k).replace("~", "~0").replace("/", "~1"),
                     "value": v} for k, v in value.items()]
        else:
            ops.append({"op": "replace", "path": _PARAM_PATHS[key], "value": value})
    return ops
