"""@rawhttp scripts (AMLRequest) and AMLResponse semantics: content types, headers, streaming."""

from __future__ import annotations

from typing import Any

from tests.e2e.scoring.conftest import ScoringServer

SCRIPT = "rawhttp_script.py"


def test_raw_request_exposes_args_headers_and_json(module_server: ScoringServer) -> None:
    reply = module_server.request(
        "POST",
        "/score?kind=info&x=1&x=2",
        '{"z": 1}',
        {"Content-Type": "application/json", "X-Custom": "yes"},
    )
    info = reply.json()
    assert info["method"] == "POST"
    assert info["path"] == "/score"
    assert info["full_path"] == "/score?kind=info&x=1&x=2"
    assert info["args"] == {"kind": ["info"], "x": ["1", "2"]}
    assert info["json"] == {"z": 1}
    assert info["is_json"] is True
    assert info["data"] == '{"z": 1}'
    assert info["header"] == "yes"
    assert info["url"] == f"http://127.0.0.1:{module_server.port}/score?kind=info&x=1&x=2"


def test_raw_request_parses_multipart_files_and_forms(module_server: ScoringServer) -> None:
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nval\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; filename="a.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nfile body\r\n--{boundary}--\r\n"
    )
    reply = module_server.request(
        "POST", "/score", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    info = reply.json()
    assert info["form"] == {"name": ["val"]}
    assert info["files"] == {"upload": ["a.txt", "file body"]}
    urlencoded = module_server.request(
        "POST", "/score", "a=1&a=2&b=x", {"Content-Type": "application/x-www-form-urlencoded"}
    ).json()
    assert urlencoded["form"] == {"a": ["1", "2"], "b": ["x"]}


def test_every_method_reaches_a_raw_run(module_server: ScoringServer) -> None:
    assert module_server.request("GET", "/score?kind=path").body == b"/score?kind=path"
    options = module_server.request("OPTIONS", "/score")
    assert options.status == 200
    assert options.json()["method"] == "OPTIONS"
    assert options.json()["full_path"] == "/score?"


def test_amlresponse_status_and_headers(module_server: ScoringServer) -> None:
    binary = module_server.request(
        "POST", "/score?kind=bytes", b"\x00\x01raw", {"Content-Type": "application/octet-stream"}
    )
    assert (binary.status, binary.body) == (201, b"\x00\x01raw")
    assert binary.header("Content-Type") == "application/octet-stream"
    teapot = module_server.request("GET", "/score?kind=teapot")
    assert (teapot.status, teapot.body) == (418, b"short and stout")
    assert teapot.header("Content-Type") == "text/html; charset=utf-8"
    assert teapot.header("x-ms-run-function-failed") == "False"
    unavailable = module_server.request("GET", "/score?kind=unavailable")
    assert unavailable.status == 503
    assert unavailable.header("x-ms-run-function-failed") == "True"
    assert unavailable.header("x-request-id") is not None


def test_amlresponse_variants(start_server: Any) -> None:
    server: ScoringServer = start_server("responses.py")
    plain = server.request("POST", "/score", "plain")
    assert (plain.body, plain.header("Content-Type")) == (b"hello", "text/html; charset=utf-8")
    as_json = server.request("POST", "/score", "json")
    assert (as_json.status, as_json.body, as_json.header("Content-Type")) == (
        202,
        b'{"a": [1, 2]}',
        "application/json",
    )
    multi = server.request("POST", "/score", "headers")
    assert multi.all("X-Multi") == ["a", "b", "c"]
    assert multi.all("Content-Type") == ["text/plain"]
    stream = server.request("POST", "/score", "stream")
    assert stream.body == b"chunk0\nchunk1\nchunk2\n"
    assert stream.header("Transfer-Encoding") == "chunked"
    assert stream.header("Content-Length") is None
    empty = server.request("POST", "/score", "none")
    assert (empty.body, empty.header("Content-Type")) == (b"{}", "application/json")
