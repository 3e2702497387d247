"""``AciWebservice.deploy_configuration(...)`` and ``LocalWebservice.deploy_configuration(port)`` as values.

Pure. Same surface as :class:`~modelhost.spec.deployment_aks.AksDeploymentConfig`: ``checked``,
``validate``, ``resolved``, ``to_payload``/``from_payload``, ``runtime_settings``. ACI runs one
replica with key auth off by default; token auth is not available on ACI (v1 has no parameter for
it; asking through the JSON ``aadAuthEnabled`` or an update is a validation error).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final

from modelhost.spec.deployment_aks import AksDeploymentConfig, build_checked, read_payload
from modelhost.spec.deployment_rules import (
    PREFIX,
    Field,
    ProbeKwargs,
    ResourcesKwargs,
    RuntimeSettings,
    Values,
    field_values,
    nested_payload,
)

__all__ = ["ACI_DEFAULTS", "ACI_FIELDS", "LOCAL_FIELDS", "AciDeploymentConfig", "LocalDeploymentConfig"]

_CRR = "containerResourceRequirements"
ACI_FIELDS: Final[tuple[Field, ...]] = (
    Field("cpu_cores", "number", (_CRR, "cpu")),
    Field("memory_gb", "number", (_CRR, "memoryInGB")),
    Field("tags", "str_map", ("kvTags",)),
    Field("properties", "str_map", ("properties",)),
    Field("description", "str", ("description",)),
    Field("location", "str", ("location",)),
    Field("auth_enabled", "bool", ("authEnabled",)),
    Field("ssl_enabled", "bool", ("sslEnabled",)),
    Field("enable_app_insights", "bool", ("appInsightsEnabled",)),
    Field("ssl_cert_pem_file", "str", ("sslCertificate",)),
    Field("ssl_key_pem_file", "str", ("sslKey",)),
    Field("ssl_cname", "str", ("cname",)),
    Field("dns_name_label", "str", ("dnsNameLabel",)),
    Field("primary_key", "str", ("keys", "primaryKey")),
    Field("secondary_key", "str", ("keys", "secondaryKey")),
    Field("collect_model_data", "bool", ("dataCollection", "storageEnabled")),
    Field("cmk_vault_base_url", "str", ("encryptionProperties", "vaultBaseUrl")),
    Field("cmk_key_name", "str", ("encryptionProperties", "keyName")),
    Field("cmk_key_version", "str", ("encryptionProperties", "keyVersion")),
    Field("vnet_name", "str", ("vnetConfiguration", "vnetName")),
    Field("subnet_name", "str", ("vnetConfiguration", "subnetName")),
    Field("token_auth_enabled", "bool", ("aadAuthEnabled",)),  # only so that asking for it is an error
)

ACI_DEFAULTS: Final[Mapping[str, object]] = {
    "cpu_cores": 0.1,
    "memory_gb": 0.5,
    "auth_enabled": False,
    "ssl_enabled": False,
    "enable_app_insights": False,
    "collect_model_data": False,
    "token_auth_enabled": False,
}

_SSL: Final = ("ssl_cert_pem_file", "ssl_key_pem_file", "ssl_cname")
_CMK: Final = ("cmk_vault_base_url", "cmk_key_name", "cmk_key_version")
_VNET: Final = ("vnet_name", "subnet_name")
_GROUPS: Final = ("keys", "dataCollection", "encryptionProperties", "vnetConfiguration")


def _default_probe() -> ProbeKwargs:
    return AksDeploymentConfig().probe_kwargs()


def _fixed_settings(compute_type: str, resources: ResourcesKwargs, auth: bool, collect: bool, insights: bool,
                    port: int | None = None) -> RuntimeSettings:
    """One replica and v1's AKS router defaults: what ACI and Local services run with."""
    aks = AksDeploymentConfig().runtime_settings()
    return RuntimeSettings(
        compute_type=compute_type, replicas=1, autoscale=None, resources=resources, probe=aks.probe,
        max_concurrent_requests=aks.max_concurrent_requests, max_queue_wait_ms=aks.max_queue_wait_ms,
        scoring_timeout_ms=aks.scoring_timeout_ms, auth="key" if auth else "none", collect_model_data=collect,
        enable_app_insights=insights, port=port)


