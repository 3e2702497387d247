"""``AksWebservice.deploy_configuration(...)`` as a frozen value: v1's names, rules, defaults and JSON.

Pure. Build with :meth:`AksDeploymentConfig.checked` (v1 validates in the constructor); the control
plane validates again and applies the server-side defaults with :meth:`~AksDeploymentConfig.resolved`.
``docs/deployment-config.md`` lists every parameter, its JSON key, its default and its v1 source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Final, Protocol, TypeVar

from modelhost.autoscale import CONFIG_KEYS, AutoscaleConfig
from modelhost.errors import ValidationError
from modelhost.spec.deployment_rules import (
    PREFIX,
    AuthMode,
    Field,
    ProbeKwargs,
    ResourcesKwargs,
    RuntimeSettings,
    Values,
    field_values,
    get_path,
    nested_payload,
)

__all__ = [
    "AKS_DEFAULTS",
    "AKS_FIELDS",
    "MAX_SCORING_TIMEOUT_MS",
    "NAMESPACE_REGEX",
    "SCALE_DOWN_DELAY_KEY",
    "SCALE_TO_ZERO_DELAY_KEY",
    "AksDeploymentConfig",
]

NAMESPACE_REGEX: Final = "^[a-z0-9]([a-z0-9-]{,61}[a-z0-9])?$"
MAX_SCORING_TIMEOUT_MS: Final = 300_000  # the service rejects more (Azure/MachineLearningNotebooks#1624)
SCALE_DOWN_DELAY_KEY: Final = CONFIG_KEYS["scale_down_delay_s"]
SCALE_TO_ZERO_DELAY_KEY: Final = CONFIG_KEYS["scale_to_zero_delay_s"]
_NAMESPACE_RE: Final = re.compile(NAMESPACE_REGEX[1:-1])

_AS, _CRR, _LP = "autoScaler", "containerResourceRequirements", "livenessProbeRequirements"

# v1's signature order, then modelhost's extensions.
AKS_FIELDS: Final[tuple[Field, ...]] = (
    Field("autoscale_enabled", "bool", (_AS, "autoscaleEnabled")),
    Field("autoscale_min_replicas", "int", (_AS, "minReplicas")),
    Field("autoscale_max_replicas", "int", (_AS, "maxReplicas")),
    Field("autoscale_refresh_seconds", "int", (_AS, "refreshPeriodInSeconds")),
    Field("autoscale_target_utilization", "int", (_AS, "targetUtilization")),
    Field("collect_model_data", "bool", ("dataCollection", "storageEnabled")),
    Field("auth_enabled", "bool", ("authEnabled",)),
    Field("cpu_cores", "number", (_CRR, "cpu")),
    Field("memory_gb", "number", (_CRR, "memoryInGB")),
    Field("enable_app_insights", "bool", ("appInsightsEnabled",)),
    Field("scoring_timeout_ms", "int", ("scoringTimeoutMs",)),
    Field("replica_max_concurrent_requests", "int", ("maxConcurrentRequestsPerContainer",)),
    Field("max_request_wait_time", "int", ("maxQueueWaitMs",)),
    Field("num_replicas", "int", ("numReplicas",)),
    Field("primary_key", "str", ("keys", "primaryKey")),
    Field("secondary_key", "str", ("keys", "secondaryKey")),
    Field("tags", "str_map", ("kvTags",)),
    Field("properties", "str_map", ("properties",)),
    Field("description", "str", ("description",)),
    Field("gpu_cores", "int", (_CRR, "gpu")),
    Field("period_seconds", "int", (_LP, "periodSeconds")),
    Field("initial_delay_seconds", "int", (_LP, "initialDelaySeconds")),
    Field("timeout_seconds", "int", (_LP, "timeoutSeconds")),
    Field("success_threshold", "int", (_LP, "successThreshold")),
    Field("failure_threshold", "int", (_LP, "failureThreshold")),
    Field("namespace", "str", ("namespace",)),
    Field("token_auth_enabled", "bool", ("aadAuthEnabled",)),
    Field("compute_target_name", "str", ("computeName",)),
    Field("cpu_cores_limit", "number", (_CRR, "cpuLimit")),
    Field("memory_gb_limit", "number", (_CRR, "memoryInGBLimit")),
    Field("blobfuse_enabled", "bool", ("storageInitEnabled",)),  # inverted on the wire
    Field(SCALE_DOWN_DELAY_KEY, "number", (_AS, "scaleDownDelaySeconds")),
    Field(SCALE_TO_ZERO_DELAY_KEY, "number", (_AS, "scaleToZeroDelaySeconds")),
)

# Applied server-side in v1 (the SDK sends null); see docs/deployment-config.md for the sources.
AKS_DEFAULTS: Final[Mapping[str, object]] = {
    "autoscale_min_replicas": 1,
    "autoscale_max_replicas": 10,
    "autoscale_refresh_seconds": 1,
    "autoscale_target_utilization": 70,
    "collect_model_data": False,
    "cpu_cores": 0.1,
    "memory_gb": 0.5,
    "enable_app_insights": False,
    "scoring_timeout_ms": 60_000,
    "replica_max_concurrent_requests": 1,
    "max_request_wait_time": 500,
    "gpu_cores": 0,
    "period_seconds": 10,
    "initial_delay_seconds": 310,
    "timeout_seconds": 2,
    "success_threshold": 1,
    "failure_threshold": 3,
    "token_auth_enabled": False,
    "blobfuse_enabled": True,
}

_AUTOSCALE_KNOBS: Final = ("autoscale_min_replicas", "autoscale_max_replicas", "autoscale_refresh_seconds",
                           "autoscale_target_utilization", SCALE_DOWN_DELAY_KEY, SCALE_TO_ZERO_DELAY_KEY)
_PROBE: Final = ("period_seconds", "initial_delay_seconds", "timeout_seconds", "success_threshold",
                 "failure_threshold")
# Top-level keys v1's create payload leaves out when the value is None.
_OMIT_WHEN_NONE: Final = ("keys", "dataCollection", "appInsightsEnabled", "storageInitEnabled", "authEnabled",
                          "aadAuthEnabled")


@dataclass(frozen=True)
class AksDeploymentConfig:
    """``AksWebservice.deploy_configuration(...)``: every parameter ``None`` (= unset) by default.

    modelhost extensions: ``autoscale_min_replicas=0`` (scale to zero; v1 requires >= 1) and the
    autoscaler's two delays ``autoscale_scale_down_delay_seconds`` /
    ``autoscale_scale_to_zero_delay_seconds`` (unset: derived from the refresh period, see
    :meth:`to_autoscale_config`). Treat ``tags`` and ``properties`` as read-only.
    """

    compute_type: ClassVar[str] = "AKS"
    table: ClassVar[tuple[Field, ...]] = AKS_FIELDS
    defaults: ClassVar[Mapping[str, object]] = AKS_DEFAULTS

    autoscale_enabled: bool | None = None
    autoscale_min_replicas: int | None = None
    autoscale_max_replicas: int | None = None
    autoscale_refresh_seconds: int | None = None
    autoscale_target_utilization: int | None = None
    collect_model_data: bool | None = None
    auth_enabled: bool | None = None
    cpu_cores: float | None = None
    memory_gb: float | None = None
    enable_app_insights: bool | None = None
    scoring_timeout_ms: int | None = None
    replica_max_concurrent_requests: int | None = None
    max_request_wait_time: int | None = None
    num_replicas: int | None = None
    primary_key: str | None = None
    secondary_key: str | None = None
    tags: Mapping[str, str] | None = None
    properties: Mapping[str, str] | None = None
    description: str | None = None
    gpu_cores: int | None = None
    period_seconds: int | None = None
    initial_delay_seconds: int | None = None
    timeout_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None
    namespace: str | None = None
    token_auth_enabled: bool | None = None
    compute_target_name: str | None = None
    cpu_cores_limit: float | None = None
    memory_gb_limit: float | None = None
    blobfuse_enabled: bool | None = None
    autoscale_scale_down_delay_seconds: float | None = None
    autoscale_scale_to_zero_delay_seconds: float | None = None

    # -- validation ---------------------------------------------------------------------------------

    @classmethod
    def checked(cls, **params: Any) -> AksDeploymentConfig:
        """The configuration, or ``ValidationError`` listing every violation (one per line, in
        ``details``); unknown parameter names are violations too."""
        return build_checked(cls, params, "an AKS deployment configuration")

    def validate(self) -> list[str]:
        """Every violation, in a stable order: types first, then v1's checks in v1's order."""
        return aks_problems(self.view())

    def view(self, current: Iterable[str] = ()) -> Values:
        """The values validation looks at; ``current`` names those taken from the running service."""
        return Values(AKS_FIELDS, field_values(self), self.defaults_for(), current)

    def defaults_for(self) -> dict[str, object]:
        """The defaults that apply to this configuration (auth depends on token auth)."""
        autoscale = self.num_replicas is None if self.autoscale_enabled is None else self.autoscale_enabled
        key_auth = self.token_auth_enabled is not True
        return {**AKS_DEFAULTS, "autoscale_enabled": autoscale, "auth_enabled": key_auth}

    # -- defaults -----------------------------------------------------------------------------------

    def resolved(self) -> AksDeploymentConfig:
        """The server-side defaults applied. With autoscaling the ``autoscale_*`` knobs are set and
        ``num_replicas`` is None; without it the knobs stay None. The two extension delays stay unset
        (derived), so that they follow later changes of the refresh period."""
        defaults = self.defaults_for()
        filled: dict[str, Any] = {name: (defaults.get(name) if value is None else value)
                  for name, value in field_values(self).items()}
        filled["tags"] = dict(self.tags or {})
        filled["properties"] = dict(self.properties or {})
        if filled["autoscale_enabled"] is False:
            filled.update({knob: getattr(self, knob) for knob in _AUTOSCALE_KNOBS})
        return replace(self, **filled)

    with_defaults = resolved

    # -- conversions --------------------------------------------------------------------------------

    def to_autoscale_config(self) -> AutoscaleConfig | None:
        """The autoscaler's settings (None when the replica count is fixed). Unset delays: scale down
        after ``max(60 s, refresh)``, to zero after ``max(300 s, scale-down delay)``."""
        r = self.resolved()
        if not r.autoscale_enabled:
            return None
        refresh = float(r.autoscale_refresh_seconds or 1)
        down = r.autoscale_scale_down_delay_seconds
        down = max(60.0, refresh) if down is None else float(down)
        zero = r.autoscale_scale_to_zero_delay_seconds
        zero = max(300.0, down) if zero is None else float(zero)
        return AutoscaleConfig.checked(
            min_replicas=int(r.autoscale_min_replicas or 0), max_replicas=int(r.autoscale_max_replicas or 1),
            target_utilization=int(r.autoscale_target_utilization or 70), refresh_seconds=refresh,
            scale_down_delay_s=down, scale_to_zero_delay_s=zero)

    def resources_kwargs(self) -> ResourcesKwargs:
        """``Resources(**config.resources_kwargs())`` (runtime.base), defaults applied."""
        r = self.resolved()
        return ResourcesKwargs(cpu_cores=float(r.cpu_cores or 0), memory_gb=float(r.memory_gb or 0),
                               gpu_cores=int(r.gpu_cores or 0), cpu_cores_limit=r.cpu_cores_limit,
                               memory_gb_limit=r.memory_gb_limit)

    def probe_kwargs(self) -> ProbeKwargs:
        """``ProbeSettings(**config.probe_kwargs())`` (runtime.base), defaults applied."""
        r = self.resolved()
        return ProbeKwargs(period_seconds=int(r.period_seconds or 0),
                           initial_delay_seconds=int(r.initial_delay_seconds or 0),
                           timeout_seconds=int(r.timeout_seconds or 0),
                           success_threshold=int(r.success_threshold or 0),
                           failure_threshold=int(r.failure_threshold or 0))

    def runtime_settings(self) -> RuntimeSettings:
        """Everything the control plane, runtime and router need, defaults applied, in one value."""
        r = self.resolved()
        autoscale = r.to_autoscale_config()
        replicas = max(1, autoscale.min_replicas) if autoscale else int(r.num_replicas or 1)
        auth: AuthMode = "token" if r.token_auth_enabled else "key" if r.auth_enabled else "none"
        return RuntimeSettings(
            compute_type=self.compute_type, replicas=replicas, autoscale=autoscale,
            resources=r.resources_kwargs(), probe=r.probe_kwargs(),
            max_concurrent_requests=int(r.replica_max_concurrent_requests or 1),
            max_queue_wait_ms=int(r.max_request_wait_time or 500),
            scoring_timeout_ms=int(r.scoring_timeout_ms or 60_000), auth=auth,
            collect_model_data=bool(r.collect_model_data), enable_app_insights=bool(r.enable_app_insights))

    def notices(self) -> list[str]:
        """Settings accepted for compatibility that do nothing on this machine (for the operation log)."""
        notes = []
        if self.namespace is not None:
            notes.append(f"namespace {self.namespace!r} is recorded; it takes effect on the Kubernetes "
                         f"runtime only.")
        if self.blobfuse_enabled is False:  # True is the default (resolved configs carry it): no note
            notes.append("blobfuse_enabled has no effect: modelhost always places the model files in "
                         "the replica.")
        return notes

    # -- JSON ---------------------------------------------------------------------------------------

    def to_payload(self) -> dict[str, object]:
        """v1's create payload (``AksServiceDeploymentConfiguration._build_create_payload``) without
        the parts that are not configuration (name, environmentImageRequest, location, overwrite)."""
        values = field_values(self)
        if isinstance(self.blobfuse_enabled, bool):
            values["blobfuse_enabled"] = not self.blobfuse_enabled
        payload = nested_payload(AKS_FIELDS, values)
        payload["computeType"] = self.compute_type
        scaler = payload["autoScaler"]
        assert isinstance(scaler, dict)
        for key in ("scaleDownDelaySeconds", "scaleToZeroDelaySeconds"):
            if scaler[key] is None:
                del scaler[key]
        if all(v is None for v in scaler.values()):
            del payload["autoScaler"]
        if self.primary_key is None and self.secondary_key is None:
            payload["keys"] = None
        if self.collect_model_data is None:
            payload["dataCollection"] = None
        return {k: v for k, v in payload.items() if not (k in _OMIT_WHEN_NONE and v is None)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> AksDeploymentConfig:
        """The configuration a create payload or a GET answer describes (values not validated: call
        :meth:`validate`). Raises ``ValidationError`` for a payload of the wrong shape."""
        values = read_payload(cls.compute_type, AKS_FIELDS, payload)
        if isinstance(values["blobfuse_enabled"], bool):
            values["blobfuse_enabled"] = not values["blobfuse_enabled"]
        return cls(**values)  # type: ignore[arg-type]


# -- checks -----------------------------------------------------------------------------------------


def aks_problems(v: Values) -> list[str]:
    """Every AKS violation over ``v`` (a configuration, or a service with an update applied)."""
    problems = v.type_problems()
    problems += _resource_problems(v)
    problems += v.positive(*_PROBE)
    namespace = v.raw("namespace")
    if v.ok("namespace") and isinstance(namespace, str) and not _NAMESPACE_RE.fullmatch(namespace):
        problems.append(f"{PREFIX}namespace must be a valid Kubernetes namespace. Regex for validation is "
                        f"{NAMESPACE_REGEX}.{v.got('namespace')}")
    problems += v.positive("scoring_timeout_ms")
    timeout = v.raw("scoring_timeout_ms")
    if v.ok("scoring_timeout_ms") and isinstance(timeout, int) and timeout > MAX_SCORING_TIMEOUT_MS:
        problems.append(f"{PREFIX}scoring_timeout_ms must be at most {MAX_SCORING_TIMEOUT_MS} (5 minutes)."
                        f"{v.got('scoring_timeout_ms')}")
    problems += v.positive("replica_max_concurrent_requests", "max_request_wait_time", "num_replicas")
    problems += _autoscale_problems(v)
    problems += _auth_problems(v)
    if v.raw("secondary_key") is not None and v.raw("primary_key") is None:
        problems.append(f"{PREFIX}secondary_key provided without primary_key (v1 would drop it silently).")
    return problems


def _resource_problems(v: Values) -> list[str]:
    problems = v.positive("cpu_cores")
    problems += _not_below(v, "cpu_cores_limit", "cpu_cores")
    problems += v.positive("memory_gb")
    problems += _not_below(v, "memory_gb_limit", "memory_gb")
    gpu = v.raw("gpu_cores")
    if v.ok("gpu_cores") and isinstance(gpu, int) and gpu < 0:
        problems.append(f"{PREFIX}gpu_cores must be greater than or equal to zero.{v.got('gpu_cores')}")
    return problems + v.positive("cpu_cores_limit", "memory_gb_limit")


def _not_below(v: Values, limit: str, request: str) -> list[str]:
    low, high = v.effective(request), v.effective(limit)
    if v.raw(limit) is None or not v.ok(limit, request):
        return []
    if isinstance(low, int | float) and isinstance(high, int | float) and 0 < high < low:
        return [f"{PREFIX}{limit} must be greater than or equal to {request}.{v.got(limit, request)}"]
    return []


def _autoscale_problems(v: Values) -> list[str]:
    if not v.ok("autoscale_enabled"):
        return []
    enabled, replicas = v.raw("autoscale_enabled"), v.raw("num_replicas")
    if enabled is not True:
        problems = []
        if enabled is False and not replicas and v.ok("num_replicas"):
            problems.append(f"{PREFIX}autoscale disabled but num_replicas not provided.")
        return problems + [f"{PREFIX}{knob} provided without enabling autoscaling.{v.got(knob)}"
                           for knob in _AUTOSCALE_KNOBS if v.raw(knob) is not None]
    problems = []
    if replicas is not None:
        problems.append(f"{PREFIX}autoscale enabled and num_replicas provided.{v.got('num_replicas')}")
    low = v.raw("autoscale_min_replicas")
    if v.ok("autoscale_min_replicas") and isinstance(low, int) and low < 0:
        problems.append(f"{PREFIX}autoscale_min_replicas must be greater than zero (or 0 to scale to zero, "
                        f"a modelhost extension).{v.got('autoscale_min_replicas')}")
    problems += v.positive("autoscale_max_replicas")
    problems += _min_above_max(v)
    problems += v.positive("autoscale_refresh_seconds", "autoscale_target_utilization")
    target = v.raw("autoscale_target_utilization")
    if v.ok("autoscale_target_utilization") and isinstance(target, int) and target > 100:
        problems.append(f"{PREFIX}autoscale_target_utilization must be at most 100 (a percentage)."
                        f"{v.got('autoscale_target_utilization')}")
    return problems + _delay_problems(v)


def _min_above_max(v: Values) -> list[str]:
    names = ("autoscale_min_replicas", "autoscale_max_replicas")
    low, high = (v.effective(n) for n in names)
    if not v.ok(*names) or all(v.raw(n) is None for n in names):
        return []
    if isinstance(low, int) and isinstance(high, int) and high > 0 and low > high:
        return [f"{PREFIX}autoscale_min_replicas cannot be greater than autoscale_max_replicas."
                f"{v.got(*names)}"]
    return []


def _delay_problems(v: Values) -> list[str]:
    delays = (SCALE_DOWN_DELAY_KEY, SCALE_TO_ZERO_DELAY_KEY)
    problems = v.positive(*delays)
    if problems or not v.ok("autoscale_refresh_seconds", *delays):
        return problems
    refresh, down, zero = (v.raw(n) for n in ("autoscale_refresh_seconds", *delays))
    refresh = v.effective("autoscale_refresh_seconds") if refresh is None else refresh
    if isinstance(down, int | float) and isinstance(refresh, int | float) and 0 < down < refresh:
        problems.append(f"{PREFIX}{SCALE_DOWN_DELAY_KEY} must be >= autoscale_refresh_seconds "
                        f"(a modelhost extension).{v.got(SCALE_DOWN_DELAY_KEY, 'autoscale_refresh_seconds')}")
    floor = down if down is not None else refresh
    if (isinstance(zero, int | float) and isinstance(floor, int | float) and 0 < zero < floor
            and v.effective("autoscale_min_replicas") == 0):
        problems.append(f"{PREFIX}{SCALE_TO_ZERO_DELAY_KEY} must be >= {SCALE_DOWN_DELAY_KEY} and "
                        f"autoscale_refresh_seconds (a modelhost extension)."
                        + v.got(SCALE_TO_ZERO_DELAY_KEY, SCALE_DOWN_DELAY_KEY, "autoscale_refresh_seconds"))
    return problems


def _auth_problems(v: Values) -> list[str]:
    if not v.ok("auth_enabled", "token_auth_enabled"):
        return []
    if v.raw("auth_enabled") is not True or v.raw("token_auth_enabled") is not True:
        return []
    origins = {v.origin("auth_enabled"), v.origin("token_auth_enabled")}
    if "current" not in origins:
        return [f"{PREFIX}auth_enabled and token_auth_enabled cannot both be true."]
    # v1's update wording: one of the two is already on for the running service.
    return [f"{PREFIX}cannot set token_auth_enabled without disabling key auth (set auth_enabled to False)."
            f"{v.got('auth_enabled', 'token_auth_enabled')}"]


# -- shared with the other configurations -----------------------------------------------------------


class _Validating(Protocol):
    def validate(self) -> list[str]: ...


_C = TypeVar("_C", bound=_Validating)


def build_checked(cls: type[_C], params: Mapping[str, Any], what: str) -> _C:
    """``cls`` built from ``params``, or one ``ValidationError`` listing the unknown parameter names
    (``what`` names the configuration in the message) and every violation of the rest."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = [f"{PREFIX}unknown parameter {name!r} for {what}." for name in params if name not in known]
    config = cls(**{k: v for k, v in params.items() if k in known})
    raise_problems(unknown + config.validate())
    return config


