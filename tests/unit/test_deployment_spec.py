"""v1 deployment configurations (modelhost.spec.deployment): rules, defaults, JSON, updates, dispatch."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

import modelhost.spec.deployment as deployment
from modelhost.autoscale import CONFIG_KEYS, AutoscaleConfig
from modelhost.errors import ValidationError
from modelhost.runtime.base import ProbeSettings, Resources
from modelhost.spec.deployment import (
    AKS_GET_KEYS,
    AKS_GET_NESTED_KEYS,
    BASE_GET_KEYS,
    PATCH_PATHS,
    AciDeploymentConfig,
    AksDeploymentConfig,
    DeploymentConfig,
    DeployTarget,
    InferenceConfig,
    LocalDeploymentConfig,
    apply_update,
    changes_from_json_patch,
    check_deploy,
    choose_deploy_config,
    config_from_payload,
    json_patch_from_changes,
    service_payload,
    validate_update,
)

P = "Invalid configuration, "


def table(names: str | tuple[str, ...], rows: list[Any]) -> pytest.MarkDecorator:
    """Parametrize over rows of ``(id, *values)``."""
    values = [row[1] if len(row) == 2 else row[1:] for row in rows]
    return pytest.mark.parametrize(names, values, ids=[row[0] for row in rows])

NS = "^[a-z0-9]([a-z0-9-]{,61}[a-z0-9])?$"
DOWN, ZERO = CONFIG_KEYS["scale_down_delay_s"], CONFIG_KEYS["scale_to_zero_delay_s"]

# v1's AksWebservice.deploy_configuration signature, in order (core aks.py, reference §2).
V1_AKS_PARAMS = [
    "autoscale_enabled", "autoscale_min_replicas", "autoscale_max_replicas", "autoscale_refresh_seconds",
    "autoscale_target_utilization", "collect_model_data", "auth_enabled", "cpu_cores", "memory_gb",
    "enable_app_insights", "scoring_timeout_ms", "replica_max_concurrent_requests", "max_request_wait_time",
    "num_replicas", "primary_key", "secondary_key", "tags", "properties", "description", "gpu_cores",
    "period_seconds", "initial_delay_seconds", "timeout_seconds", "success_threshold", "failure_threshold",
    "namespace", "token_auth_enabled", "compute_target_name", "cpu_cores_limit", "memory_gb_limit",
    "blobfuse_enabled",
]
V1_ACI_PARAMS = [
    "cpu_cores", "memory_gb", "tags", "properties", "description", "location", "auth_enabled",
    "ssl_enabled", "enable_app_insights", "ssl_cert_pem_file", "ssl_key_pem_file", "ssl_cname",
    "dns_name_label", "primary_key", "secondary_key", "collect_model_data", "cmk_vault_base_url",
    "cmk_key_name", "cmk_key_version", "vnet_name", "subnet_name",
]


def test_parameters_keep_v1_names_and_order_then_extensions() -> None:
    aks = [f.name for f in fields(AksDeploymentConfig)]
    assert aks == [*V1_AKS_PARAMS, DOWN, ZERO]
    assert [f.name for f in fields(AciDeploymentConfig)] == [*V1_ACI_PARAMS, "token_auth_enabled"]
    assert [f.name for f in fields(LocalDeploymentConfig)] == ["port"]
    assert all(getattr(AksDeploymentConfig(), name) is None for name in aks)
    assert (AksDeploymentConfig.compute_type, AciDeploymentConfig.compute_type,
            LocalDeploymentConfig.compute_type) == ("AKS", "ACI", "Local")


def test_public_surface_is_pinned() -> None:
    assert sorted(deployment.__all__) == sorted([
        "ACI_DEFAULTS", "AKS_DEFAULTS", "AKS_GET_KEYS", "AKS_GET_NESTED_KEYS", "AKS_TARGET_TYPES",
        "BASE_GET_KEYS", "CALLER_KEYS", "CONFIG_CLASSES", "MAX_SCORING_TIMEOUT_MS", "NAMESPACE_REGEX",
        "PATCH_PATHS", "PREFIX", "UPDATE_KEYS", "AciDeploymentConfig", "AksDeploymentConfig", "DeployTarget",
        "DeploymentConfig", "InferenceConfig", "LocalDeploymentConfig", "ProbeKwargs", "ResourcesKwargs",
        "RuntimeSettings", "apply_update", "changes_from_json_patch", "check_deploy", "choose_deploy_config",
        "config_from_payload", "json_patch_from_changes", "service_payload", "validate_update",
    ])
    assert all(hasattr(deployment, name) for name in deployment.__all__)


# -- AKS validation: each rule alone ------------------------------------------------------------------

AKS_SINGLE: list[tuple[str, dict[str, Any], str]] = [
    ("cpu-zero", {"cpu_cores": 0}, f"{P}cpu_cores must be greater than zero. Got cpu_cores=0."),
    ("cpu-limit-below-cpu", {"cpu_cores": 2, "cpu_cores_limit": 1},
     f"{P}cpu_cores_limit must be greater than or equal to cpu_cores. Got cpu_cores_limit=1, cpu_cores=2."),
    ("cpu-limit-below-default", {"cpu_cores_limit": 0.05},
     f"{P}cpu_cores_limit must be greater than or equal to cpu_cores. "
     f"Got cpu_cores_limit=0.05, cpu_cores=0.1 (default)."),
    ("memory-negative", {"memory_gb": -1}, f"{P}memory_gb must be greater than zero. Got memory_gb=-1."),
    ("memory-limit-below-memory", {"memory_gb": 2, "memory_gb_limit": 1.5},
     f"{P}memory_gb_limit must be greater than or equal to memory_gb. Got memory_gb_limit=1.5, memory_gb=2."),
    ("cpu-limit-zero", {"cpu_cores_limit": 0}, f"{P}cpu_cores_limit must be greater than zero. Got "
                                               "cpu_cores_limit=0."),
    ("gpu-negative", {"gpu_cores": -1}, f"{P}gpu_cores must be greater than or equal to zero. Got "
                                        "gpu_cores=-1."),
    ("period-zero", {"period_seconds": 0}, f"{P}period_seconds must be greater than zero. Got "
                                           "period_seconds=0."),
    ("initial-delay-zero", {"initial_delay_seconds": 0},
     f"{P}initial_delay_seconds must be greater than zero. Got initial_delay_seconds=0."),
    ("probe-timeout-zero", {"timeout_seconds": 0}, f"{P}timeout_seconds must be greater than zero. Got "
                                                   "timeout_seconds=0."),
    ("success-zero", {"success_threshold": 0},
     f"{P}success_threshold must be greater than zero. Got success_threshold=0."),
    ("failure-zero", {"failure_threshold": -2},
     f"{P}failure_threshold must be greater than zero. Got failure_threshold=-2."),
    ("namespace-regex", {"namespace": "Prod_NS"},
     f"{P}namespace must be a valid Kubernetes namespace. Regex for validation is {NS}. Got "
     "namespace='Prod_NS'."),
    ("namespace-too-long", {"namespace": "a" * 64},
     f"{P}namespace must be a valid Kubernetes namespace. Regex for validation is {NS}. Got "
     f"namespace='{'a' * 64}'."),
    ("scoring-timeout-zero", {"scoring_timeout_ms": 0},
     f"{P}scoring_timeout_ms must be greater than zero. Got scoring_timeout_ms=0."),
    ("scoring-timeout-above-5-min", {"scoring_timeout_ms": 300_001},
     f"{P}scoring_timeout_ms must be at most 300000 (5 minutes). Got scoring_timeout_ms=300001."),
    ("concurrency-zero", {"replica_max_concurrent_requests": 0},
     f"{P}replica_max_concurrent_requests must be greater than zero. Got replica_max_concurrent_requests=0."),
    ("queue-wait-zero", {"max_request_wait_time": 0},
     f"{P}max_request_wait_time must be greater than zero. Got max_request_wait_time=0."),
    ("num-replicas-zero", {"num_replicas": 0}, f"{P}num_replicas must be greater than zero. Got "
                                               "num_replicas=0."),
    ("autoscale-and-num-replicas", {"autoscale_enabled": True, "num_replicas": 2},
     f"{P}autoscale enabled and num_replicas provided. Got num_replicas=2."),
    ("autoscale-off-no-replicas", {"autoscale_enabled": False},
     f"{P}autoscale disabled but num_replicas not provided."),
    ("min-without-enabling", {"autoscale_min_replicas": 2},
     f"{P}autoscale_min_replicas provided without enabling autoscaling. Got autoscale_min_replicas=2."),
    ("max-without-enabling-when-off",
     {"autoscale_enabled": False, "num_replicas": 2, "autoscale_max_replicas": 4},
     f"{P}autoscale_max_replicas provided without enabling autoscaling. Got autoscale_max_replicas=4."),
    ("refresh-without-enabling", {"autoscale_refresh_seconds": 5},
     f"{P}autoscale_refresh_seconds provided without enabling autoscaling. Got autoscale_refresh_seconds=5."),
    ("target-without-enabling", {"num_replicas": 1, "autoscale_target_utilization": 50},
     f"{P}autoscale_target_utilization provided without enabling autoscaling. "
     f"Got autoscale_target_utilization=50."),
    ("zero-min-without-enabling", {"autoscale_min_replicas": 0},
     f"{P}autoscale_min_replicas provided without enabling autoscaling. Got autoscale_min_replicas=0."),
    ("delay-without-enabling", {DOWN: 30},
     f"{P}{DOWN} provided without enabling autoscaling. Got {DOWN}=30."),
    ("min-negative", {"autoscale_enabled": True, "autoscale_min_replicas": -1},
     f"{P}autoscale_min_replicas must be greater than zero (or 0 to scale to zero, a modelhost extension). "
     f"Got autoscale_min_replicas=-1."),
    ("max-zero", {"autoscale_enabled": True, "autoscale_max_replicas": 0},
     f"{P}autoscale_max_replicas must be greater than zero. Got autoscale_max_replicas=0."),
    ("min-above-max", {"autoscale_enabled": True, "autoscale_min_replicas": 5, "autoscale_max_replicas": 3},
     f"{P}autoscale_min_replicas cannot be greater than autoscale_max_replicas. "
     f"Got autoscale_min_replicas=5, autoscale_max_replicas=3."),
    ("min-above-default-max", {"autoscale_enabled": True, "autoscale_min_replicas": 11},
     f"{P}autoscale_min_replicas cannot be greater than autoscale_max_replicas. "
     f"Got autoscale_min_replicas=11, autoscale_max_replicas=10 (default)."),
    ("refresh-zero", {"autoscale_enabled": True, "autoscale_refresh_seconds": 0},
     f"{P}autoscale_refresh_seconds must be greater than zero. Got autoscale_refresh_seconds=0."),
    ("target-zero", {"autoscale_enabled": True, "autoscale_target_utilization": 0},
     f"{P}autoscale_target_utilization must be greater than zero. Got autoscale_target_utilization=0."),
    ("target-above-100", {"autoscale_enabled": True, "autoscale_target_utilization": 101},
     f"{P}autoscale_target_utilization must be at most 100 (a percentage). Got "
     "autoscale_target_utilization=101."),
    ("down-delay-zero", {"autoscale_enabled": True, DOWN: 0}, f"{P}{DOWN} must be greater than zero. Got "
                                                              f"{DOWN}=0."),
    ("down-delay-below-refresh", {"autoscale_enabled": True, "autoscale_refresh_seconds": 5, DOWN: 2},
     f"{P}{DOWN} must be >= autoscale_refresh_seconds (a modelhost extension). "
     f"Got {DOWN}=2, autoscale_refresh_seconds=5."),
    ("zero-delay-below-down-delay",
     {"autoscale_enabled": True, "autoscale_min_replicas": 0, DOWN: 60, ZERO: 30},
     f"{P}{ZERO} must be >= {DOWN} and autoscale_refresh_seconds (a modelhost extension). "
     f"Got {ZERO}=30, {DOWN}=60, autoscale_refresh_seconds=1 (default)."),
    ("key-and-token", {"auth_enabled": True, "token_auth_enabled": True},
     f"{P}auth_enabled and token_auth_enabled cannot both be true."),
    ("secondary-without-primary", {"secondary_key": "k2"},
     f"{P}secondary_key provided without primary_key (v1 would drop it silently)."),
    ("bool-as-str", {"auth_enabled": "true"},
     f"{P}auth_enabled must be a bool (True or False), got 'true' (str)."),
    ("number-as-str", {"cpu_cores": "1"}, f"{P}cpu_cores must be a number, got '1' (str)."),
    ("bool-as-number", {"memory_gb": True}, f"{P}memory_gb must be a number, got True (bool)."),
    ("nan", {"cpu_cores": float("nan")}, f"{P}cpu_cores must be a number, got nan (float)."),
    ("float-as-int", {"num_replicas": 1.5}, f"{P}num_replicas must be an integer, got 1.5 (float)."),
    ("tag-value-int", {"tags": {"team": 1}},
     f"{P}tags must be a dict of string keys to string values, got {{'team': 1}} (dict)."),
    ("autoscale-flag-as-str-skips-its-rules", {"autoscale_enabled": "yes", "autoscale_max_replicas": 3},
     f"{P}autoscale_enabled must be a bool (True or False), got 'yes' (str)."),
]


@table(("params", "expected"), AKS_SINGLE)
def test_each_aks_rule_alone(params: dict[str, Any], expected: str) -> None:
    assert AksDeploymentConfig(**params).validate() == [expected]
    with pytest.raises(ValidationError) as caught:
        AksDeploymentConfig.checked(**params)
    assert caught.value.details == [expected]
    assert caught.value.message == expected


AKS_VALID: list[tuple[str, dict[str, Any]]] = [
    ("empty", {}),
    ("fixed-replicas", {"autoscale_enabled": False, "num_replicas": 3}),
    ("num-replicas-implies-fixed", {"num_replicas": 2}),
    ("autoscale-knobs", {"autoscale_enabled": True, "autoscale_min_replicas": 2, "autoscale_max_replicas": 4,
                         "autoscale_refresh_seconds": 5, "autoscale_target_utilization": 50}),
    ("scale-to-zero", {"autoscale_enabled": True, "autoscale_min_replicas": 0, DOWN: 30, ZERO: 120}),
    ("token-auth", {"token_auth_enabled": True, "auth_enabled": False}),
    ("token-auth-alone", {"token_auth_enabled": True}),
    ("limits", {"cpu_cores": 1, "cpu_cores_limit": 2, "memory_gb": 1.5, "memory_gb_limit": 1.5}),
    ("everything-else", {"collect_model_data": True, "enable_app_insights": True,
                         "scoring_timeout_ms": 300_000, "replica_max_concurrent_requests": 4,
                         "max_request_wait_time": 1000, "gpu_cores": 1, "period_seconds": 5,
                         "initial_delay_seconds": 1, "timeout_seconds": 3, "success_threshold": 1,
                         "failure_threshold": 5, "namespace": "prod-1", "primary_key": "k1",
                         "secondary_key": "k2", "tags": {"a": "b"}, "properties": {"p": "q"},
                         "description": "d", "compute_target_name": "aks1", "blobfuse_enabled": False}),
]


@table("params", AKS_VALID)
def test_valid_aks_configs_and_their_resolution_are_clean(params: dict[str, Any]) -> None:
    config = AksDeploymentConfig.checked(**params)
    resolved = config.resolved()
    assert resolved.validate() == []
    assert resolved.resolved() == resolved
    assert resolved.with_defaults() == resolved
    settings = resolved.runtime_settings()
    assert Resources(**settings.resources).cpu_cores > 0
    assert ProbeSettings(**settings.probe).period_seconds > 0


def test_several_violations_are_listed_together_in_a_stable_order() -> None:
    params: dict[str, Any] = {"token_auth_enabled": True, "auth_enabled": True, "num_replicas": 2,
                              "autoscale_enabled": True, "namespace": "X", "cpu_cores": 0,
                              "enable_app_insights": "no", "scoring_timeout_ms": 400_000}
    expected = [
        f"{P}enable_app_insights must be a bool (True or False), got 'no' (str).",
        f"{P}cpu_cores must be greater than zero. Got cpu_cores=0.",
        f"{P}namespace must be a valid Kubernetes namespace. Regex for validation is {NS}. Got "
        "namespace='X'.",
        f"{P}scoring_timeout_ms must be at most 300000 (5 minutes). Got scoring_timeout_ms=400000.",
        f"{P}autoscale enabled and num_replicas provided. Got num_replicas=2.",
        f"{P}auth_enabled and token_auth_enabled cannot both be true.",
    ]
    assert AksDeploymentConfig(**params).validate() == expected
    with pytest.raises(ValidationError) as caught:
        AksDeploymentConfig.checked(**dict(reversed(params.items())))
    assert caught.value.message == "\n".join(expected)
    assert caught.value.details == expected
    assert caught.value.status_code == 400


@pytest.mark.parametrize("cls", [AksDeploymentConfig, AciDeploymentConfig, LocalDeploymentConfig])
def test_unknown_parameters_are_violations(cls: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        cls.checked(cpu_core=1)
    assert caught.value.details[0].startswith(f"{P}unknown parameter 'cpu_core'")


# -- ACI and Local validation -------------------------------------------------------------------------

ACI_SINGLE: list[tuple[str, dict[str, Any], str]] = [
    ("cpu-zero", {"cpu_cores": 0}, f"{P}cpu_cores must be greater than zero. Got cpu_cores=0."),
    ("memory-zero", {"memory_gb": 0}, f"{P}memory_gb must be greater than zero. Got memory_gb=0."),
    ("ssl-cert-only", {"ssl_cert_pem_file": "cert.pem"},
     f"{P}ssl_cert_pem_file, ssl_key_pem_file and ssl_cname must be provided together (the TLS certificate, "
     "its "
     f"key and its DNS name); missing: ssl_key_pem_file, ssl_cname."),
    ("ssl-enabled-without-files", {"ssl_enabled": True},
     f"{P}ssl_enabled requires ssl_cert_pem_file, ssl_key_pem_file and ssl_cname."),
    ("cmk-partial", {"cmk_vault_base_url": "https://v", "cmk_key_name": "k"},
     f"{P}cmk_vault_base_url, cmk_key_name and cmk_key_version must be provided together (a customer-managed "
     f"key); missing: cmk_key_version."),
    ("vnet-partial", {"subnet_name": "s"},
     f"{P}vnet_name and subnet_name must be provided together (a virtual network); missing: vnet_name."),
    ("token-auth", {"token_auth_enabled": True},
     f"{P}token_auth_enabled is not supported on ACI: token authentication needs an AKS deployment "
     "configuration "
     f"(AksWebservice.deploy_configuration(token_auth_enabled=True, auth_enabled=False))."),
    ("secondary-without-primary", {"secondary_key": "k"},
     f"{P}secondary_key provided without primary_key (v1 would drop it silently)."),
    ("ssl-flag-as-str", {"ssl_enabled": "True"}, f"{P}ssl_enabled must be a bool (True or False), got "
                                                 "'True' (str)."),
]


@table(("params", "expected"), ACI_SINGLE)
def test_each_aci_rule_alone(params: dict[str, Any], expected: str) -> None:
    assert AciDeploymentConfig(**params).validate() == [expected]


def test_aci_valid_and_defaults() -> None:
    config = AciDeploymentConfig.checked(cpu_cores=1, memory_gb=2, ssl_enabled=True, auth_enabled=True,
                                         ssl_cert_pem_file="c.pem", ssl_key_pem_file="k.pem",
                                         ssl_cname="x.example.com")
    assert config.validate() == []
    resolved = AciDeploymentConfig().resolved()
    assert (resolved.cpu_cores, resolved.memory_gb, resolved.auth_enabled, resolved.ssl_enabled,
            resolved.enable_app_insights, resolved.collect_model_data, resolved.token_auth_enabled) == (
        0.1, 0.5, False, False, False, False, False)
    settings = resolved.runtime_settings()
    assert (settings.replicas, settings.autoscale, settings.auth, settings.scoring_timeout_ms) == (
        1, None, "none", 60_000)
    assert config.runtime_settings().auth == "key"
    assert AciDeploymentConfig(location="eastus", vnet_name="v", subnet_name="s").notices() == [
        "location has no effect: modelhost runs the service on this machine.",
        "vnet_name has no effect: modelhost runs the service on this machine.",
        "subnet_name has no effect: modelhost runs the service on this machine.",
    ]


@pytest.mark.parametrize(("port", "problems"), [
    (None, []), (1, []), (65535, []),
    (0, [f"{P}port must be between 1 and 65535 (or None for a free port). Got port=0."]),
    (65536, [f"{P}port must be between 1 and 65535 (or None for a free port). Got port=65536."]),
    ("8080", [f"{P}port must be an integer, got '8080' (str)."]),
], ids=["free", "low", "high", "zero", "too-high", "str"])
def test_local_port(port: object, problems: list[str]) -> None:
    config = LocalDeploymentConfig(port=port)  # type: ignore[arg-type]
    assert config.validate() == problems
    if not problems:
        settings = config.runtime_settings()
        assert (settings.port, settings.auth, settings.replicas) == (port, "none", 1)


# -- defaults -----------------------------------------------------------------------------------------


def test_aks_server_side_defaults() -> None:
    r = AksDeploymentConfig().resolved()
    assert (r.autoscale_enabled, r.autoscale_min_replicas, r.autoscale_max_replicas,
            r.autoscale_refresh_seconds, r.autoscale_target_utilization, r.num_replicas) == (
        True, 1, 10, 1, 70, None)
    assert (r.cpu_cores, r.memory_gb, r.gpu_cores, r.cpu_cores_limit, r.memory_gb_limit) == (
        0.1, 0.5, 0, None, None)
    assert (r.scoring_timeout_ms, r.replica_max_concurrent_requests, r.max_request_wait_time) == (
        60_000, 1, 500)
    assert (r.period_seconds, r.initial_delay_seconds, r.timeout_seconds, r.success_threshold,
            r.failure_threshold) == (10, 310, 2, 1, 3)
    assert (r.auth_enabled, r.token_auth_enabled, r.collect_model_data, r.enable_app_insights) == (
        True, False, False, False)
    assert (r.tags, r.properties, r.blobfuse_enabled) == ({}, {}, True)
    assert (r.autoscale_scale_down_delay_seconds, r.autoscale_scale_to_zero_delay_seconds) == (None, None)


def test_defaults_agree_with_the_runtime_value_types() -> None:
    config = AksDeploymentConfig()
    assert Resources(**config.resources_kwargs()) == Resources()
    assert ProbeSettings(**config.probe_kwargs()) == ProbeSettings()
    assert config.to_autoscale_config() == AutoscaleConfig()


@pytest.mark.parametrize(("params", "expected"), [
    ({"num_replicas": 3}, {"autoscale_enabled": False, "autoscale_min_replicas": None, "num_replicas": 3}),
    ({"token_auth_enabled": True}, {"auth_enabled": False, "token_auth_enabled": True}),
    ({"auth_enabled": False}, {"auth_enabled": False, "token_auth_enabled": False}),
    ({"autoscale_enabled": True, "autoscale_max_replicas": 4},
     {"autoscale_min_replicas": 1, "autoscale_max_replicas": 4, "num_replicas": None}),
], ids=["fixed-replicas-turn-autoscale-off", "token-auth-turns-key-auth-off", "key-auth-off",
        "partial-knobs"])
def test_dependent_defaults(params: dict[str, Any], expected: dict[str, object]) -> None:
    resolved = AksDeploymentConfig(**params).resolved()
    assert {name: getattr(resolved, name) for name in expected} == expected


@pytest.mark.parametrize(("params", "expected"), [
    ({}, AutoscaleConfig(1, 10, 70, 1.0, 60.0, 300.0)),
    ({"autoscale_enabled": True, "autoscale_refresh_seconds": 120},
     AutoscaleConfig(1, 10, 70, 120.0, 120.0, 300.0)),
    ({"autoscale_enabled": True, DOWN: 400}, AutoscaleConfig(1, 10, 70, 1.0, 400.0, 400.0)),
    ({"autoscale_enabled": True, "autoscale_min_replicas": 0, "autoscale_max_replicas": 3,
      "autoscale_target_utilization": 50, DOWN: 10, ZERO: 20}, AutoscaleConfig(0, 3, 50, 1.0, 10.0, 20.0)),
    ({"num_replicas": 2}, None),
], ids=["defaults", "long-refresh-stretches-the-down-delay", "long-down-delay-stretches-zero", "explicit",
        "fixed"])
def test_to_autoscale_config(params: dict[str, Any], expected: AutoscaleConfig | None) -> None:
    assert AksDeploymentConfig.checked(**params).to_autoscale_config() == expected


@pytest.mark.parametrize(("params", "replicas"), [
    ({}, 1), ({"num_replicas": 4}, 4), ({"autoscale_enabled": True, "autoscale_min_replicas": 3}, 3),
    ({"autoscale_enabled": True, "autoscale_min_replicas": 0}, 1),
], ids=["autoscale-default", "fixed", "min-3", "scale-to-zero-starts-with-one"])
def test_runtime_settings_replicas(params: dict[str, Any], replicas: int) -> None:
    assert AksDeploymentConfig.checked(**params).runtime_settings().replicas == replicas


@pytest.mark.parametrize(("params", "auth"), [
    ({}, "key"), ({"auth_enabled": False}, "none"), ({"token_auth_enabled": True}, "token"),
], ids=["key", "none", "token"])
def test_runtime_settings_auth(params: dict[str, Any], auth: str) -> None:
    assert AksDeploymentConfig(**params).runtime_settings().auth == auth


# -- JSON -----------------------------------------------------------------------------------------------

ROUND_TRIP: list[tuple[str, DeploymentConfig]] = [
    *[(f"aks-{i}", AksDeploymentConfig(**p)) for i, p in AKS_VALID],
    *[(f"aks-{i}-resolved", AksDeploymentConfig(**p).resolved()) for i, p in AKS_VALID],
    ("aci-empty", AciDeploymentConfig()),
    ("aci-resolved", AciDeploymentConfig().resolved()),
    ("aci-full", AciDeploymentConfig(cpu_cores=1, memory_gb=2, tags={"a": "b"}, properties={"p": "q"},
                                     description="d", location="eastus", auth_enabled=True, ssl_enabled=True,
                                     enable_app_insights=True, ssl_cert_pem_file="C", ssl_key_pem_file="K",
                                     ssl_cname="x.example.com", dns_name_label="x", primary_key="k1",
                                     secondary_key="k2", collect_model_data=True, cmk_vault_base_url="u",
                                     cmk_key_name="n", cmk_key_version="1", vnet_name="v", subnet_name="s")),
    ("local-empty", LocalDeploymentConfig()),
    ("local-port", LocalDeploymentConfig(port=8890)),
]


@table("config", ROUND_TRIP)
def test_payload_round_trip(config: DeploymentConfig) -> None:
    wire = json.loads(json.dumps(config.to_payload()))
    assert config_from_payload(wire) == config
    assert type(config).from_payload(wire) == config


def test_aks_payload_uses_v1_json_keys() -> None:
    payload = AksDeploymentConfig(
        autoscale_enabled=True, autoscale_min_replicas=2, autoscale_max_replicas=5,
        autoscale_refresh_seconds=3, autoscale_target_utilization=60, collect_model_data=True,
        auth_enabled=False, token_auth_enabled=True, cpu_cores=1, cpu_cores_limit=2, memory_gb=3,
        memory_gb_limit=4, gpu_cores=1, enable_app_insights=True, scoring_timeout_ms=1000,
        replica_max_concurrent_requests=2, max_request_wait_time=700, primary_key="a", secondary_key="b",
        tags={"t": "1"}, properties={"p": "2"}, description="d", period_seconds=11, initial_delay_seconds=12,
        timeout_seconds=13, success_threshold=14, failure_threshold=15, namespace="ns",
        compute_target_name="aks1", blobfuse_enabled=True,
    ).to_payload()
    assert payload == {
        "computeType": "AKS",
        "autoScaler": {"autoscaleEnabled": True, "minReplicas": 2, "maxReplicas": 5,
                       "refreshPeriodInSeconds": 3, "targetUtilization": 60},
        "containerResourceRequirements": {"cpu": 1, "cpuLimit": 2, "memoryInGB": 3, "memoryInGBLimit": 4,
                                          "gpu": 1},
        "livenessProbeRequirements": {"periodSeconds": 11, "initialDelaySeconds": 12, "timeoutSeconds": 13,
                                      "successThreshold": 14, "failureThreshold": 15},
        "dataCollection": {"storageEnabled": True},
        "authEnabled": False, "aadAuthEnabled": True, "maxConcurrentRequestsPerContainer": 2,
        "maxQueueWaitMs": 700,
        "scoringTimeoutMs": 1000, "numReplicas": None, "appInsightsEnabled": True, "namespace": "ns",
        "kvTags": {"t": "1"}, "properties": {"p": "2"}, "description": "d",
        "keys": {"primaryKey": "a", "secondaryKey": "b"}, "computeName": "aks1", "storageInitEnabled": False,
    }


def test_aks_payload_leaves_out_unset_optional_keys() -> None:
    payload = AksDeploymentConfig().to_payload()
    for key in ("keys", "dataCollection", "appInsightsEnabled", "storageInitEnabled", "autoScaler",
                "authEnabled", "aadAuthEnabled"):
        assert key not in payload, key
    assert payload["containerResourceRequirements"] == {
        "cpu": None, "cpuLimit": None, "memoryInGB": None, "memoryInGBLimit": None, "gpu": None}
    assert payload["numReplicas"] is None
    extension = AksDeploymentConfig(autoscale_enabled=True, autoscale_min_replicas=0,
                                    **{DOWN: 30}).to_payload()
    assert extension["autoScaler"] == {"autoscaleEnabled": True, "minReplicas": 0, "maxReplicas": None,
                                       "refreshPeriodInSeconds": None, "targetUtilization": None,
                                       "scaleDownDelaySeconds": 30}


def test_from_payload_keeps_wrong_types_for_validation() -> None:
    config = config_from_payload({"computeType": "AKS", "authEnabled": "yes", "storageInitEnabled": "no"})
    assert config.validate() == [f"{P}auth_enabled must be a bool (True or False), got 'yes' (str).",
                                 f"{P}blobfuse_enabled must be a bool (True or False), got 'no' (str)."]


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"computeType": "IOT"}, "computeType 'IOT' is not one of AKS, ACI, Local"),
    ({}, "computeType None is not one of"),
    ({"computeType": "AKS", "autoScaler": [1]}, "'autoScaler' must be a JSON object or null, got [1]"),
    ({"computeType": "ACI", "containerResourceRequirements": "big"}, "'containerResourceRequirements' must "
                                                                     "be"),
], ids=["unknown-type", "no-type", "scaler-list", "aci-resources-str"])
def test_from_payload_rejects_wrong_shapes(payload: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match="Invalid deployment configuration payload") as caught:
        config_from_payload(payload)
    assert fragment in caught.value.message


def test_class_from_payload_rejects_another_compute_type() -> None:
    with pytest.raises(ValidationError, match="computeType 'ACI' is not 'AKS'"):
        AksDeploymentConfig.from_payload({"computeType": "ACI"})


GET_CASES: list[tuple[str, DeploymentConfig]] = [
    ("aks-autoscale", AksDeploymentConfig()),
    ("aks-fixed", AksDeploymentConfig(num_replicas=2, primary_key="secret")),
    ("aks-token", AksDeploymentConfig(token_auth_enabled=True, collect_model_data=True)),
]


@table("config", GET_CASES)
def test_aks_get_shape_has_every_key_v1_requires(config: AksDeploymentConfig) -> None:
    view = service_payload(config, name="svc", state="Healthy", created_time="2026-01-02T03:04:05Z",
                           scoring_uri="http://127.0.0.1:8791/api/v1/service/svc/score", compute_name="local")
    assert set(AKS_GET_KEYS) <= set(view)
    for key, nested in AKS_GET_NESTED_KEYS.items():
        assert isinstance(view[key], dict) and set(nested) <= set(view[key]), key
    assert "keys" not in view and "secret" not in json.dumps(view)
    assert (view["name"], view["computeType"], view["state"], view["computeName"]) == (
        "svc", "AKS", "Healthy", "local")
    assert view["swaggerUri"] == "http://127.0.0.1:8791/api/v1/service/svc/swagger.json"
    collect = bool(config.collect_model_data)
    assert view["dataCollection"] == {"eventHubEnabled": False, "storageEnabled": collect}
    # What the control plane returns reads back as the resolved configuration it stored.
    stored = AksDeploymentConfig.from_payload(view)
    assert stored == config.resolved().__class__(**{**vars(config.resolved()), "primary_key": None,
                                                     "compute_target_name": "local"})


@pytest.mark.parametrize("config", [AciDeploymentConfig(), LocalDeploymentConfig(port=9000)],
                         ids=["aci", "local"])
def test_other_get_shapes_have_the_base_keys(config: DeploymentConfig) -> None:
    view = service_payload(config, name="svc", state="Healthy", created_time="t", scoring_uri=None)
    assert set(BASE_GET_KEYS) <= set(view)
    assert (view["authEnabled"], view["aadAuthEnabled"], view["swaggerUri"]) == (False, False, None)
    assert config_from_payload(view) == config.resolved()


# -- updates --------------------------------------------------------------------------------------------

AUTOSCALING = AksDeploymentConfig(autoscale_enabled=True, autoscale_min_replicas=5, cpu_cores=1,
                                  cpu_cores_limit=2, memory_gb=1, memory_gb_limit=2,
                                  properties={"owner": "ana"}).resolved()
FIXED = AksDeploymentConfig(num_replicas=2, tags={"a": "1"}).resolved()
ACI = AciDeploymentConfig().resolved()
LOCAL = LocalDeploymentConfig(port=8000)

UPDATE_PROBLEMS: list[tuple[str, DeploymentConfig, dict[str, Any], list[str]]] = [
    ("nothing", AUTOSCALING, {}, ["No parameters provided to update."]),
    ("all-none", AUTOSCALING, {"cpu_cores": None, "tags": None}, ["No parameters provided to update."]),
    ("cpu-above-current-limit", AUTOSCALING, {"cpu_cores": 3},
     [f"{P}cpu_cores_limit must be greater than or equal to cpu_cores. "
      f"Got cpu_cores_limit=2 (current value), cpu_cores=3."]),
    ("limit-below-current-cpu", AUTOSCALING, {"cpu_cores_limit": 0.5},
     [f"{P}cpu_cores_limit must be greater than or equal to cpu_cores. "
      f"Got cpu_cores_limit=0.5, cpu_cores=1 (current value)."]),
    ("memory-above-current-limit", AUTOSCALING, {"memory_gb": 4},
     [f"{P}memory_gb_limit must be greater than or equal to memory_gb. "
      f"Got memory_gb_limit=2 (current value), memory_gb=4."]),
    ("autoscale-knob-on-fixed-service", FIXED, {"autoscale_max_replicas": 5},
     [f"{P}autoscale_max_replicas provided without enabling autoscaling. Got autoscale_max_replicas=5."]),
    ("replicas-on-autoscaling-service", AUTOSCALING, {"num_replicas": 3},
     [f"{P}autoscale enabled and num_replicas provided. Got num_replicas=3."]),
    ("autoscale-off-without-replicas", AUTOSCALING, {"autoscale_enabled": False},
     [f"{P}autoscale disabled but num_replicas not provided."]),
    ("max-below-current-min", AUTOSCALING, {"autoscale_max_replicas": 3},
     [f"{P}autoscale_min_replicas cannot be greater than autoscale_max_replicas. "
      f"Got autoscale_min_replicas=5 (current value), autoscale_max_replicas=3."]),
    ("token-while-key-auth-on", AUTOSCALING, {"token_auth_enabled": True},
     [f"{P}cannot set token_auth_enabled without disabling key auth (set auth_enabled to False). "
      f"Got auth_enabled=True (current value), token_auth_enabled=True."]),
    ("token-and-key-both-on", AUTOSCALING, {"token_auth_enabled": True, "auth_enabled": True},
     [f"{P}auth_enabled and token_auth_enabled cannot both be true."]),
    ("property-changed", AUTOSCALING, {"properties": {"owner": "bob"}},
     [f"{P}properties are add-only: property 'owner' is 'ana' and cannot be changed to 'bob'."]),
    ("image", AUTOSCALING, {"image": "img:1"},
     [f"{P}image is not supported by modelhost: v1 container images cannot run here; update with "
      f"inference_config (entry script and environment) instead."]),
    ("bad-type", AUTOSCALING, {"enable_app_insights": "on"},
     [f"{P}enable_app_insights must be a bool (True or False), got 'on' (str)."]),
    ("aci-token", ACI, {"token_auth_enabled": True},
     [f"{P}token_auth_enabled is not supported on ACI: token authentication needs an AKS deployment "
      f"configuration (AksWebservice.deploy_configuration(token_auth_enabled=True, auth_enabled=False))."]),
    ("local-port-zero", LOCAL, {"port": 0},
     [f"{P}port must be between 1 and 65535 (or None for a free port). Got port=0."]),
]


@table(("current", "changes", "expected"), UPDATE_PROBLEMS)
def test_update_violations(current: DeploymentConfig, changes: dict[str, Any], expected: list[str]) -> None:
    assert validate_update(current, changes) == expected
    with pytest.raises(ValidationError) as caught:
        apply_update(current, changes)
    assert caught.value.details == expected


@pytest.mark.parametrize(("current", "key"), [
    (AUTOSCALING, "compute_target_name"), (AUTOSCALING, "primary_key"), (ACI, "cpu_cores"),
    (LOCAL, "cpu_cores"),
], ids=["aks-compute-target", "aks-keys", "aci-cpu", "local-cpu"])
def test_parameters_an_update_cannot_change(current: DeploymentConfig, key: str) -> None:
    problems = validate_update(current, {key: "x" if key != "cpu_cores" else 1})
    assert problems[0].startswith(f"{P}{key} cannot be updated on a {current.compute_type} service; "
                                  "updatable: ")


def test_several_update_violations_at_once() -> None:
    problems = validate_update(AUTOSCALING, {"cpu_cores": 0, "num_replicas": 2, "properties": {"owner": "x"},
                                             "image": "i"})
    assert [p.split(".")[0] for p in problems] == [
        f"{P}image is not supported by modelhost: v1 container images cannot run here; update with "
        f"inference_config (entry script and environment) instead",
        f"{P}properties are add-only: property 'owner' is 'ana' and cannot be changed to 'x'",
        f"{P}cpu_cores must be greater than zero",
        f"{P}autoscale enabled and num_replicas provided",
    ]


UPDATES: list[tuple[str, DeploymentConfig, dict[str, Any], dict[str, object]]] = [
    ("tags-replace-all", FIXED, {"tags": {"b": "2"}}, {"tags": {"b": "2"}}),
    ("properties-add", AUTOSCALING, {"properties": {"team": "ml", "owner": "ana"}},
     {"properties": {"owner": "ana", "team": "ml"}}),
    ("to-fixed-replicas", AUTOSCALING, {"autoscale_enabled": False, "num_replicas": 3},
     {"autoscale_enabled": False, "num_replicas": 3, "autoscale_min_replicas": None,
      "autoscale_max_replicas": None, "autoscale_refresh_seconds": None,
      "autoscale_target_utilization": None}),
    ("to-autoscale", FIXED, {"autoscale_enabled": True, "autoscale_max_replicas": 4},
     {"autoscale_enabled": True, "num_replicas": None, "autoscale_min_replicas": 1,
      "autoscale_max_replicas": 4, "autoscale_refresh_seconds": 1, "autoscale_target_utilization": 70}),
    ("scale-to-zero", AUTOSCALING, {"autoscale_min_replicas": 0, ZERO: 600},
     {"autoscale_min_replicas": 0, ZERO: 600}),
    ("token-auth", AUTOSCALING, {"token_auth_enabled": True, "auth_enabled": False},
     {"token_auth_enabled": True, "auth_enabled": False}),
    ("resources", AUTOSCALING, {"cpu_cores": 2, "memory_gb_limit": 8, "gpu_cores": 1},
     {"cpu_cores": 2, "cpu_cores_limit": 2, "memory_gb_limit": 8, "gpu_cores": 1}),
    ("probe-and-router", FIXED,
     {"period_seconds": 3, "scoring_timeout_ms": 1000, "max_request_wait_time": 50},
     {"period_seconds": 3, "scoring_timeout_ms": 1000, "max_request_wait_time": 50, "num_replicas": 2}),
    ("models-only", FIXED, {"models": ["m:1"], "inference_config": object()}, {"num_replicas": 2}),
    ("aci-ssl", ACI,
     {"ssl_enabled": True, "ssl_cert_pem_file": "C", "ssl_key_pem_file": "K", "ssl_cname": "x.y"},
     {"ssl_enabled": True, "ssl_cname": "x.y"}),
    ("local-port", LOCAL, {"port": 9001}, {"port": 9001}),
]


@table(("current", "changes", "expected"), UPDATES)
def test_apply_update(current: DeploymentConfig, changes: dict[str, Any],
                      expected: dict[str, object]) -> None:
    assert validate_update(current, changes) == []
    updated = apply_update(current, changes)
    assert {name: getattr(updated, name) for name in expected} == expected
    assert updated.validate() == []
    assert type(updated) is type(current)
    untouched = [f.name for f in fields(current) if f.name not in changes and f.name not in expected]
    assert {n: getattr(updated, n) for n in untouched} == {n: getattr(current, n) for n in untouched}


def test_update_to_fixed_replicas_stops_autoscaling() -> None:
    updated = apply_update(AUTOSCALING, {"autoscale_enabled": False, "num_replicas": 3})
    assert updated.to_autoscale_config() is None
    assert updated.runtime_settings().replicas == 3


# -- JSON patch -----------------------------------------------------------------------------------------

# Every path v1's AksWebservice.update() sends (core aks.py, reference §1.6) and the keyword it stands for.
V1_PATCH_PATHS: list[tuple[str, str, object]] = [
    ("/autoScaler/autoscaleEnabled", "autoscale_enabled", True),
    ("/autoScaler/minReplicas", "autoscale_min_replicas", 2),
    ("/autoScaler/maxReplicas", "autoscale_max_replicas", 5),
    ("/autoScaler/refreshPeriodInSeconds", "autoscale_refresh_seconds", 3),
    ("/autoScaler/targetUtilization", "autoscale_target_utilization", 60),
    ("/dataCollection/storageEnabled", "collect_model_data", True),
    ("/authEnabled", "auth_enabled", False),
    ("/aadAuthEnabled", "token_auth_enabled", True),
    ("/containerResourceRequirements/cpu", "cpu_cores", 0.5),
    ("/containerResourceRequirements/cpuLimit", "cpu_cores_limit", 1.0),
    ("/containerResourceRequirements/memoryInGB", "memory_gb", 1.5),
    ("/containerResourceRequirements/memoryInGBLimit", "memory_gb_limit", 2.0),
    ("/containerResourceRequirements/gpu", "gpu_cores", 1),
    ("/appInsightsEnabled", "enable_app_insights", True),
    ("/scoringTimeoutMs", "scoring_timeout_ms", 1000),
    ("/maxConcurrentRequestsPerContainer", "replica_max_concurrent_requests", 2),
    ("/maxQueueWaitMs", "max_request_wait_time", 800),
    ("/numReplicas", "num_replicas", 3),
    ("/livenessProbeRequirements/periodSeconds", "period_seconds", 5),
    ("/livenessProbeRequirements/initialDelaySeconds", "initial_delay_seconds", 20),
    ("/livenessProbeRequirements/timeoutSeconds", "timeout_seconds", 4),
    ("/livenessProbeRequirements/successThreshold", "success_threshold", 2),
    ("/livenessProbeRequirements/failureThreshold", "failure_threshold", 6),
    ("/namespace", "namespace", "prod"),
    ("/kvTags", "tags", {"a": "b"}),
    ("/description", "description", "new"),
    ("/imageId", "image", "img:1"),
    ("/environmentImageRequest", "environment_image_request", {"driverProgram": "x"}),
    # ACI's update() paths and modelhost's extensions
    ("/sslEnabled", "ssl_enabled", True),
    ("/sslCertificate", "ssl_cert_pem_file", "C"),
    ("/sslKey", "ssl_key_pem_file", "K"),
    ("/cname", "ssl_cname", "x.y"),
    ("/autoScaler/scaleDownDelaySeconds", DOWN, 30),
    ("/autoScaler/scaleToZeroDelaySeconds", ZERO, 90),
    ("/port", "port", 9000),
]


@pytest.mark.parametrize(("path", "key", "value"), V1_PATCH_PATHS, ids=[row[0] for row in V1_PATCH_PATHS])
def test_json_patch_path_maps_to_the_update_keyword(path: str, key: str, value: object) -> None:
    assert changes_from_json_patch([{"op": "replace", "path": path, "value": value}]) == {key: value}
    if key not in ("image", "environment_image_request"):
        assert json_patch_from_changes({key: value}) == [{"op": "replace", "path": path, "value": value}]


def test_every_known_path_is_covered_by_the_table() -> None:
    assert set(PATCH_PATHS) == {p for p, _, _ in V1_PATCH_PATHS}


def test_properties_are_added_one_op_per_key() -> None:
    ops = [{"op": "add", "path": "/properties/team", "value": "ml"},
           {"op": "add", "path": "/properties/a~1b~0c", "value": "x"},
           {"op": "replace", "path": "/numReplicas", "value": 2},
           {"op": "replace", "path": "/numReplicas", "value": 4}]
    changes = changes_from_json_patch(ops)
    assert changes == {"properties": {"team": "ml", "a/b~c": "x"}, "num_replicas": 4}
    assert changes_from_json_patch(json_patch_from_changes(changes)) == changes


def test_a_v1_patch_applies_like_the_keywords() -> None:
    patch = json_patch_from_changes({"autoscale_enabled": True, "autoscale_max_replicas": 6, "cpu_cores": 1.5,
                                     "tags": {"x": "y"}, "properties": {"new": "1"}})
    updated = apply_update(AUTOSCALING, changes_from_json_patch(json.loads(json.dumps(patch))))
    assert (updated.autoscale_max_replicas, updated.cpu_cores, updated.tags, updated.properties) == (
        6, 1.5, {"x": "y"}, {"owner": "ana", "new": "1"})


def test_unreadable_patch_ops_are_listed_together() -> None:
    ops = [{"op": "remove", "path": "/numReplicas"}, {"op": "replace", "path": "/numReplicas"},
           {"op": "replace", "path": "/bogus", "value": 1},
           {"op": "move", "path": "/kvTags", "value": {}}, "x"]
    with pytest.raises(ValidationError) as caught:
        changes_from_json_patch(ops)
    assert caught.value.details == [
        "Invalid update: operation 0 must be an object with 'op', 'path' and 'value', got "
        "{'op': 'remove', 'path': '/numReplicas'}.",
        "Invalid update: operation 1 must be an object with 'op', 'path' and 'value', got "
        "{'op': 'replace', 'path': '/numReplicas'}.",
        "Invalid update: operation 2 has an unknown path '/bogus'.",
        "Invalid update: operation 3 (/kvTags): op 'move' is not supported; use 'replace' (or 'add' for "
        "properties).",
        "Invalid update: operation 4 must be an object with 'op', 'path' and 'value', got 'x'.",
    ]
    with pytest.raises(ValidationError, match="expected a JSON patch"):
        changes_from_json_patch({"op": "replace"})


def test_changes_without_a_patch_path_are_refused() -> None:
    with pytest.raises(ValidationError, match="primary_key has no JSON-patch path"):
        json_patch_from_changes({"primary_key": "k"})


# -- deploy dispatch ----------------------------------------------------------------------------------

AKS_TARGET = DeployTarget(name="aks1", compute_type="AKS")
AML_TARGET = DeployTarget(name="cpu-cluster", compute_type="AmlCompute")

DISPATCH: list[tuple[str, object, DeployTarget | None, DeploymentConfig]] = [
    ("nothing-means-aci-defaults", None, None, AciDeploymentConfig()),
    ("aks-target-means-aks-defaults", None, AKS_TARGET, AksDeploymentConfig(compute_target_name="aks1")),
    ("aks-config-takes-the-target-name", AksDeploymentConfig(cpu_cores=1), AKS_TARGET,
     AksDeploymentConfig(cpu_cores=1, compute_target_name="aks1")),
    ("aks-config-without-target-runs-here", AksDeploymentConfig(cpu_cores=1), None,
     AksDeploymentConfig(cpu_cores=1)),
    ("aks-config-same-target-name", AksDeploymentConfig(compute_target_name="aks1"), AKS_TARGET,
     AksDeploymentConfig(compute_target_name="aks1")),
    ("aci-config", AciDeploymentConfig(cpu_cores=1), None, AciDeploymentConfig(cpu_cores=1)),
    ("local-config", LocalDeploymentConfig(port=1234), None, LocalDeploymentConfig(port=1234)),
]


@table(("config", "target", "expected"), DISPATCH)
def test_choose_deploy_config(config: object, target: DeployTarget | None,
                              expected: DeploymentConfig) -> None:
    assert choose_deploy_config(config, target) == expected


DISPATCH_ERRORS: list[tuple[str, object, DeployTarget | None, str]] = [
    ("other-target-without-config", None, AML_TARGET,
     "Must provide deployment configuration when not deploying to AKS or ACI"),
    ("aks-config-other-target", AksDeploymentConfig(), AML_TARGET,
     "deployment_target 'cpu-cluster' is of type 'AmlCompute', which cannot host an AKS web service."),
    ("target-name-mismatch", AksDeploymentConfig(compute_target_name="other"), AKS_TARGET,
     "compute_target_name 'other' does not match deployment_target 'aks1'."),
    ("aci-with-target", AciDeploymentConfig(), AKS_TARGET,
     "A deployment_target ('aks1') is only used with an AKS deployment configuration; ACI services run on "
     "this "
     "machine."),
    ("not-a-config", {"cpu_cores": 1}, None, "Invalid deployment_config {'cpu_cores': 1}"),
]


@table(("config", "target", "message"), DISPATCH_ERRORS)
def test_choose_deploy_config_errors(config: object, target: DeployTarget | None, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        choose_deploy_config(config, target)
    assert caught.value.message.startswith(message)


def test_check_deploy_lists_the_name_and_the_configuration_together() -> None:
    with pytest.raises(ValidationError) as caught:
        check_deploy("Bad_Name", AksDeploymentConfig(cpu_cores=0, num_replicas=0))
    details = caught.value.details
    assert details[0].startswith("Error, provided service name 'Bad_Name' is invalid.")
    assert details[1:] == [f"{P}cpu_cores must be greater than zero. Got cpu_cores=0.",
                           f"{P}num_replicas must be greater than zero. Got num_replicas=0."]
    fixed = AksDeploymentConfig(num_replicas=2)
    assert check_deploy("my-svc", fixed) == fixed.resolved()


# -- InferenceConfig ------------------------------------------------------------------------------------

INFERENCE_VALID: list[tuple[str, dict[str, Any]]] = [
    ("script", {"entry_script": "score.py"}),
    ("script-in-folder", {"entry_script": "src/score.py", "source_directory": "./project"}),
    ("windows-path", {"entry_script": "src\\score_v2.py"}),
    ("environment", {"entry_script": "score.py", "environment": "my-env", "description": "d"}),
    ("conda-file", {"entry_script": "score.py", "conda_file": "env.yml", "runtime": "python"}),
    ("runtime-any-case", {"entry_script": "score.py", "runtime": "Python"}),
    ("gpu-off", {"entry_script": "score.py", "enable_gpu": False}),
]


@table("params", INFERENCE_VALID)
def test_valid_inference_configs(params: dict[str, Any]) -> None:
    assert InferenceConfig.checked(**params).validate() == []


def test_inference_config_helpers() -> None:
    assert InferenceConfig(entry_script="src/score.py").entry_module == "score"
    assert InferenceConfig(entry_script="score.py", conda_file="env.yml").environment_source == "conda_file"
    assert InferenceConfig(entry_script="score.py", environment="e").environment_source == "environment"
    assert InferenceConfig(entry_script="score.py").environment_source is None


NO_DOCKER = ("modelhost runs replicas as processes on this machine, not from Docker images; put Python "
             "packages in "
             "the environment (conda_file or Environment) and install system packages on the host.")
CUDA_WHY = ("CUDA comes with the packages in the environment (for example torch's CUDA wheels); request "
            "GPUs with "
            "gpu_cores in the deployment configuration.")

INFERENCE_SINGLE: list[tuple[str, dict[str, Any], list[str]]] = [
    ("no-entry-script", {}, [f"{P}entry_script is required: the scoring script's path relative to "
                             f"source_directory, e.g. 'score.py'."]),
    ("not-python", {"entry_script": "score.r"},
     [f"{P}entry_script must be a Python file ending in .py: currently only Python drivers are supported. "
      f"Got entry_script='score.r'."]),
    ("module-not-identifier", {"entry_script": "my-score.py"},
     [f"{P}entry_script's module name 'my-score' is not a valid Python module name: it must be an identifier "
      "(letters, digits, '_'; not starting with a digit) and not a Python keyword. Got "
      "entry_script='my-score.py'."]),
    ("module-keyword", {"entry_script": "src/class.py"},
     [f"{P}entry_script's module name 'class' is not a valid Python module name: it must be an identifier "
      "(letters, digits, '_'; not starting with a digit) and not a Python keyword. Got "
      "entry_script='src/class.py'."]),
    ("entry-script-type", {"entry_script": 3}, [f"{P}entry_script must be a string, got 3 (int)."]),
    ("conda-with-environment", {"entry_script": "s.py", "environment": "e", "conda_file": "c.yml"},
     [f"{P}conda_file cannot be used together with environment: put it in the Environment instead. "
      f"Got conda_file='c.yml'."]),
    ("runtime-with-environment", {"entry_script": "s.py", "environment": "e", "runtime": "python"},
     [f"{P}runtime cannot be used together with environment: put it in the Environment instead. "
      f"Got runtime='python'."]),
    ("unknown-runtime", {"entry_script": "s.py", "runtime": "java"},
     [f"{P}Provided runtime not supported. Possible runtimes are: python|spark-py. Got runtime='java'."]),
    ("spark", {"entry_script": "s.py", "runtime": "spark-py"},
     [f"{P}runtime 'spark-py' is not supported by modelhost: only Python entry scripts run here; use "
      f"runtime='python' or leave it out."]),
    ("unknown-cuda", {"entry_script": "s.py", "cuda_version": "11.8"},
     [f"{P}Provided cuda_version not supported. Possible values are: 9.0|9.1|10.0. "
      f"Got cuda_version='11.8'."]),
    ("v1-cuda", {"entry_script": "s.py", "cuda_version": "10.0"},
     [f"{P}cuda_version is not supported by modelhost: {CUDA_WHY} Got cuda_version='10.0'."]),
    ("docker-steps", {"entry_script": "s.py", "extra_docker_file_steps": "steps.txt"},
     [f"{P}extra_docker_file_steps is not supported by modelhost: {NO_DOCKER} "
      f"Got extra_docker_file_steps='steps.txt'."]),
    ("base-image", {"entry_script": "s.py", "base_image": "mcr.microsoft.com/x"},
     [f"{P}base_image is not supported by modelhost: {NO_DOCKER} Got base_image='mcr.microsoft.com/x'."]),
    ("base-image-registry", {"entry_script": "s.py", "base_image_registry": "reg"},
     [f"{P}base_image_registry is not supported by modelhost: {NO_DOCKER} Got base_image_registry='reg'."]),
    ("enable-gpu", {"entry_script": "s.py", "enable_gpu": True},
     [f"{P}enable_gpu is not supported by modelhost: request GPUs with gpu_cores in the deployment "
      f"configuration; CUDA comes with the packages in the environment (for example torch's CUDA wheels). "
      f"Got enable_gpu=True."]),
]


@table(("params", "expected"), INFERENCE_SINGLE)
def test_inference_config_rules(params: dict[str, Any], expected: list[str]) -> None:
    assert InferenceConfig(**params).validate() == expected
    with pytest.raises(ValidationError) as caught:
        InferenceConfig.checked(**params)
    assert caught.value.details == expected


def test_inference_config_lists_every_violation() -> None:
    config = InferenceConfig(entry_script="x.txt", environment="e", base_image="img", enable_gpu=True)
    heads = [p.split(":")[0] for p in config.validate()]
    assert heads == [
        f"{P}entry_script must be a Python file ending in .py",
        f"{P}enable_gpu cannot be used together with environment",
        f"{P}base_image cannot be used together with environment",
        f"{P}base_image is not supported by modelhost",
        f"{P}enable_gpu is not supported by modelhost",
    ]
    with pytest.raises(ValidationError, match="unknown parameter 'script'"):
        InferenceConfig.checked(script="score.py")


def test_a_mistyped_num_replicas_hides_no_other_autoscale_rule() -> None:
    assert AksDeploymentConfig(num_replicas="2", autoscale_min_replicas=2).validate() == [  # type: ignore[arg-type]
        f"{P}num_replicas must be an integer, got '2' (str).",
        f"{P}autoscale_min_replicas provided without enabling autoscaling. Got autoscale_min_replicas=2.",
    ]


def test_notices_name_settings_without_local_effect() -> None:
    assert AksDeploymentConfig(namespace="prod", blobfuse_enabled=False).notices() == [
        "namespace 'prod' is recorded; it takes effect on the Kubernetes runtime only.",
        "blobfuse_enabled has no effect: modelhost always places the model files in the replica.",
    ]
    assert AksDeploymentConfig().notices() == []
    # the default (True, what every resolved configuration carries) is what modelhost does anyway
    assert AksDeploymentConfig().resolved().notices() == []
    ssl = AciDeploymentConfig(ssl_enabled=True, ssl_cert_pem_file="c", ssl_key_pem_file="k", ssl_cname="n")
    assert ssl.notices()[0].startswith("ssl_enabled: TLS is terminated by modelhost's router")
