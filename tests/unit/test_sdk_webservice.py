"""The services SDK's pure parts: configurations, request bodies, attribute mapping, v1 texts.

No control plane here: payloads come from the real ``spec.deployment.service_payload`` (what the
control plane answers with), and the objects are built with ``Webservice.deserialize``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from modelhost.errors import EntryScriptError, ModelhostError, ValidationError
from modelhost.sdk import (
    AciWebservice,
    AksWebservice,
    InferenceConfig,
    LocalWebservice,
    Model,
    Webservice,
    WebserviceException,
    Workspace,
)
from modelhost.sdk._code import model_ids_of
from modelhost.sdk._operation import operation_of
from modelhost.sdk.deploy import deploy, deploy_request, deploy_target
from modelhost.sdk.webservice import AksEndpoint, _messages
from modelhost.sdk.webservice.webservice import update_request
from modelhost.spec.deployment import (
    AciDeploymentConfig,
    AksDeploymentConfig,
    DeployTarget,
    LocalDeploymentConfig,
    changes_from_json_patch,
    service_payload,
)

NO_WS = cast(Workspace, None)  # deserialize only keeps the workspace; these tests make no calls


def _payload(config: Any, **extra: Any) -> dict[str, Any]:
    payload = service_payload(
        config,
        name="iris-svc",
        state="Healthy",
        created_time="2026-01-02T03:04:05+00:00",
        scoring_uri="http://127.0.0.1:8791/api/v1/service/iris-svc/score",
    )
    payload["modelhost"] = {
        "replicas": [{"id": "r1", "state": "Ready", "port": 4001, "pid": 42, "restarts": 0}],
        "desiredReplicas": 1,
        "readyReplicas": 1,
        "utilization": 0.25,
        "operationId": "op-1",
        "generation": 3,
        "models": ["iris:3"],
        "environment": {"name": "iris-env", "version": 2},
        "entryScript": "score.py",
        "error": None,
        **extra,
    }
    return payload


# -- deploy configurations ------------------------------------------------------------------------


def test_aks_deploy_configuration_validates_in_the_constructor_like_v1() -> None:
    config = AksWebservice.deploy_configuration(num_replicas=1, autoscale_enabled=False, cpu_cores=0.5)
    assert isinstance(config, AksDeploymentConfig) and config.num_replicas == 1
    with pytest.raises(WebserviceException) as info:
        AksWebservice.deploy_configuration(num_replicas=2, autoscale_enabled=True, cpu_cores=-1)
    lines = info.value.message.splitlines()
    assert lines == [
        "Invalid configuration, cpu_cores must be greater than zero. Got cpu_cores=-1.",
        "Invalid configuration, autoscale enabled and num_replicas provided. Got num_replicas=2.",
    ]
    with pytest.raises(ValidationError, match="autoscale_max_replicas provided without enabling"):
        AksWebservice.deploy_configuration(autoscale_max_replicas=4)
    extension = AksWebservice.deploy_configuration(
        autoscale_enabled=True, autoscale_min_replicas=0, autoscale_scale_to_zero_delay_seconds=600
    )
    assert extension.autoscale_scale_to_zero_delay_seconds == 600


def test_aci_and_local_configurations() -> None:
    aci = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1)
    assert isinstance(aci, AciDeploymentConfig) and aci.resolved().auth_enabled is False
    assert aci.to_payload()["computeType"] == "ACI"
    local = LocalWebservice.deploy_configuration(port=32267)
    assert isinstance(local, LocalDeploymentConfig) and local.to_payload() == {
        "computeType": "Local",
        "port": 32267,
    }
    with pytest.raises(ValidationError, match="port must be between 1 and 65535"):
        LocalWebservice.deploy_configuration(port=70000)


# -- InferenceConfig ------------------------------------------------------------------------------


def test_inference_config_checks_v1_rules_and_the_disk(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    config = InferenceConfig(entry_script="score.py", source_directory=str(tmp_path / "src"))
    assert config.source_directory == str((tmp_path / "src").resolve())
    assert config.entry_script_path() == (tmp_path / "src" / "score.py").resolve()
    with pytest.raises(EntryScriptError, match=r"Entry script missing\.py not found"):
        InferenceConfig(entry_script="missing.py", source_directory=str(tmp_path / "src"))
    with pytest.raises(ValidationError) as info:
        InferenceConfig(entry_script="score.py", conda_file="env.yml", environment="iris-env")
    assert "conda_file cannot be used together with environment" in info.value.message
    with pytest.raises(ValidationError, match="base_image is not supported by modelhost"):
        InferenceConfig(entry_script="score.py", source_directory=str(tmp_path / "src"), base_image="x")
    with pytest.raises(ValidationError, match="entry_script is required"):
        InferenceConfig(entry_script=cast(str, None))


def test_conda_file_is_found_relative_to_the_source_directory(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    (tmp_path / "myenv.yml").write_text("dependencies:\n  - python=3.11\n")
    config = InferenceConfig(entry_script="score.py", source_directory=tmp_path, conda_file="myenv.yml")
    assert config.conda_file_path() == tmp_path.resolve() / "myenv.yml"
    missing = InferenceConfig(entry_script="score.py", source_directory=tmp_path, conda_file="nope.yml")
    with pytest.raises(ValidationError, match=r"conda_file 'nope\.yml' does not exist"):
        missing.conda_file_path()


# -- Model.deploy's request ----------------------------------------------------------------------


def test_deploy_request_carries_code_environment_and_the_v1_payload() -> None:
    config = AksWebservice.deploy_configuration(num_replicas=1, autoscale_enabled=False)
    code = {"entry_script": "score.py", "source_directory": "src", "snapshot": "ab" * 32}
    body = deploy_request("iris-svc", ["iris:3"], code, {"name": "iris-env", "version": 2}, config, False)
    assert body == {
        "name": "iris-svc",
        "models": ["iris:3"],
        "entry_script": "score.py",
        "source_directory": "src",
        "snapshot": "ab" * 32,
        "environment": {"name": "iris-env", "version": 2},
        "deployment_config": config.to_payload(),
        "overwrite": False,
    }
    assert body["deployment_config"]["computeType"] == "AKS"
    assert body["deployment_config"]["numReplicas"] == 1
    assert json.loads(json.dumps(body)) == body  # JSON-able as is
    inherit = deploy_request("s-1", [], code, None, LocalDeploymentConfig(), True)
    assert inherit["environment"] is None and inherit["overwrite"] is True


def test_deploy_refuses_no_code_deployment_before_any_call() -> None:
    with pytest.raises(ValidationError) as info:
        deploy(NO_WS, "iris-svc", ["iris:1"], None)
    assert "no-code deployment" in info.value.message and "Model.deploy" in info.value.message
    with pytest.raises(ValidationError, match="inference_config must be an InferenceConfig"):
        deploy(NO_WS, "iris-svc", ["iris:1"], cast(InferenceConfig, "score.py"))


def test_deploy_target_and_model_ids() -> None:
    class AksCompute:  # v1's compute objects have a name and a type
        name = "aks-prod"
        type = "AKS"

    assert deploy_target(AksCompute()) == DeployTarget("aks-prod", "AKS")
    assert deploy_target(None) is None
    with pytest.raises(ValidationError, match="has no compute name and type"):
        deploy_target(object())

    class FakeModel:
        id = "iris:3"

    assert model_ids_of([FakeModel(), "other:1"]) == ["iris:3", "other:1"]
    assert model_ids_of("iris:2") == ["iris:2"] and model_ids_of(None) == []
    with pytest.raises(ValidationError, match="has no version"):
        model_ids_of(["iris"])
    with pytest.raises(ValidationError, match="must hold Model objects"):
        model_ids_of([3])


# -- updates --------------------------------------------------------------------------------------


def test_update_request_is_a_json_patch_with_falsy_values_kept() -> None:
    body, content_type = update_request(
        {"autoscale_min_replicas": 0, "auth_enabled": False, "num_replicas": None, "tags": {}}, None, None
    )
    assert content_type == "application/json-patch+json"
    assert {"op": "replace", "path": "/autoScaler/minReplicas", "value": 0} in body
    assert {"op": "replace", "path": "/authEnabled", "value": False} in body
    assert changes_from_json_patch(body) == {"autoscale_min_replicas": 0, "auth_enabled": False, "tags": {}}
    props, _ = update_request({"properties": {"a/b": "1"}}, None, None)
    assert props == [{"op": "add", "path": "/properties/a~1b", "value": "1"}]


def test_update_request_with_models_or_code_is_a_rolling_update_body() -> None:
    code = {"entry_script": "score.py", "source_directory": "", "snapshot": "cd" * 32, "environment": None}
    body, content_type = update_request({"num_replicas": 2, "cpu_cores": None}, ["iris:4"], code)
    assert content_type is None
    assert body == {"changes": {"num_replicas": 2}, "models": ["iris:4"], **code}
    only_models, _ = update_request({}, ["iris:5"], None)
    assert only_models == {"changes": {}, "models": ["iris:5"]}


# -- the Webservice object ------------------------------------------------------------------------


def test_attributes_follow_v1_names() -> None:
    config = AksDeploymentConfig(num_replicas=1, autoscale_enabled=False, tags={"a": "b"}, cpu_cores=0.5)
    svc = Webservice.deserialize(NO_WS, _payload(config))
    assert type(svc) is AksWebservice
    assert (svc.name, svc.state, svc.compute_type) == ("iris-svc", "Healthy", "AKS")
    assert svc.scoring_uri == "http://127.0.0.1:8791/api/v1/service/iris-svc/score"
    assert svc.swagger_uri == "http://127.0.0.1:8791/api/v1/service/iris-svc/swagger.json"
    assert svc.auth_enabled is True and svc.token_auth_enabled is False
    assert svc.tags == {"a": "b"} and svc.num_replicas == 1
    assert svc.model_ids == ["iris:3"] and svc.operation_id == "op-1"
    assert svc.replicas[0]["port"] == 4001
    aks = cast(AksWebservice, svc)
    assert aks.container_resource_requirements is not None
    assert aks.container_resource_requirements.cpu == 0.5
    assert aks.autoscaler is not None and aks.autoscaler.autoscale_enabled is False
    assert aks.liveness_probe_requirements.initial_delay_seconds == 310
    assert aks.data_collection is not None and aks.data_collection.storage_enabled is False
    created = svc.__dict__["created_time"]
    assert created is not None and created.year == 2026


def test_deserialize_picks_the_class_by_compute_type() -> None:
    aci = Webservice.deserialize(NO_WS, _payload(AciDeploymentConfig()))
    assert type(aci) is AciWebservice and aci.auth_enabled is False
    local = Webservice.deserialize(NO_WS, _payload(LocalDeploymentConfig(port=5001)))
    assert type(local) is LocalWebservice
    unknown = Webservice.deserialize(NO_WS, {"name": "x", "computeType": "IOT"})
    assert type(unknown) is Webservice


def test_serialize_has_v1_keys() -> None:
    class _Ws:
        name = "ws1"

    svc = Webservice.deserialize(cast(Workspace, _Ws()), _payload(AksDeploymentConfig(num_replicas=2)))
    data = svc.serialize()
    for key in ("name", "tags", "properties", "state", "createdTime", "computeType", "scoringUri",
                "autoScaler", "numReplicas", "modelDetails", "workspaceName", "imageId"):  # fmt: skip
        assert key in data, key
    assert data["workspaceName"] == "ws1" and data["modelDetails"] == ["iris:3"]
    assert data["numReplicas"] == 2


def test_key_and_token_calls_fail_by_name_without_calls() -> None:
    svc = Webservice.deserialize(NO_WS, _payload(AksDeploymentConfig()))
    with pytest.raises(ValidationError, match='key must be one of "Primary" or "Secondary"'):
        svc.regen_key("tertiary")
    with pytest.raises(ValidationError, match="uses key auth: use get_keys") as info:
        svc.get_token()  # refused without a call: the service uses key auth
    assert "token_auth_enabled=True" in info.value.hint
    local = Webservice.deserialize(NO_WS, _payload(LocalDeploymentConfig()))
    for call in (local.get_keys, local.get_token, lambda: local.regen_key("Primary")):
        with pytest.raises(NotImplementedError):
            call()
    with pytest.raises(ValidationError, match="reload\\(\\) needs the InferenceConfig"):
        cast(LocalWebservice, local).reload()


def test_run_without_scoring_uri_raises_v1_text() -> None:
    payload = _payload(AksDeploymentConfig())
    payload.update(scoringUri=None, state="Failed")
    svc = Webservice.deserialize(NO_WS, payload)
    with pytest.raises(ModelhostError, match=r"scoring_uri unavailable(.|\n)*\nCurrent State: Failed"):
        svc.run("{}")


@pytest.mark.parametrize(
    "call",
    [
        lambda: Model.package(None, []),
        lambda: Model.profile(None, "p", []),
        lambda: Webservice.deploy_from_image(None, "n", None),
        lambda: Webservice.deploy_from_model(None, "n", []),
        lambda: AksEndpoint(None, "x"),
        lambda: AksEndpoint.deploy_configuration(),
        lambda: Webservice.list(NO_WS, image_name="img"),
    ],
    ids=[
        "package",
        "profile",
        "deploy_from_image",
        "deploy_from_model",
        "AksEndpoint",
        "AksEndpoint.deploy_configuration",
        "list-image",
    ],
)
def test_unsupported_v1_calls_name_themselves(call: Any) -> None:
    with pytest.raises(ValidationError, match="is not supported by modelhost"):
        call()


# -- v1 texts -------------------------------------------------------------------------------------


def test_deployment_failure_text_is_v1s() -> None:
    text = _messages.deployment_failed(
        "Failed",
        "op-9",
        "More information can be found using '.get_logs()'",
        {"code": "x", "message": "boom"},
    )
    assert text.startswith(
        "Service deployment polling reached non-successful terminal state, current service state: Failed\n"
        "Operation ID: op-9\nMore information can be found using '.get_logs()'\nError:\n"
    )
    assert json.loads(text.split("Error:\n", 1)[1]) == {"code": "x", "message": "boom"}
    short = _messages.deployment_failed("Unhealthy", "op", "hint", {"statusCode": 504, "message": "late"})
    assert short.endswith("Error:\nStatusCode: 504\nMessage: late")
    assert (
        _messages.deployment_finished("AKS")
        == 'AKS service creation operation finished, operation "Succeeded"'
    )


def test_bad_response_and_timeout_texts() -> None:
    text = _messages.bad_response(502, {"x-ms-request-id": "r"}, b"boom")
    assert text.splitlines()[1:] == [
        "Response Code: 502",
        "Headers: {'x-ms-request-id': 'r'}",
        "Content: b'boom'",
    ]
    assert _messages.deployment_timed_out(5, "Running") == (
        "Deployment polling exceeded timeout override of 5s. Current status: Running"
    )


def test_operation_of_reads_both_answer_shapes() -> None:
    op = {"id": "o", "state": "Running"}
    assert operation_of({"operation": op, "service": {}}) == op
    assert operation_of(op) == op
    assert operation_of({"primaryKey": "k"}) is None and operation_of(None) is None
