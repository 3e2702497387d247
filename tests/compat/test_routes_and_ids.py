"""Health, unknown routes, and the request-id headers (v1-reference §5.4, §5.5)."""

from __future__ import annotations

import pytest

from tests.compat.harness import (
    HTML,
    UUID4,
    Server,
    ServerSpec,
    app_level_headers,
    blueprint_headers,
    expect,
    message,
    score_ok,
)

pytestmark = pytest.mark.compat

SERVER = ServerSpec("undecorated")

NOT_FOUND = ("The requested URL was not found on the server. If you entered the URL manually please check "
             "your spelling and try again.")
NOT_ALLOWED = "The method is not allowed for the requested URL."
BODY = '{"x": 1}'
RECEIVED = '{"received": "{\\"x\\": 1}", "type": "str"}'


def test_health(server: Server) -> None:
    reply = server.get("/")
    expect(reply, status=200, headers=blueprint_headers(content_type=HTML, failed=None), body="Healthy")


def test_health_echoes_ids(server: Server) -> None:
    reply = server.get("/", headers={"x-request-id": "health-1", "TraceId": "t-1"})
    expect(reply, status=200, body="Healthy", headers=blueprint_headers(
        content_type=HTML, failed=None, request_id="health-1", traceid="t-1"))


def test_head_health_and_swagger(server: Server) -> None:
    reply = server.request("HEAD", "/")
    expect(reply, status=200, headers=blueprint_headers(content_type=HTML, failed=None), body=b"")
    assert reply.header("Content-Length") == "7"
    reply = server.request("HEAD", "/swagger.json")
    expect(reply, status=200, headers=blueprint_headers(), body=b"")
    assert int(reply.header("Content-Length") or 0) > 1000


@pytest.mark.parametrize("path", ["/nope", "/score/extra", "/api/v1/service/x/score", "/swagger"])
def test_unknown_path_is_404(server: Server, path: str) -> None:
    reply = server.get(path)
    expect(reply, status=404, headers=app_level_headers(), body=message(NOT_FOUND))


def test_unknown_path_post_is_404(server: Server) -> None:
    reply = server.post("/predict", BODY)
    expect(reply, status=404, headers=app_level_headers(), body=message(NOT_FOUND))


def test_post_to_health_is_405(server: Server) -> None:
    reply = server.post("/", BODY)
    expect(reply, status=405, headers=app_level_headers(), body=message(NOT_ALLOWED))


def test_post_to_swagger_is_405(server: Server) -> None:
    reply = server.post("/swagger.json", BODY)
    expect(reply, status=405, headers=app_level_headers(), body=message(NOT_ALLOWED))


def test_generated_request_id(server: Server) -> None:
    reply = server.post("/score", BODY)
    expect(reply, status=200, headers=score_ok(request_id=UUID4), body=RECEIVED)


def test_request_ids_differ_per_request(server: Server) -> None:
    first = server.post("/score", BODY).header("x-request-id")
    second = server.post("/score", BODY).header("x-request-id")
    assert first != second


def test_request_id_echoed(server: Server) -> None:
    reply = server.post("/score", BODY, headers={"x-request-id": "req-1"})
    expect(reply, status=200, headers=score_ok(request_id="req-1", ms_request_id="req-1"), body=RECEIVED)


def test_client_request_id(server: Server) -> None:
    reply = server.post("/score", BODY, headers={"x-request-id": "R1", "x-ms-client-request-id": "C1"})
    expect(reply, status=200, body=RECEIVED, headers=score_ok(
        request_id="R1", ms_request_id="C1", client_request_id="C1"))


def test_client_request_id_without_request_id(server: Server) -> None:
    reply = server.post("/score", BODY, headers={"x-ms-client-request-id": "C2"})
    expect(reply, status=200, body=RECEIVED, headers=score_ok(
        request_id=UUID4, ms_request_id="C2", client_request_id="C2"))


def test_legacy_ms_request_id_is_client_id(server: Server) -> None:
    reply = server.post("/score", BODY, headers={"x-ms-request-id": "L1"})
    expect(reply, status=200, body=RECEIVED, headers=score_ok(
        request_id=UUID4, ms_request_id="L1", client_request_id="L1"))


def test_legacy_and_client_request_id(server: Server) -> None:
    reply = server.post("/score", BODY, headers={
        "x-ms-request-id": "L1", "x-ms-client-request-id": "C1", "x-request-id": "R1"})
    expect(reply, status=200, body=RECEIVED, headers=score_ok(
        request_id="R1", ms_request_id="L1", client_request_id="C1"))


def test_header_names_are_case_insensitive(server: Server) -> None:
    reply = server.post("/score", BODY, headers={"X-Request-ID": "R9", "X-MS-CLIENT-REQUEST-ID": "C9"})
    expect(reply, status=200, body=RECEIVED, headers=score_ok(
        request_id="R9", ms_request_id="C9", client_request_id="C9"))


def test_request_id_at_limit_is_accepted(server: Server) -> None:
    rid = "r" * 100
    reply = server.post("/score", BODY, headers={"x-request-id": rid})
    expect(reply, status=200, headers=score_ok(request_id=rid, ms_request_id=rid), body=RECEIVED)


def test_request_id_too_long_is_431(server: Server) -> None:
    reply = server.post("/score", BODY, headers={"x-request-id": "r" * 101})
    expect(reply, status=431, body=message("x-request-id must not exceed 100 characters"),
           headers={"content-type": "application/json", "x-ms-run-function-failed": "False",
                    "x-ms-server-version": blueprint_headers()["x-ms-server-version"]})


@pytest.mark.parametrize("header", ["x-ms-client-request-id", "x-ms-request-id"])
def test_client_request_id_too_long_is_431(server: Server, header: str) -> None:
    reply = server.post("/score", BODY, headers={header: "c" * 101, "x-request-id": "R2"})
    expect(reply, status=431,
           body=message("x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"),
           headers={"content-type": "application/json", "x-ms-run-function-failed": "False",
                    "x-request-id": "R2",
                    "x-ms-server-version": blueprint_headers()["x-ms-server-version"]})


def test_request_id_too_long_on_health_is_431(server: Server) -> None:
    reply = server.get("/", headers={"x-request-id": "h" * 101})
    assert reply.status == 431
    assert reply.header("x-request-id") is None


def test_trace_id_echoed(server: Server) -> None:
    reply = server.post("/score", BODY, headers={"TraceId": "trace-abc"})
    expect(reply, status=200, headers=score_ok(traceid="trace-abc"), body=RECEIVED)


def test_trace_id_echoed_on_errors(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "raise"}, headers={"traceid": "trace-err"})
    assert reply.status == 500
    assert reply.all("TraceId") == ["trace-err"]


def test_run_fn_exec_ms_reflects_run_time(server: Server) -> None:
    reply = server.post_json("/score", {"mode": "sleep", "seconds": 0.2})
    expect(reply, status=200, headers=score_ok(), body='{"slept": 0.2}')
    assert float(reply.header("x-ms-run-fn-exec-ms") or 0) >= 190.0
