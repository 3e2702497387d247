"""inference-schema decorated run(): JSON object bodies, parameters by name, conversion in the decorator."""

from __future__ import annotations

import json

import pytest

from tests.compat.harness import Server, ServerSpec, expect, message, run_failed, score_ok

pytestmark = pytest.mark.compat

SERVER = ServerSpec("schema")

GOOD = {"data": [[1.0, 2.0, 3.0]], "frame": [{"a": 1, "b": "x"}], "flag": False}
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."


def result(total: float, shape: list[int], rows: int, flag: bool, scale: float) -> dict[str, object]:
    return {"sum": total, "shape": shape, "data_type": "ndarray", "frame_type": "DataFrame",
            "columns": ["a", "b"], "rows": rows, "flag": flag, "scale": scale}


def test_types_converted_and_default_honoured(server: Server) -> None:
    reply = server.post_json("/score", GOOD)
    expect(reply, status=200, headers=score_ok(), body=json.dumps(result(12.0, [1, 3], 1, False, 2.0)))


def test_explicit_value_for_defaulted_param(server: Server) -> None:
    reply = server.post_json("/score", {**GOOD, "scale": 0.5})
    expect(reply, status=200, headers=score_ok(), body=json.dumps(result(3.0, [1, 3], 1, False, 0.5)))


def test_extra_keys_ignored_and_more_rows(server: Server) -> None:
    body = {**GOOD, "data": [[1, 1, 1], [2, 2, 2]], "frame": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
            "unused": "ignored"}
    reply = server.post_json("/score", body)
    expect(reply, status=200, headers=score_ok(), body=json.dumps(result(18.0, [2, 3], 2, False, 2.0)))


def test_charset_in_content_type_is_json(server: Server) -> None:
    reply = server.post("/score", json.dumps(GOOD), content_type="application/json; charset=utf-8")
    expect(reply, status=200, headers=score_ok(), body=json.dumps(result(12.0, [1, 3], 1, False, 2.0)))


def test_missing_param_is_400(server: Server) -> None:
    reply = server.post_json("/score", {"data": [[1.0, 2.0, 3.0]], "flag": True})
    expect(reply, status=400, headers=score_ok(exec_ms=False),
           body=message("A value is not provided for the 'frame' parameter."))


def test_text_plain_is_415(server: Server) -> None:
    reply = server.post("/score", json.dumps(GOOD), content_type="text/plain")
    expect(reply, status=415, headers=score_ok(exec_ms=False),
           body=message("Expects Content-Type to be application/json"))


def test_no_content_type_is_415(server: Server) -> None:
    reply = server.post("/score", json.dumps(GOOD), content_type=None)
    expect(reply, status=415, headers=score_ok(exec_ms=False),
           body=message("Expects Content-Type to be application/json"))


def test_invalid_json_is_400(server: Server) -> None:
    reply = server.post("/score", "{not json")
    expect(reply, status=400, headers=score_ok(exec_ms=False), body=message(
        "POST body could not be decoded as JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"))


def test_empty_body_is_400(server: Server) -> None:
    reply = server.post("/score", b"")
    expect(reply, status=400, headers=score_ok(exec_ms=False),
           body=message("POST body is empty. Expecting a JSON dictionary."))


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "3", "null"])
def test_non_dict_body_is_400(server: Server, body: str) -> None:
    reply = server.post("/score", body)
    expect(reply, status=400, headers=score_ok(exec_ms=False),
           body=message("POST body should be a JSON dictionary."))


def test_wrong_shape_is_500(server: Server) -> None:
    reply = server.post_json("/score", {**GOOD, "data": [[1.0, 2.0]]})
    expect(reply, status=500, headers=run_failed(), body=message(RUN_FAILED))


def test_get_with_query_params(server: Server) -> None:
    reply = server.get('/score?data=[[1,2,3]]&frame=[{"a":5,"b":"z"}]&flag=true&scale=3')
    expect(reply, status=200, headers=score_ok(), body=json.dumps(result(18.0, [1, 3], 1, True, 3)))


def test_get_missing_param_is_400(server: Server) -> None:
    reply = server.get("/score?data=[[1,2,3]]")
    expect(reply, status=400, headers=score_ok(exec_ms=False),
           body=message("A value is not provided for the 'frame' parameter."))


class TestWithRequestHeaders:
    SERVER = ServerSpec("schema_headers")

    def test_request_headers_passed_by_name(self, server: Server) -> None:
        reply = server.post_json("/score", {"items": [1, 2]}, headers={"X-Custom": "c"})
        expect(reply, status=200, headers=score_ok(), body='{"total": 3, "custom": "c", "has_host": true}')

    def test_request_headers_key_in_body_is_ignored(self, server: Server) -> None:
        reply = server.post_json("/score", {"items": [4], "request_headers": {"X-Custom": "from body"}})
        expect(reply, status=200, headers=score_ok(), body='{"total": 4, "custom": null, "has_host": true}')
