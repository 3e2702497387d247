"""``modelhost service deploy``'s configuration: v1's deploymentconfig.json plus the flags (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from modelhost.cli import app, deploy_config_from
from modelhost.errors import ValidationError
from modelhost.spec.deployment import AciDeploymentConfig, AksDeploymentConfig, LocalDeploymentConfig

# The sample of docs v1/how-to-deploy-azure-kubernetes-service.md (deploymentconfig.json), abridged.
V1_SAMPLE: dict[str, Any] = {
    "computeType": "aks",
    "autoScaler": {
        "autoscaleEnabled": True,
        "minReplicas": 1,
        "maxReplicas": 3,
        "refreshPeriodInSeconds": 1,
        "targetUtilization": 70,
    },
    "authEnabled": True,
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0},
    "appInsightsEnabled": True,
    "scoringTimeoutMs": 5000,
    "maxConcurrentRequestsPerContainer": 2,
    "maxQueueWaitMs": 5000,
    "sslEnabled": False,  # not an AKS key: ignored as v1's loader does
    "keys": {"primaryKey": "", "secondaryKey": ""},
    "livenessProbeRequirements": {"periodSeconds": 10, "initialDelaySeconds": 5, "timeoutSeconds": 2},
}


def test_v1_deploymentconfig_json_reads_in_any_case() -> None:
    config = deploy_config_from(V1_SAMPLE)
    assert isinstance(config, AksDeploymentConfig)
    assert (config.autoscale_max_replicas, config.cpu_cores, config.scoring_timeout_ms) == (3, 0.5, 5000)
    assert config.primary_key is None and config.secondary_key is None  # "" = generate one


def test_flags_apply_on_top_and_are_validated() -> None:
    fixed = deploy_config_from(None, num_replicas=2, no_auth=True)
    assert isinstance(fixed, AksDeploymentConfig)
    assert (fixed.num_replicas, fixed.autoscale_enabled, fixed.auth_enabled) == (2, False, False)
    assert isinstance(deploy_config_from({"computeType": "ACI"}), AciDeploymentConfig)
    local = deploy_config_from(None, "local", port=5005)
    assert isinstance(local, LocalDeploymentConfig) and local.port == 5005
    with pytest.raises(ValidationError, match="autoscale enabled and num_replicas provided"):
        deploy_config_from(V1_SAMPLE, num_replicas=2)
    with pytest.raises(ValidationError, match="--port does not apply to a AKS service"):
        deploy_config_from(None, port=5005)
    with pytest.raises(ValidationError, match="Invalid compute type 'GKE'"):
        deploy_config_from(None, "GKE")


def test_service_errors_are_one_line_without_a_control_plane(tmp_path: Any) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["service", "deploy", "iris-svc", "--model", "iris:1", "--num-replicas", "0"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Invalid configuration, num_replicas must be greater than zero")
    assert len(result.stderr.splitlines()) == 1
    result = runner.invoke(app, ["service", "deploy", "iris-svc", "--model", "iris:1"])
    assert result.exit_code == 1 and "no-code deployment" in result.stderr
    result = runner.invoke(app, ["service", "run", "iris-svc"])
    assert result.exit_code == 1 and "exactly one of --data and --data-file" in result.stderr
    bad = tmp_path / "dc.json"
    bad.write_text("[1]")
    result = runner.invoke(
        app, ["service", "deploy", "x-svc", "--config", str(bad), "--entry-script", "s.py"]
    )
    assert result.exit_code == 1 and "must hold a JSON object" in result.stderr
