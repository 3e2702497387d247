"""``Model.deploy``: validate, snapshot and upload the code, register the environment, POST the service.

Returns the ``Webservice`` subclass for the configuration **before** the deployment finishes, as
v1 does; ``service.wait_for_deployment(show_output=True)`` follows it live. Everything that can be
checked here is checked before anything is uploaded: the service name and the configuration (one
error listing every violation), the models, the entry script.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelhost.errors import ValidationError
from modelhost.sdk._code import environment_ref, model_ids_of, upload_code
from modelhost.sdk.inference import InferenceConfig
from modelhost.sdk.webservice.webservice import Webservice
from modelhost.spec.deployment import DeploymentConfig, DeployTarget, check_deploy, choose_deploy_config

if TYPE_CHECKING:
    from modelhost.sdk.workspace import Workspace

__all__ = ["deploy", "deploy_request", "deploy_target"]


def deploy_target(target: object) -> DeployTarget | None:
    """v1's ``deployment_target`` (a compute object with ``name`` and ``type``) as a :class:`DeployTarget`."""
    if target is None or isinstance(target, DeployTarget):
        return target
    name = getattr(target, "name", None)
    kind = getattr(target, "type", None) or getattr(target, "compute_type", None)
    if not isinstance(name, str) or not isinstance(kind, str):
        raise ValidationError(
            f"deployment_target {target!r} has no compute name and type",
            hint="Leave deployment_target out: services run on this machine.",
        )
    if kind in ("Kubernetes", "Local"):  # modelhost.sdk.compute targets host what v1's AKS targets host
        kind = "AKS"
    return DeployTarget(name=name, compute_type=kind.upper() if kind.lower() == "aks" else kind)


def deploy_request(
    name: str,
    model_ids: list[str],
    code: Mapping[str, str],
    environment: Mapping[str, Any] | None,
    config: DeploymentConfig,
    overwrite: bool,
) -> dict[str, Any]:
    """The ``POST /api/v1/services`` body (pure)."""
    return {
        "name": name,
        "models": list(model_ids),
        "entry_script": code["entry_script"],
        "source_directory": code["source_directory"],
        "snapshot": code["snapshot"],
        "environment": None if environment is None else dict(environment),
        "deployment_config": config.to_payload(),
        "overwrite": bool(overwrite),
    }


def deploy(
    workspace: Workspace,
    name: str,
    models: Any,
    inference_config: InferenceConfig | None = None,
    deployment_config: object = None,
    deployment_target: object = None,
    overwrite: bool = False,
    show_output: bool = False,
) -> Webservice:
    """v1's ``Model.deploy``; see the module docstring."""
    if inference_config is None:
        raise ValidationError(
            "Model.deploy without an inference_config (no-code deployment) is not supported by modelhost",
            hint="Pass inference_config=InferenceConfig(entry_script='score.py', environment=...).",
        )
    if not isinstance(inference_config, InferenceConfig):
        raise ValidationError(
            f"inference_config must be an InferenceConfig, got {type(inference_config).__name__}",
            hint="Build it with modelhost.sdk.InferenceConfig(entry_script=..., ...).",
        )
    config = choose_deploy_config(deployment_config, deploy_target(deployment_target))
    check_deploy(name, config)
    model_ids = model_ids_of(models)
    code = upload_code(workspace._client, inference_config)
    environment = environment_ref(workspace, inference_config, name)
    body = deploy_request(name, model_ids, code, environment, config, overwrite)
    if show_output:
        print(
            f"Deploying service {name} ({config.compute_type}) with models {', '.join(model_ids) or '(none)'}"
        )
    answer = workspace._client.post("/api/v1/services", body)
    service = Webservice.deserialize(workspace, answer["service"])
    service._inference_config = inference_config
    service._after_operation(answer)
    return service
