"""Standard Open Inference Protocol v2 clients work end to end: the real tritonclient.http client
talks to a deployed service through the router, under /api/v1/service/<name>/v2, with the key."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.e2e.deploy.conftest import Plane, aks

SCRIPT = (Path(__file__).parents[1] / "scoring" / "scripts" / "numpy_decorated.py").read_text()


@pytest.mark.slow
def test_tritonclient_through_the_router_with_key_auth(plane: Plane) -> None:
    model = plane.register_model("iris")
    op = plane.deploy("oip-svc", SCRIPT, models=[model], config=aks(num_replicas=1, autoscale_enabled=False))
    assert op["state"] == "Succeeded", op
    primary, _ = plane.keys("oip-svc")
    base = f"{plane.router_url.removeprefix('http://')}/api/v1/service/oip-svc"

    client = triton.InferenceServerClient(base)
    # the v2 routes sit behind the same key auth as /score
    assert httpx.get(f"http://{base}/v2/health/ready").status_code == 401
    assert client.is_server_ready() is False
    with pytest.raises(InferenceServerException):
        client.get_model_metadata("iris")
    headers = {"Authorization": f"Bearer {primary}"}
    assert client.is_server_ready(headers=headers) and client.is_model_ready("iris", "1", headers=headers)
    meta = client.get_model_metadata("iris", headers=headers)
    assert meta["name"] == "iris" and meta["versions"] == ["1"]

    data = triton.InferInput("data", [2, 3], "FP64")
    data.set_data_from_numpy(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    result = client.infer("iris", [data], headers=headers)
    np.testing.assert_allclose(result.as_numpy("output-0"), [6.0, 15.0])
