"""Start-up: AZUREML_MODEL_DIR reaches init(); scripts that cannot serve keep the server from coming up."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.compat.conftest import ServerPool
from tests.compat.harness import SCRIPTS, Server, ServerProcess, ServerSpec, expect, score_ok

pytestmark = pytest.mark.compat

MODEL_DIR = SCRIPTS / "model_dir" / "azureml-models" / "mymodel" / "3"
EXIT_DEADLINE_S = 60


class TestModelDir:
    SERVER = ServerSpec("model_dir", env=(("AZUREML_MODEL_DIR", str(MODEL_DIR)),))

    def test_init_reads_model_dir(self, server: Server) -> None:
        reply = server.post("/score", "{}")
        expect(reply, status=200, headers=score_ok(), body=json.dumps({
            "model": "model weights v3", "model_dir_tail": ["azureml-models", "mymodel", "3"],
            "cwd_has_score_py": True}))


def broken_scripts(tmp: Path) -> dict[str, Path]:
    # A script with a syntax error is written at run time: the linter would reject it in the tree.
    syntax = tmp / "syntax_error"
    syntax.mkdir()
    (syntax / "score.py").write_text("def init():\n    pass\n\n\ndef run(data):\n    return data +\n")
    scripts = {name: SCRIPTS / name for name in ("init_fails", "raw_and_schema", "no_run")}
    return {"syntax_error": syntax, **scripts}


@pytest.mark.parametrize("case", ["init_fails", "raw_and_schema", "no_run", "syntax_error"])
def test_broken_script_keeps_server_down(server_kind: str, case: str, tmp_path: Path) -> None:
    folder = broken_scripts(tmp_path)[case]
    spec = ServerSpec(str(folder))
    process = ServerProcess(server_kind, spec, ServerPool._executable(server_kind), tmp_path / "server.log")
    try:
        with pytest.raises(RuntimeError, match="exited with"):
            process.wait_ready(EXIT_DEADLINE_S)
        code = process.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{server_kind} still running {EXIT_DEADLINE_S} s after a broken {case} script")
    finally:
        process.stop()
    # gunicorn's master exits 3 when a worker fails to boot ("Worker failed to boot").
    assert code == 3, process.log_tail()
