"""The scoring runtime stays slim: no control-plane, store or Kubernetes imports, in-process or alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.scoring.conftest import REPO, SCRIPTS, ScoringServer

FORBIDDEN = ("sqlalchemy", "kubernetes", "httpx", "typer", "rich", "alembic", "prometheus_client")
ALLOWED_MODELHOST = ("modelhost", "modelhost.scoring", "modelhost.errors", "modelhost.types")


def _check_modules(names: list[str]) -> None:
    assert not [n for n in names if n.split(".")[0] in FORBIDDEN]
    stray = [
        n
        for n in names
        if n.startswith("modelhost") and n not in ALLOWED_MODELHOST and not n.startswith("modelhost.scoring.")
    ]
    assert not stray, stray


def test_importing_the_server_loads_nothing_heavy() -> None:
    code = (
        "import json, sys; import modelhost.scoring.__main__, modelhost.scoring.worker, "
        "modelhost.scoring.app, modelhost.scoring.oip_v2_routes, modelhost.scoring.supervisor; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = json.loads(done.stdout)
    _check_modules(names)
    assert "numpy" not in names and "pandas" not in names
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert not [n for n in imported if n.split(".")[0] in FORBIDDEN]


def test_running_worker_has_no_heavy_modules(start_server: Any) -> None:
    server: ScoringServer = start_server("modules.py")
    report = server.request("POST", "/score", "x").json()
    assert report["watched"] == []
    _check_modules(report["modelhost"])


@pytest.mark.slow
def test_fresh_venv_with_only_the_base_dependencies(tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(REPO / ".venv" / "bin" / "uv")
    if not os.path.exists(uv):
        pytest.skip("uv is not available")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [uv, "pip", "install", "--quiet", "starlette", "uvicorn", "uvloop", "httptools", "inference-schema"],
        env={**os.environ, "VIRTUAL_ENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        pytest.skip(f"cannot install the base dependencies here: {install.stderr[-500:]}")
    python = str(venv / "bin" / "python")
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": os.environ.get("PATH", "")}
    server = ScoringServer(
        SCRIPTS / "modules.py",
        tmp_path / "server.log",
        env=env,
        command=[python, "-m", "modelhost.scoring"],
        cwd=tmp_path,
    )
    try:
        server.wait_ready(120)
        report = server.request("POST", "/score", "x").json()
        assert report["watched"] == []
        _check_modules(report["modelhost"])
    finally:
        server.stop()
