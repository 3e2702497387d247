"""run(data, request_headers) gets Title-Case names; async def run is awaited."""

from __future__ import annotations

from typing import Any


def test_request_headers_are_title_case(start_server: Any) -> None:
    server = start_server("with_headers.py")
    reply = server.request("POST", "/score", "body", {"x-ms-request-id": "abc", "X-CUSTOM-thing": "v"})
    headers = reply.json()["headers"]
    assert headers["X-Ms-Request-Id"] == "abc"
    assert headers["X-Custom-Thing"] == "v"
    assert headers["Content-Length"] == "4"
    assert reply.json()["data"] == "body"


def test_async_run(start_server: Any) -> None:
    server = start_server("async_run.py")
    reply = server.request("POST", "/score", "x")
    assert reply.status == 200
    assert reply.json() == {"async": True, "data": "x"}