@dataclass(frozen=True)
class AciDeploymentConfig:
    """``AciWebservice.deploy_configuration(...)`` in v1's parameter order, every value ``None`` = unset.

    ``ssl_cert_pem_file`` / ``ssl_key_pem_file`` hold what the caller gives: v1's SDK takes file
    paths and sends the PEM contents; this module only checks that cert, key and cname come together.
    """

    compute_type: ClassVar[str] = "ACI"
    table: ClassVar[tuple[Field, ...]] = ACI_FIELDS
    defaults: ClassVar[Mapping[str, object]] = ACI_DEFAULTS

    cpu_cores: float | None = None
    memory_gb: float | None = None
    tags: Mapping[str, str] | None = None
    properties: Mapping[str, str] | None = None
    description: str | None = None
    location: str | None = None
    auth_enabled: bool | None = None
    ssl_enabled: bool | None = None
    enable_app_insights: bool | None = None
    ssl_cert_pem_file: str | None = None
    ssl_key_pem_file: str | None = None
    ssl_cname: str | None = None
    dns_name_label: str | None = None
    primary_key: str | None = None
    secondary_key: str | None = None
    collect_model_data: bool | None = None
    cmk_vault_base_url: str | None = None
    cmk_key_name: str | None = None
    cmk_key_version: str | None = None
    vnet_name: str | None = None
    subnet_name: str | None = None
    token_auth_enabled: bool | None = None

    @classmethod
    def checked(cls, **params: Any) -> AciDeploymentConfig:
        """The configuration, or ``ValidationError`` listing every violation."""
        return build_checked(cls, params, "an ACI deployment configuration")

    def validate(self) -> list[str]:
        return aci_problems(self.view())

    def view(self, current: Iterable[str] = ()) -> Values:
        """The values validation looks at; ``current`` names those taken from the running service."""
        return Values(ACI_FIELDS, field_values(self), self.defaults_for(), current)

    def defaults_for(self) -> dict[str, object]:
        return dict(ACI_DEFAULTS)

    def resolved(self) -> AciDeploymentConfig:
        filled: dict[str, Any] = {name: (ACI_DEFAULTS.get(name) if value is None else value)
                  for name, value in field_values(self).items()}
        filled.update(tags=dict(self.tags or {}), properties=dict(self.properties or {}))
        return replace(self, **filled)

    with_defaults = resolved

    def to_autoscale_config(self) -> None:
        """ACI services never autoscale."""
        return None

    def resources_kwargs(self) -> ResourcesKwargs:
        r = self.resolved()
        return ResourcesKwargs(cpu_cores=float(r.cpu_cores or 0), memory_gb=float(r.memory_gb or 0),
                               gpu_cores=0, cpu_cores_limit=None, memory_gb_limit=None)

    def probe_kwargs(self) -> ProbeKwargs:
        return _default_probe()

    def runtime_settings(self) -> RuntimeSettings:
        r = self.resolved()
        return _fixed_settings(self.compute_type, r.resources_kwargs(), bool(r.auth_enabled),
                               bool(r.collect_model_data), bool(r.enable_app_insights))

    def notices(self) -> list[str]:
        """Settings accepted for compatibility that do nothing on this machine."""
        inert = ("location", "dns_name_label", *_CMK, *_VNET)
        notes = [f"{name} has no effect: modelhost runs the service on this machine." for name in inert
                 if getattr(self, name) is not None]
        if self.ssl_enabled:
            notes.append("ssl_enabled: TLS is terminated by modelhost's router for every service, with the "
                         "router's certificate; the service's own certificate is recorded, not served.")
        return notes

    def to_payload(self) -> dict[str, object]:
        """v1's ``ACIServiceCreateRequest`` configuration keys; empty groups and unset flags left out."""
        payload = nested_payload(ACI_FIELDS, field_values(self))
        payload["computeType"] = self.compute_type
        for group in _GROUPS:
            nested = payload[group]
            if isinstance(nested, dict) and all(v is None for v in nested.values()):
                del payload[group]
        if self.token_auth_enabled is None:
            del payload["aadAuthEnabled"]
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> AciDeploymentConfig:
        """The configuration a payload describes (values not validated: call :meth:`validate`)."""
        return cls(**read_payload(cls.compute_type, ACI_FIELDS, payload))  # type: ignore[arg-type]


