"""Undecorated run(data): the body (or GET query) arrives as a str; the result is json.dumps-ed."""

from __future__ import annotations

import json

import pytest

from tests.compat.harness import HTML, JSON, Server, ServerSpec, expect, message, run_failed, score_ok

pytestmark = pytest.mark.compat

SERVER = ServerSpec("undecorated")

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL = "An unexpected internal error occurred. Check the logs for more info."


def test_json_body_arrives_as_str(server: Server) -> None:
    body = '{"data": [[1, 2], [3, 4]]}'
    reply = server.post("/score", body)
    expect(reply, status=200, headers=score_ok(),
           body=json.dumps({"received": body, "type": "str"}))


def test_text_plain_still_scores(server: Server) -> None:
    reply = server.post("/score", "just some text", content_type="text/plain")
    expect(reply, status=200, headers=score_ok(),
           body=json.dumps({"received": "just some text", "type": "str"}))


def test_no_content_type_still_scores(server: Server) -> None:
    reply = server.post("/score", "[1, 2]", content_type=None)
    expect(reply, status=200, headers=score_ok(), body=json.dumps({"received": "[1, 2]", "type": "str"}))


def test_empty_body_is_empty_str(server: Server) -> None:
    reply = server.post("/score", b"")
    expect(reply, status=200, headers=score_ok(), body=json.dumps({"received": "", "type": "str"}))


def test_unicode_body(server: Server) -> None:
    reply = server.post("/score", '"h\u00e9llo \u2603"')
    expect(reply, status=200, headers=score_ok(),
           body=json.dumps({"received": '"h\u00e9llo \u2603"', "type": "str"}))


def test_non_utf8_body_is_400(server: Server) -> None:
    reply = server.post("/score", b"\xff\xfeabc", content_type="application/octet-stream")
    expect(reply, status=400, headers=score_ok(exec_ms=False), body=message(
        "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte"))


def test_get_query_becomes_json_text(server: Server) -> None:
    reply = server.get("/score?a=1&b=[1,2]&c=x&c=y&d=null&e=%7B%22k%22%3A%20true%7D&f=")
    parsed = '{"a": 1, "b": [1, 2], "c": ["x", "y"], "d": null, "e": {"k": true}, "f": ""}'
    expect(reply, status=200, headers=score_ok(), body=json.dumps({"received": parsed, "type": "str"}))


def test_get_without_query_is_empty_object_text(server: Server) -> None:
    reply = server.get("/score")
    expect(reply, status=200, headers=score_ok(), body=json.dumps({"received": "{}", "type": "str"}))


def test_returns_dict(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "dict"})
    expect(reply, status=200, headers=score_ok(),
           body=json.dumps({"result": [1, 2.5, "three", None, True], "init_calls": 1}))


def test_returns_json_dumps_double_encoded(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "json_dumps"})
    expect(reply, status=200, headers=score_ok(), body=json.dumps(json.dumps({"result": 42})))
    assert json.loads(reply.json()) == {"result": 42}


def test_returns_str(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "str"})
    expect(reply, status=200, headers=score_ok(), body='"plain string"')


def test_returns_list(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "list"})
    expect(reply, status=200, headers=score_ok(), body="[1, 2, 3]")


def test_returns_none(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "none"})
    # AMLResponse(None, json_str=True) sends an empty JSON object, not null.
    expect(reply, status=200, headers=score_ok(), body="{}")


def test_returns_tuple_as_list(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "tuple"})
    expect(reply, status=200, headers=score_ok(), body='[1, "two"]')


def test_nan_and_infinity_as_python_json(server: Server) -> None:
    # json.dumps' defaults: NaN/Infinity literals, not null (a stricter encoder would differ).
    reply = server.post_json("/score", {"mode": "nan"})
    expect(reply, status=200, headers=score_ok(), body='{"value": NaN, "inf": Infinity}')


def test_chunked_request_body(server: Server) -> None:
    reply = server.raw("POST", "/score", [("Content-Type", "application/json")], [b'{"mo', b'de": "tuple"}'])
    expect(reply, status=200, headers=score_ok(), body='[1, "two"]')


def test_large_body(server: Server) -> None:
    body = "x" * 1_000_000
    reply = server.post("/score", body, content_type="text/plain")
    expect(reply, status=200, headers=score_ok(), body=json.dumps({"received": body, "type": "str"}))


def test_get_ignores_body(server: Server) -> None:
    reply = server.request("GET", "/score?a=1", body="hello", headers={"Content-Type": "text/plain"})
    expect(reply, status=200, headers=score_ok(), body=json.dumps({"received": '{"a": 1}', "type": "str"}))


def test_head_on_score_is_405_from_the_route(server: Server) -> None:
    # Flask adds HEAD to GET routes; the undecorated parser refuses it with the route's own 405.
    reply = server.request("HEAD", "/score")
    expect(reply, status=405, headers=score_ok(exec_ms=False), body=b"")
    assert reply.header("Content-Length") == str(len(message("Method not allowed")))


def test_returns_exception_text_with_200(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "error_text"})
    expect(reply, status=200, headers=score_ok(), body='"Expecting value: line 1 column 1 (char 0)"')


def test_run_raising_is_500(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "raise"})
    expect(reply, status=500, headers=run_failed(), body=message(RUN_FAILED))


def test_unserializable_result_is_500(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "unserializable"})
    expect(reply, status=500, headers=score_ok(exec_ms=False), body=message(INTERNAL))


def test_numpy_float64_in_dict_serializes(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "float64"})
    expect(reply, status=200, headers=score_ok(), body='{"value": 1.5}')


def test_numpy_int64_in_dict_does_not_serialize(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "int64"})
    expect(reply, status=500, headers=score_ok(exec_ms=False), body=message(INTERNAL))


def test_server_still_serves_after_errors(server: Server) -> None:
    server.post_json("/score", {"mode": "raise"})
    reply = server.post_json("/score", {"mode": "list"})
    expect(reply, status=200, headers=score_ok(), body="[1, 2, 3]")


def test_options_answered_by_server(server: Server) -> None:
    reply = server.request("OPTIONS", "/score")
    expect(reply, status=200, headers=score_ok(exec_ms=False, content_type=HTML), body=b"")


def test_options_with_preflight_headers_without_cors(server: Server) -> None:
    reply = server.request("OPTIONS", "/score", headers={
        "Origin": "http://example.com", "Access-Control-Request-Method": "POST"})
    expect(reply, status=200, headers=score_ok(exec_ms=False, content_type=HTML), body=b"")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_on_score_are_405(server: Server, method: str) -> None:
    reply = server.request(method, "/score", body="{}", headers={"Content-Type": JSON})
    expect(reply, status=405, headers={"content-type": JSON, "x-ms-run-function-failed": "False"},
           body=message("The method is not allowed for the requested URL."))
