"""inference-schema decorated run(): conversion, 415/400/500 as v1, GET parameters, pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.scoring.conftest import ScoringServer

SCRIPT = "numpy_decorated.py"


def test_parameters_are_converted_and_defaults_honoured(module_server: ScoringServer) -> None:
    assert module_server.post_json("/score", {"data": [[1, 2, 3], [4, 5, 6]]}).json() == [6.0, 15.0]
    assert module_server.post_json("/score", {"data": [[1, 2, 3]], "scale": 2, "extra": 1}).json() == [12.0]


def test_get_parameters_from_the_query(module_server: ScoringServer) -> None:
    assert module_server.request("GET", "/score?data=[[1,2,3]]&scale=10").json() == [60.0]


def test_v1_error_statuses(module_server: ScoringServer) -> None:
    def message(reply: Any) -> tuple[int, str]:
        return reply.status, reply.json()["message"]

    plain = module_server.request("POST", "/score", '{"data": [[1,2,3]]}', {"Content-Type": "text/plain"})
    assert message(plain) == (415, "Expects Content-Type to be application/json")
    json_ct = {"Content-Type": "application/json"}
    broken = module_server.request("POST", "/score", '{"data": [[1,2,3]]', json_ct)
    assert broken.status == 400
    assert broken.json()["message"].startswith("POST body could not be decoded as JSON: ")
    assert message(module_server.request("POST", "/score", "", json_ct)) == (
        400,
        "POST body is empty. Expecting a JSON dictionary.",
    )
    assert message(module_server.request("POST", "/score", "[1]", json_ct)) == (
        400,
        "POST body should be a JSON dictionary.",
    )
    assert message(module_server.post_json("/score", {"scale": 1})) == (
        400,
        "A value is not provided for the 'data' parameter.",
    )
    wrong_shape = module_server.post_json("/score", {"data": [[1, 2]]})
    assert wrong_shape.status == 500
    assert wrong_shape.header("x-ms-run-function-failed") == "True"
    vendor_json = module_server.request(
        "POST", "/score", '{"data": [[1,2,3]]}', {"Content-Type": "application/vnd.api+json"}
    )
    assert vendor_json.status == 200


def test_swagger_describes_the_decorated_parameters(module_server: ScoringServer) -> None:
    definitions = module_server.request("GET", "/swagger.json").json()["definitions"]
    assert definitions["ServiceInput"]["properties"]["data"]["format"] == "numpy.ndarray"
    assert definitions["ServiceInput"]["example"] == {"data": [[1.0, 2.0, 3.0]], "scale": 1.0}
    assert definitions["ServiceOutput"]["format"] == "numpy.ndarray"


def test_pandas_decorated_run(start_server: Any, tmp_path: Path) -> None:
    server = start_server("pandas_decorated.py")
    reply = server.post_json("/score", {"data": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]})
    assert reply.status == 200
    assert reply.json() == {"total": [3.0, 7.0], "columns": ["a", "b"]}
    schema = server.request("GET", "/swagger.json").json()["definitions"]["ServiceInput"]
    assert schema["properties"]["data"]["format"] == "pandas.DataFrame:records"