def aci_problems(v: Values) -> list[str]:
    """Every ACI violation over ``v``."""
    problems = v.type_problems()
    problems += v.positive("cpu_cores", "memory_gb")
    problems += v.all_or_none(_SSL, "the TLS certificate, its key and its DNS name")
    if v.ok("ssl_enabled") and v.raw("ssl_enabled") is True and all(v.raw(n) is None for n in _SSL):
        problems.append(f"{PREFIX}ssl_enabled requires ssl_cert_pem_file, ssl_key_pem_file and ssl_cname.")
    problems += v.all_or_none(_CMK, "a customer-managed key")
    problems += v.all_or_none(_VNET, "a virtual network")
    if v.ok("token_auth_enabled") and v.raw("token_auth_enabled") is True:
        problems.append(f"{PREFIX}token_auth_enabled is not supported on ACI: token authentication needs an "
                        f"AKS deployment configuration (AksWebservice.deploy_configuration("
                        f"token_auth_enabled=True, auth_enabled=False)).")
    if v.raw("secondary_key") is not None and v.raw("primary_key") is None:
        problems.append(f"{PREFIX}secondary_key provided without primary_key (v1 would drop it silently).")
    return problems


LOCAL_FIELDS: Final[tuple[Field, ...]] = (Field("port", "int", ("port",)),)


@dataclass(frozen=True)
class LocalDeploymentConfig:
    """``LocalWebservice.deploy_configuration(port=None)``: ``port`` 1..65535, None = a free port."""

    compute_type: ClassVar[str] = "Local"
    table: ClassVar[tuple[Field, ...]] = LOCAL_FIELDS
    defaults: ClassVar[Mapping[str, object]] = {}

    port: int | None = None

    @classmethod
    def checked(cls, **params: Any) -> LocalDeploymentConfig:
        return build_checked(cls, params, "a Local deployment configuration")

    def validate(self) -> list[str]:
        return local_problems(self.view())

    def view(self, current: Iterable[str] = ()) -> Values:
        """The values validation looks at; ``current`` names those taken from the running service."""
        return Values(LOCAL_FIELDS, {"port": self.port}, {}, current)

    def defaults_for(self) -> dict[str, object]:
        return {}

    def resolved(self) -> LocalDeploymentConfig:
        """Nothing to fill: an unset port is chosen by the control plane when the service starts."""
        return self

    with_defaults = resolved

    def to_autoscale_config(self) -> None:
        return None

    def resources_kwargs(self) -> ResourcesKwargs:
        return AciDeploymentConfig().resources_kwargs()

    def probe_kwargs(self) -> ProbeKwargs:
        return _default_probe()

    def runtime_settings(self) -> RuntimeSettings:
        """One replica, no auth (v1's local services have none), on ``port`` when given."""
        return _fixed_settings(self.compute_type, self.resources_kwargs(), False, False, False, self.port)

    def notices(self) -> list[str]:
        return []

    def to_payload(self) -> dict[str, object]:
        return {"computeType": self.compute_type, "port": self.port}

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> LocalDeploymentConfig:
        return cls(**read_payload(cls.compute_type, LOCAL_FIELDS, payload))  # type: ignore[arg-type]


def local_problems(v: Values) -> list[str]:
    problems = v.type_problems()
    port = v.raw("port")
    if v.ok("port") and isinstance(port, int) and not 1 <= port <= 65535:
        problems.append(f"{PREFIX}port must be between 1 and 65535 (or None for a free port).{v.got('port')}")
    return problems
