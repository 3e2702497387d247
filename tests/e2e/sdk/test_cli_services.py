"""``modelhost service ...`` through the real console script against the real control plane."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.sdk.conftest import Home, write_app

ROW = json.dumps({"data": [[1, 1, 1, 1]]})


def _ok(result: object) -> str:
    rc, out, err = (getattr(result, k) for k in ("returncode", "stdout", "stderr"))
    assert rc == 0, f"exit {rc}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in err
    return str(out)


def test_cli_deploy_list_show_run_update_delete(shared_home: Home, model_file: Path, tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    _ok(shared_home.cli("model", "register", str(model_file), "--name", "cli-weights"))
    config = tmp_path / "deploymentconfig.json"
    config.write_text(
        json.dumps({"computeType": "aks", "numReplicas": 1, "autoScaler": {"autoscaleEnabled": False}})
    )

    deployed = _ok(
        shared_home.cli(
            "service",
            "deploy",
            "cli-svc",
            "--model",
            "cli-weights",
            "--entry-script",
            "score.py",
            "--source-dir",
            str(app),
            "--config",
            str(config),
        )
    )
    lines = deployed.splitlines()
    assert lines[0].startswith("deploying service cli-svc (AKS), operation ")
    assert len(lines) > 3  # the operation's log, live
    assert lines[-1].startswith("service cli-svc: Healthy at http://")

    listed = _ok(shared_home.cli("service", "list"))
    assert "cli-svc" in listed and "Healthy" in listed and "cli-weights:1" in listed
    shown = _ok(shared_home.cli("service", "show", "cli-svc"))
    assert "1 ready / 1 desired" in shown and "/api/v1/service/cli-svc/score" in shown

    answer = _ok(shared_home.cli("service", "run", "cli-svc", "--data", ROW))
    assert json.loads(answer) == {"version": 1, "sums": [10]}
    body = tmp_path / "body.json"
    body.write_text(ROW)
    assert json.loads(_ok(shared_home.cli("service", "run", "cli-svc", "--data-file", str(body))))[
        "sums"
    ] == [10]

    keys = _ok(shared_home.cli("service", "keys", "cli-svc"))
    assert keys.startswith("primary: ") and "\nsecondary: " in keys
    _ok(shared_home.cli("service", "regen-key", "cli-svc", "--key", "secondary", "--value", "cli-secret"))
    assert "secondary: cli-secret" in _ok(shared_home.cli("service", "keys", "cli-svc"))

    updated = _ok(shared_home.cli("service", "update", "cli-svc", "--num-replicas", "2"))
    assert updated.splitlines()[-1].startswith("service cli-svc: Healthy")
    assert "2 ready / 2 desired" in _ok(shared_home.cli("service", "show", "cli-svc"))
    assert "init done" in _ok(shared_home.cli("service", "logs", "cli-svc", "--tail", "50"))
    status = _ok(shared_home.cli("status"))
    assert "router" in status and "cli-svc" in status

    _ok(shared_home.cli("service", "delete", "cli-svc"))
    missing = shared_home.cli("service", "show", "cli-svc")
    assert missing.returncode == 1
    errors = [line for line in missing.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: WebserviceNotFound")


def test_cli_errors_are_one_line(shared_home: Home, tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    result = shared_home.cli(
        "service", "deploy", "Bad_Name", "--entry-script", "score.py", "--source-dir", str(app)
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "service name" in lines[0].lower(), result.stderr
    result = shared_home.cli("service", "run", "no-such-svc", "--data", "{}")
    assert result.returncode == 1 and "WebserviceNotFound" in result.stderr
