"""v1's contract for an undecorated run(): bodies, GET queries, errors, ids, routes and log lines."""

from __future__ import annotations

import re
import uuid

from tests.e2e.scoring.conftest import ScoringServer
from tests.support.net import wait_until

SCRIPT = "undecorated.py"
JSON = {"Content-Type": "application/json"}


def test_post_body_is_passed_as_str_and_result_json_encoded(module_server: ScoringServer) -> None:
    reply = module_server.request("POST", "/score", '{"a": 1}', JSON)
    assert reply.status == 200
    assert reply.json() == {"type": "str", "raw": '{"a": 1}'}
    assert reply.header("Content-Type") == "application/json"
    assert reply.header("x-ms-run-function-failed") == "False"
    assert re.fullmatch(r"\d+\.\d{3}", reply.header("x-ms-run-fn-exec-ms") or "")
    assert reply.header("x-ms-server-version") == "azmlinfsrv/1.5.1"
    request_id = reply.header("x-request-id") or ""
    assert uuid.UUID(request_id).version == 4
    assert reply.header("x-ms-request-id") == request_id
    assert reply.header("x-ms-client-request-id") is None


def test_any_content_type_reaches_run_but_form_bodies_are_empty(module_server: ScoringServer) -> None:
    text = module_server.request("POST", "/score", "hello", {"Content-Type": "text/plain"})
    assert text.json() == {"type": "str", "raw": "hello"}
    form = module_server.request(
        "POST", "/score", "a=1", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.json() == {"type": "str", "raw": ""}


def test_get_query_string_becomes_json_text(module_server: ScoringServer) -> None:
    reply = module_server.request("GET", "/score?a=1&b=[1,2]&c=x&c=y&d=null")
    assert reply.status == 200
    assert reply.json()["raw"] == '{"a": 1, "b": [1, 2], "c": ["x", "y"], "d": null}'


def test_non_utf8_body_is_400(module_server: ScoringServer) -> None:
    reply = module_server.request("POST", "/score", b"\xff\xfe", JSON)
    assert reply.status == 400
    assert reply.json()["message"].startswith("Input cannot be decoded as UTF-8: ")


def test_run_exception_is_500_with_run_function_failed(module_server: ScoringServer) -> None:
    reply = module_server.post_json("/score", {"mode": "fail"})
    assert reply.status == 500
    assert reply.json() == {
        "message": "An unexpected error occurred in scoring script. Check the logs for more info."
    }
    assert reply.header("x-ms-run-function-failed") == "True"
    assert reply.header("x-ms-run-fn-exec-ms") is None
    wait_until(lambda: "ValueError: asked to fail" in module_server.output(), 10, what="traceback logged")


def test_unserializable_result_is_500_internal_error(module_server: ScoringServer) -> None:
    reply = module_server.post_json("/score", {"mode": "unserializable"})
    assert reply.status == 500
    assert reply.json() == {"message": "An unexpected internal error occurred. Check the logs for more info."}
    assert reply.header("x-ms-run-function-failed") == "False"


def test_none_result_is_an_empty_object(module_server: ScoringServer) -> None:
    reply = module_server.post_json("/score", {"mode": "none"})
    assert (reply.status, reply.body) == (200, b"{}")


def test_options_put_and_head(module_server: ScoringServer) -> None:
    options = module_server.request("OPTIONS", "/score")
    assert (options.status, options.body) == (200, b"")
    assert options.header("Content-Type") == "text/html; charset=utf-8"
    put = module_server.request("PUT", "/score", "{}")
    assert put.status == 405
    assert put.json() == {"message": "The method is not allowed for the requested URL."}
    assert put.header("x-request-id") is None
    head = module_server.request("HEAD", "/score")
    assert head.status == 405
    assert head.header("x-request-id") is not None


def test_unknown_path_is_v1_404_without_ids(module_server: ScoringServer) -> None:
    reply = module_server.request("GET", "/nothing")
    assert reply.status == 404
    assert reply.json()["message"].startswith("The requested URL was not found on the server.")
    assert reply.header("x-request-id") is None
    assert module_server.request("GET", "/score/").status == 404


def test_request_id_rules(module_server: ScoringServer) -> None:
    reply = module_server.post_json(
        "/score", {}, {"x-request-id": "R1", "x-ms-client-request-id": "C1", "TraceId": "T1"}
    )
    assert reply.header("x-request-id") == "R1"
    assert reply.header("x-ms-request-id") == "C1"
    assert reply.header("x-ms-client-request-id") == "C1"
    assert reply.header("TraceId") == "T1"
    legacy = module_server.post_json("/score", {}, {"x-ms-request-id": "L1"})
    assert legacy.header("x-ms-request-id") == "L1"
    assert legacy.header("x-ms-client-request-id") == "L1"


def test_ids_over_100_characters_are_431(module_server: ScoringServer) -> None:
    reply = module_server.post_json("/score", {}, {"x-request-id": "a" * 101})
    assert reply.status == 431
    assert reply.json() == {"message": "x-request-id must not exceed 100 characters"}
    assert reply.header("x-request-id") is None
    client = module_server.post_json("/score", {}, {"x-ms-client-request-id": "c" * 101})
    assert client.status == 431
    assert client.json() == {
        "message": "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"
    }
    assert client.header("x-request-id") is not None
    assert module_server.post_json("/score", {}, {"x-request-id": "a" * 100}).status == 200


def test_health_and_swagger(module_server: ScoringServer) -> None:
    health = module_server.request("GET", "/")
    assert (health.status, health.body) == (200, b"Healthy")
    assert health.header("Content-Type") == "text/html; charset=utf-8"
    swagger = module_server.request("GET", "/swagger.json")
    assert swagger.status == 200
    doc = swagger.json()
    assert doc["swagger"] == "2.0"
    assert doc["definitions"]["ServiceInput"] == {"type": "object", "example": {}}
    assert module_server.request("GET", "/swagger.json?version=3").json()["openapi"] == "3.0.3"
    assert module_server.request("GET", "/swagger.json?version=3.1").json()["openapi"] == "3.1.0"
    bad = module_server.request("GET", "/swagger.json?version=7")
    assert bad.status == 404
    assert bad.json() == {"message": "Swagger version [7] is not valid. Supported versions: [2, 3, 3.1]."}


def test_v1_log_lines(module_server: ScoringServer) -> None:
    module_server.request("GET", "/score?probe=logline")
    pattern = (
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} I \[\d+\] azmlinfsrv - "
        r"GET /score\?probe=logline 200 \d+\.\d{3}ms \d+"
    )
    wait_until(lambda: re.search(pattern, module_server.output()) is not None, 10, what="request log line")
    assert "azmlinfsrv.print - undecorated init done" in module_server.output()
