"""run(data, request_headers): the server passes dict(request.headers) with Title-Case names."""

from __future__ import annotations

import pytest

from tests.compat.harness import Server, ServerSpec, expect, score_ok

pytestmark = pytest.mark.compat

SERVER = ServerSpec("headers")


def test_post_headers_title_case(server: Server) -> None:
    reply = server.post("/score", '{"a":1}', headers={
        "x-ms-request-id": "abc", "x-custom-header": "v", "X-UPPER": "u", "traceid": "t"})
    expect(reply, status=200, check_body=False, headers=score_ok(
        ms_request_id="abc", client_request_id="abc", traceid="t"))
    assert reply.json() == {"data": '{"a":1}', "headers": {
        "Host": f"127.0.0.1:{server.port}",
        "Accept-Encoding": "identity",
        "Content-Length": "7",
        "Content-Type": "application/json",
        "X-Ms-Request-Id": "abc",
        "X-Custom-Header": "v",
        "X-Upper": "u",
        "Traceid": "t",
    }}


def test_get_headers_have_no_content_length(server: Server) -> None:
    reply = server.get("/score?q=1", headers={"x-custom-header": "v"})
    expect(reply, status=200, check_body=False, headers=score_ok())
    assert reply.json() == {"data": '{"q": 1}', "headers": {
        "Host": f"127.0.0.1:{server.port}",
        "Accept-Encoding": "identity",
        "X-Custom-Header": "v",
    }}


def test_repeated_header_joined_with_comma(server: Server) -> None:
    reply = server.raw("POST", "/score", [("X-Dup", "a"), ("X-Dup", "b")], [b"{}"])
    assert reply.status == 200, reply
    assert reply.json()["headers"]["X-Dup"] == "a,b"
