"""The Open Inference Protocol v2 routes, checked with the real tritonclient.http client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    version = tmp_path / "azureml-models" / "iris" / "3"
    version.mkdir(parents=True)
    (version / "model.pkl").write_bytes(b"x")
    return version


def test_decorated_run_over_v2(start_server: Any, model_dir: Path) -> None:
    server = start_server("numpy_decorated.py", args=["--model_dir", str(model_dir)])
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    assert client.is_model_ready("iris", "3")
    meta = client.get_model_metadata("iris")
    assert meta["name"] == "iris" and meta["versions"] == ["3"]
    assert meta["inputs"][0] == {"name": "data", "datatype": "FP64", "shape": [-1, 3]}

    data = triton.InferInput("data", [2, 3], "FP64")
    data.set_data_from_numpy(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    scale = triton.InferInput("scale", [1], "FP64")
    scale.set_data_from_numpy(np.array([2.0]), binary_data=False)
    result = client.infer("iris", [data, scale])
    np.testing.assert_allclose(result.as_numpy("output-0"), [12.0, 30.0])

    as_json = client.infer(
        "iris", [data], outputs=[triton.InferRequestedOutput("output-0", binary_data=False)]
    )
    assert as_json.get_response()["outputs"][0]["data"] == [6.0, 15.0]
    with pytest.raises(InferenceServerException):
        client.infer("other-model", [data])


def test_undecorated_run_gets_json_of_the_tensors(start_server: Any, model_dir: Path) -> None:
    server = start_server("undecorated.py", args=["--model_dir", str(model_dir)])
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    tensor = triton.InferInput("x", [2], "INT64")
    tensor.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    result = client.infer("iris", [tensor])
    assert result.as_numpy("type")[0] in (b"str", "str")
    assert json.loads(result.as_numpy("raw")[0]) == {"x": [1, 2]}


def test_v2_health_and_metadata_routes(start_server: Any) -> None:
    server = start_server("undecorated.py", env={"SERVICE_NAME": "svc"})
    assert server.request("GET", "/v2/health/live").status == 200
    assert server.request("GET", "/v2/health/ready").json() == {"ready": True}
    assert server.request("GET", "/v2/models/svc/ready").status == 200
    assert server.request("GET", "/v2/models/nope/ready").status == 404
    assert server.request("GET", "/v2").json()["extensions"] == ["binary_tensor_data"]
    reply = server.request("POST", "/v2/models/svc/infer", "not json", {"Content-Type": "application/json"})
    assert reply.status == 400 and "error" in reply.json()