def raise_problems(problems: list[str]) -> None:
    """Raise one ``ValidationError`` whose message lists ``problems`` one per line (none: return)."""
    if problems:
        raise ValidationError("\n".join(problems), details=problems,
                              hint="Correct the deployment configuration values named above and try again.")


def read_payload(compute_type: str, table: Iterable[Field],
                 payload: Mapping[str, object]) -> dict[str, object]:
    """Field values read from a v1 JSON payload; ``ValidationError`` for a wrong shape or computeType."""
    if not isinstance(payload, Mapping):
        raise ValidationError(f"Invalid deployment configuration payload: expected a JSON object, got "
                              f"{type(payload).__name__}.")
    problems = []
    given_type = payload.get("computeType")
    if given_type is not None and given_type != compute_type:
        problems.append(f"Invalid deployment configuration payload: computeType {given_type!r} is not "
                        f"{compute_type!r}.")
    table = tuple(table)
    parents = sorted({f.path[0] for f in table if f.path and len(f.path) > 1})
    problems += [f"Invalid deployment configuration payload: {key!r} must be a JSON object or null, got "
                 f"{payload[key]!r}." for key in parents
                 if payload.get(key) is not None and not isinstance(payload[key], Mapping)]
    raise_problems(problems)
    return {f.name: get_path(payload, f.path) if f.path else None for f in table}
