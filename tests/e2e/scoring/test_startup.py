"""Start-up: v1's banner, readiness before and after init(), exit status 3, the three commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.scoring.conftest import REPO, SCRIPTS
from tests.support.net import wait_until


def test_banner_and_ready_lines(start_server: Any) -> None:
    server = start_server("undecorated.py", args=["--model_dir", "/tmp/models"])
    out = server.output()
    for line in (
        "Azure ML Inferencing HTTP server v1.5.1",
        "Server Settings",
        "---------------",
        f"Entry Script Name: {SCRIPTS / 'undecorated.py'}",
        "Model Directory: /tmp/models",
        "Worker Count: 1",
        f"Server Port: {server.port}",
        f"Health Port: {server.port}",
        "Application Insights Enabled: false",
        "Inferencing HTTP server version: azmlinfsrv/1.5.1",
        "Server Routes",
        f"Liveness Probe: GET   127.0.0.1:{server.port}/",
        f"Score:          POST  127.0.0.1:{server.port}/score",
    ):
        assert line in out.splitlines(), line
    assert "Worker with pid" in out and "ready for serving traffic" in out


def test_not_ready_until_init_finishes(start_server: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    server = start_server("slow_init.py", env={"SLOW_INIT_GATE": str(gate)}, ready=False)

    def status(path: str) -> int:
        try:
            return server.request("GET", path, timeout=2).status
        except OSError:
            return 0

    wait_until(lambda: status("/") == 503, 30, what="503 while init() runs")
    assert status("/v2/health/ready") == 503
    assert status("/score") == 503
    gate.write_text("go")
    wait_until(lambda: status("/") == 200, 30, what="200 after init()")
    assert status("/v2/health/ready") == 200


def test_init_failure_exits_with_status_3(start_server: Any) -> None:
    server = start_server("init_fails.py", ready=False)
    assert server.wait_exit(60) == 3
    out = server.output()
    assert "Azure ML Inferencing HTTP server v1.5.1" in out
    assert "User's init function failed" in out
    assert "RuntimeError: the model file is missing" in out


def test_missing_entry_script_exits_with_status_3(start_server: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path / "absent.py", ready=False)
    assert server.wait_exit(60) == 3


def test_bad_scoring_timeout_exits_with_status_3(start_server: Any) -> None:
    server = start_server("undecorated.py", env={"SCORING_TIMEOUT_MS": "soon"}, ready=False)
    assert server.wait_exit(60) == 3
    assert "SCORING_TIMEOUT_MS" in server.output()


def test_no_entry_script_is_exit_1() -> None:
    done = subprocess.run([str(REPO / ".venv" / "bin" / "modelhost-score")], capture_output=True, timeout=60)
    assert done.returncode == 1


def test_config_json_sets_the_timeout(start_server: Any, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"SCORING_TIMEOUT_MS": 1234, "UNKNOWN_KEY": 1}')
    server = start_server("undecorated.py", env={"AML_APP_ROOT": str(tmp_path)})
    wait_until(
        lambda: "Scoring timeout is set to 1234" in server.output(), 10, what="timeout from config.json"
    )
    assert "Extra keys = ['UNKNOWN_KEY']" in server.output()


def test_python_dash_m_and_azmlinfsrv_commands(start_server: Any) -> None:
    module = start_server("undecorated.py", command=[sys.executable, "-m", "modelhost.scoring"])
    assert module.request("GET", "/").status == 200
    compat = start_server("undecorated.py", command=[str(REPO / ".venv" / "bin" / "azmlinfsrv")])
    assert compat.post_json("/score", {"a": 1}).status == 200
