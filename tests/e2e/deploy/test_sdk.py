"""The v1-shaped SDK against a real control plane: Model.deploy -> wait -> run -> keys -> update -> delete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelhost.sdk import AksWebservice, InferenceConfig, Model, Workspace
from tests.e2e.deploy.conftest import Plane, echo_script


def test_model_deploy_run_update_delete_through_the_sdk(
    shared: Plane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ws = Workspace(url=shared.url, token=shared.token)
    (tmp_path / "m.bin").write_bytes(b"weights")
    model = Model.register(ws, "m.bin", "sdk-model")
    src = tmp_path / "code"
    src.mkdir()
    (src / "score.py").write_text(echo_script())
    config = AksWebservice.deploy_configuration(
        autoscale_enabled=False, num_replicas=1, initial_delay_seconds=5, period_seconds=1
    )
    service = Model.deploy(
        ws, "sdk-svc", [model], InferenceConfig(entry_script="score.py", source_directory=str(src)), config
    )
    service.wait_for_deployment()
    assert service.state == "Healthy"
    assert service.scoring_uri == shared.score_url("sdk-svc")
    assert service.run('{"a": 1}')["echo"] == {"a": 1}
    primary, secondary = service.get_keys()
    assert (primary, secondary) == shared.keys("sdk-svc")
    service.update(auth_enabled=False)
    service.wait_for_deployment()
    assert service.auth_enabled is False and service.state == "Healthy"
    assert "POST /score 200" in service.get_logs()
    service.delete()
    assert shared.client.get("/api/v1/services/sdk-svc").status_code == 404
    assert os.path.exists(tmp_path / "m.bin")
