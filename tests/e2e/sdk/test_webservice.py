"""The v1 service lifecycle through the SDK against the real control plane, router and replicas."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from modelhost.errors import ConflictError, NotFoundError
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
from tests.e2e.sdk.conftest import write_app
from tests.support.net import free_port

ROW = json.dumps({"data": [[1, 1, 1, 1], [1, 0, 0, 0]]})
# v1's contract: once wait_for_deployment() returned, run() meets the new code/models. A stale answer
# means the operation succeeded before the router loaded the table without the old generation.
STALE = "stale answer after wait_for_deployment(): the router still routes to the old generation"


def _fixed(replicas: int = 1) -> object:
    return AksWebservice.deploy_configuration(num_replicas=replicas, autoscale_enabled=False)


def test_aks_lifecycle_deploy_run_keys_update_logs_delete(
    ws: Workspace,
    model: Model,
    app_dir: Path,
    tmp_path: Path,
    cleanup: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cleanup.append("iris-aks")
    config = InferenceConfig(entry_script="score.py", source_directory=str(app_dir))
    service = Model.deploy(ws, "iris-aks", [model], config, _fixed())
    assert isinstance(service, AksWebservice) and service.operation_id  # returned before it finished

    service.wait_for_deployment(show_output=True)
    printed = capsys.readouterr().out
    assert 'AKS service creation operation finished, operation "Succeeded"' in printed
    assert len(printed.splitlines()) > 3, printed  # the operation's steps, printed as they came
    assert service.state == "Healthy" and service.num_replicas == 1
    assert service.scoring_uri and service.scoring_uri.endswith("/api/v1/service/iris-aks/score")
    assert service.auth_enabled and service.model_ids == [model.id]

    assert service.run(ROW) == {"version": 1, "sums": [10, 1]}
    assert service.run(ROW.encode()) == {"version": 1, "sums": [10, 1]}
    assert (
        httpx.post(service.scoring_uri, content=ROW, headers={"Content-Type": "application/json"}).status_code
        == 401
    )

    primary, secondary = service.get_keys()
    assert primary and secondary and primary != secondary
    other = Webservice(ws, "iris-aks")  # a second handle caches the old key
    assert type(other) is AksWebservice and other.run(ROW)["sums"] == [10, 1]
    service.regen_key("PRIMARY")
    assert service.get_keys()[0] != primary and service.get_keys()[1] == secondary
    assert other.run(ROW)["sums"] == [10, 1]  # 401 -> keys fetched again -> retried once
    service.regen_key("secondary", set_key="my-own-secondary-key")
    assert service.get_keys()[1] == "my-own-secondary-key"

    service.update(num_replicas=2)
    service.wait_for_deployment()
    assert service.num_replicas == 2 and service.state == "Healthy"

    new_code = write_app(tmp_path / "app2", version=2)
    service.update(inference_config=InferenceConfig(entry_script="score.py", source_directory=str(new_code)))
    service.wait_for_deployment()
    assert service.run(ROW) == {"version": 2, "sums": [10, 1]}, STALE

    heavier = tmp_path / "heavier" / "weights.json"
    heavier.parent.mkdir()
    heavier.write_text(json.dumps({"w": [2, 2, 2, 2]}))
    model2 = Model.register(ws, heavier, "weights", show_output=False)
    service.update(models=[model2])
    service.wait_for_deployment()
    assert service.model_ids == [model2.id]
    assert service.run(ROW) == {"version": 2, "sums": [8, 2]}, STALE

    assert "init done" in service.get_logs()
    assert any(s.name == "iris-aks" for s in Webservice.list(ws))
    assert all(s.name != "iris-aks" for s in Webservice.list(ws, compute_type="ACI"))
    assert any(s.name == "iris-aks" for s in Webservice.list(ws, model_name=model.name))
    with pytest.raises(NotFoundError, match="it is a AKS service, not ACI"):
        AciWebservice(ws, "iris-aks")

    service.delete()
    with pytest.raises(WebserviceException, match="WebserviceNotFound"):
        Webservice(ws, "iris-aks")


def test_overwrite_replaces_a_service_of_the_same_name(
    ws: Workspace, model: Model, app_dir: Path, tmp_path: Path, cleanup: list[str]
) -> None:
    cleanup.append("iris-twice")
    config = InferenceConfig(entry_script="score.py", source_directory=str(app_dir))
    Model.deploy(ws, "iris-twice", [model], config, _fixed()).wait_for_deployment()
    with pytest.raises(ConflictError):
        Model.deploy(ws, "iris-twice", [model], config, _fixed())
    v2 = InferenceConfig(entry_script="score.py", source_directory=str(write_app(tmp_path / "v2", version=2)))
    service = Model.deploy(ws, "iris-twice", [model], v2, _fixed(), overwrite=True)
    service.wait_for_deployment()
    assert service.run(ROW)["version"] == 2, STALE


def test_aci_has_auth_off_by_default(ws: Workspace, model: Model, app_dir: Path, cleanup: list[str]) -> None:
    cleanup.append("iris-aci")
    config = InferenceConfig(entry_script="score.py", source_directory=str(app_dir))
    service = Model.deploy(
        ws, "iris-aci", [model], config, AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1)
    )
    assert isinstance(service, AciWebservice)
    service.wait_for_deployment()
    assert service.auth_enabled is False
    assert service.scoring_uri is not None
    answer = httpx.post(service.scoring_uri, content=ROW, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["sums"] == [10, 1]
    service.delete()


def test_local_webservice_answers_on_localhost_and_reloads_edited_code(
    ws: Workspace, model: Model, app_dir: Path, cleanup: list[str]
) -> None:
    cleanup.append("iris-local")
    port = free_port()
    config = InferenceConfig(entry_script="score.py", source_directory=str(app_dir))
    service = Model.deploy(ws, "iris-local", [model], config, LocalWebservice.deploy_configuration(port=port))
    assert isinstance(service, LocalWebservice)
    service.wait_for_deployment()
    assert service.scoring_uri == f"http://localhost:{port}/score"
    assert service.run(ROW) == {"version": 1, "sums": [10, 1]}
    with pytest.raises(NotImplementedError):
        service.get_keys()

    (app_dir / "helper.py").write_text("VERSION = 7\n")
    service.reload()
    assert service.run(ROW)["version"] == 7
    service.delete()


def test_a_failing_init_reports_v1s_terminal_state_text(
    ws: Workspace, model: Model, tmp_path: Path, cleanup: list[str]
) -> None:
    cleanup.append("iris-broken")
    broken = write_app(
        tmp_path / "broken",
        score="def init():\n    raise RuntimeError('no weights here')\n\n\ndef run(d):\n    return d\n",
    )
    config = InferenceConfig(entry_script="score.py", source_directory=str(broken))
    service = Model.deploy(ws, "iris-broken", [model], config, _fixed())
    with pytest.raises(WebserviceException) as info:
        service.wait_for_deployment(timeout_sec=240)
    message = info.value.message
    assert message.startswith(
        "Service deployment polling reached non-successful terminal state, current service state: "
    )
    assert f"Operation ID: {service.operation_id}" in message and "Error:\n" in message
    assert service.state in ("Failed", "Unhealthy")
    assert "no weights here" in service.get_logs()
