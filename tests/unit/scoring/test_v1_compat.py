"""The import shims: used only when the real package is absent (checked in fresh interpreters)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from modelhost.scoring.v1_compat import shim_names


def _run(code: str, extra_path: Path | None = None) -> dict[str, object]:
    prelude = "import sys, json\n"
    if extra_path is not None:
        prelude += f"sys.path.insert(0, {str(extra_path)!r})\n"
    prelude += "from modelhost.scoring.v1_compat import install_shims\ninstall_shims()\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_shims_serve_the_v1_imports() -> None:
    out = _run("""
        from azureml.core.model import Model
        from azureml.core import Model as Model2, Workspace, Run
        from azureml.contrib.services.aml_request import AMLRequest, rawhttp
        from azureml_inference_server_http.api.aml_response import AMLResponse
        import azureml.train.automl, azureml.automl.core
        from azureml.automl.core.shared import logging_utilities, log_server
        from azureml.telemetry import INSTRUMENTATION_KEY
        from azureml.monitoring import ModelDataCollector
        from sklearn.externals import joblib
        import sklearn.externals.joblib.numpy_pickle as numpy_pickle
        import modelhost.scoring.aml_request as ours
        log_server.update_custom_dimensions({"a": 1})
        alias = sys.modules["azureml.contrib.services.aml_request"] is ours
        print(json.dumps({"same_model": Model is Model2, "alias": alias,
                          "joblib": joblib.__name__, "pickle": numpy_pickle.__name__,
                          "key": INSTRUMENTATION_KEY, "run": Run.get_context().id}))
    """)
    assert out == {
        "same_model": True,
        "alias": True,
        "joblib": "joblib",
        "pickle": "joblib.numpy_pickle",
        "key": "",
        "run": "OfflineRun",
    }


def test_a_real_package_is_never_shadowed(tmp_path: Path) -> None:
    real = tmp_path / "azureml" / "monitoring"
    real.mkdir(parents=True)
    (tmp_path / "azureml" / "__init__.py").write_text("")
    (real / "__init__.py").write_text("REAL = True\nclass ModelDataCollector: pass\n")
    out = _run(
        """
        import azureml.monitoring
        from azureml.core.model import Model
        print(json.dumps({"real": getattr(azureml.monitoring, "REAL", False),
                          "shim_core": Model.__module__}))
    """,
        tmp_path,
    )
    assert out == {"real": True, "shim_core": "azureml.core.model"}


def test_identifier_is_an_alias_of_designation(tmp_path: Path) -> None:
    out = _run(f"""
        import os, pathlib
        os.environ["MODELHOST_DATA_COLLECTION_DIR"] = {str(tmp_path)!r}
        from azureml.monitoring import ModelDataCollector
        from modelhost.scoring import data_collector
        dc = ModelDataCollector("m", identifier="predictions")
        result = dc.collect([1, 2])
        data_collector.flush()
        print(json.dumps({{"designation": dc._designation, "result": result,
                          "files": [str(p) for p in pathlib.Path({str(tmp_path)!r}).rglob("*.csv")]}}))
    """)
    assert out["designation"] == "predictions"
    assert out["result"] is None
    files = out["files"]
    assert isinstance(files, list) and len(files) == 1
    assert "/default/m/default/predictions/" in files[0] and "/data-" in files[0]


def test_shim_names_cover_the_common_imports() -> None:
    names = shim_names()
    for name in (
        "azureml.core.model",
        "azureml.monitoring",
        "azureml.train.automl",
        "azureml.automl.core.shared.log_server",
        "azureml.telemetry",
        "azureml.contrib.services.aml_response",
    ):
        assert name in names
