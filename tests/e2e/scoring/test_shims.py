"""The azureml.* import shims inside a real server: Model.get_model_path, sklearn.externals.joblib,
AutoML imports and ModelDataCollector(identifier=...) writing CSV rows off the request path."""

from __future__ import annotations

import csv
import datetime
from pathlib import Path
from typing import Any

import joblib
from sklearn.linear_model import LinearRegression

from tests.support.net import wait_until


def _register_model(app_root: Path) -> Path:
    version_dir = app_root / "azureml-models" / "sklearn_model" / "1"
    version_dir.mkdir(parents=True)
    model = LinearRegression().fit([[0, 0], [1, 1], [2, 2]], [0, 2, 4])
    joblib.dump(model, version_dir / "model.joblib")
    return version_dir


def test_v1_script_with_azureml_imports(start_server: Any, tmp_path: Path) -> None:
    version_dir = _register_model(tmp_path)
    collected = tmp_path / "collected"
    server = start_server(
        "shims.py",
        args=["--model_dir", str(version_dir)],
        env={
            "AML_APP_ROOT": str(tmp_path),
            "MODELHOST_DATA_COLLECTION_DIR": str(collected),
            "SERVICE_NAME": "svc",
        },
    )
    reply = server.post_json("/score", {"data": [[3, 3]]}, {"x-request-id": "req-1"})
    body = reply.json()
    assert body["prediction"] == [6.0] or abs(body["prediction"][0] - 6.0) < 1e-6
    assert body["collected"] is True
    assert body["joblib"] == "joblib"

    today = datetime.datetime.now(datetime.UTC)
    folder = collected / "svc" / "sklearn_model" / "1" / "inputs" / f"{today:%Y/%m/%d}"
    # one file per replica process: data-<replica>-<pid>.csv (docs/data-collection.md)
    wait_until(lambda: any(folder.glob("data-*.csv")), 10, what="collected rows on disk")
    csv_path = next(folder.glob("data-*.csv"))
    wait_until(lambda: len(csv_path.read_text().splitlines()) >= 2, 10, what="a data row")
    rows = list(csv.reader(csv_path.read_text().splitlines()))
    assert rows[0] == [
        "a",
        "b",
        "$aml_dc_correlation_id",
        "$aml_dc_scoring_timestamp",
        "$aml_dc_boundary",
        "$aml_workspace",
        "$aml_service_name",
        "$aml_model_name",
        "$aml_model_version",
        "$aml_request_id",
    ]
    assert rows[1][:2] == ["3", "3"]
    assert rows[1][-4:] == ["svc", "sklearn_model", "1", "req-1"]


def test_data_collection_off_prints_v1_notice(start_server: Any, tmp_path: Path) -> None:
    version_dir = _register_model(tmp_path)
    server = start_server(
        "shims.py", args=["--model_dir", str(version_dir)], env={"AML_APP_ROOT": str(tmp_path)}
    )
    assert server.post_json("/score", {"data": [[1, 1]]}).json()["collected"] is False
    assert "Data collection is not enabled." in server.output()
