"""@rawhttp run(request) with AMLRequest, and AMLResponse in all its shapes."""

from __future__ import annotations

import json

import pytest

from tests.compat.harness import HTML, JSON, Server, ServerSpec, expect, message, run_failed, score_ok

pytestmark = pytest.mark.compat

SERVER = ServerSpec("rawhttp")

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
BOUNDARY = "compat-boundary-7d1"


def multipart(files: dict[str, tuple[str, str]], fields: dict[str, str]) -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n')
    for name, (filename, content) in files.items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: text/plain\r\n\r\n{content}\r\n')
    parts.append(f"--{BOUNDARY}--\r\n")
    return "".join(parts).encode("utf-8")


def test_get_full_path(server: Server) -> None:
    reply = server.get("/score?x=1")
    expect(reply, status=200, headers=score_ok(), body='"/score?x=1"')


def test_get_without_query_full_path_has_question_mark(server: Server) -> None:
    reply = server.get("/score")
    expect(reply, status=200, headers=score_ok(), body='"/score?"')


def test_post_echo(server: Server) -> None:
    reply = server.post("/score?a=1&a=2&b=x", "raw body \u00e9", content_type="application/octet-stream",
                        headers={"X-Custom": "yes"})
    expect(reply, status=200, headers=score_ok(), json_body={
        "method": "POST", "data": "raw body \u00e9", "args": {"a": ["1", "2"], "b": ["x"]},
        "full_path": "/score?a=1&a=2&b=x", "path": "/score", "content_type": "application/octet-stream",
        "custom": "yes"})


def test_post_non_utf8_body_reaches_run(server: Server) -> None:
    # The raw script decodes itself and fails: that is run() raising, not the server's 400.
    reply = server.post("/score", b"\xff\xfe", content_type="application/octet-stream")
    expect(reply, status=500, headers=run_failed(), body=message(RUN_FAILED))


def test_options_reaches_run(server: Server) -> None:
    reply = server.request("OPTIONS", "/score")
    expect(reply, status=500, headers=score_ok(content_type=HTML, failed="True"), body="bad request")


def test_options_echo(server: Server) -> None:
    reply = server.request("OPTIONS", "/score?case=echo")
    expect(reply, status=200, headers=score_ok(), json_body={
        "method": "OPTIONS", "data": "", "args": {"case": ["echo"]}, "full_path": "/score?case=echo",
        "path": "/score", "content_type": None, "custom": None})


def test_head_reaches_run(server: Server) -> None:
    reply = server.request("HEAD", "/score?case=echo")
    expect(reply, status=200, headers=score_ok(), body=b"")
    expected = json.dumps({"method": "HEAD", "data": "", "args": {"case": ["echo"]},
                           "full_path": "/score?case=echo", "path": "/score", "content_type": None,
                           "custom": None})
    assert reply.header("Content-Length") == str(len(expected))


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_other_methods_still_405(server: Server, method: str) -> None:
    reply = server.request(method, "/score")
    expect(reply, status=405, headers={"content-type": JSON, "x-ms-run-function-failed": "False"},
           body=message("The method is not allowed for the requested URL."))


def test_json(server: Server) -> None:
    reply = server.post("/score?case=json", '{"k": [1, 2]}')
    expect(reply, status=200, headers=score_ok(),
           body=json.dumps({"json": {"k": [1, 2]}, "get_json": {"k": [1, 2]}, "is_json": True}))


def test_files_and_form_via_multipart(server: Server) -> None:
    body = multipart({"image": ("a.txt", "file one"), "other": ("b.csv", "x,y\n1,2")}, {"field": "value"})
    reply = server.post("/score?case=files", body, content_type=f"multipart/form-data; boundary={BOUNDARY}")
    expect(reply, status=200, headers=score_ok(), json_body={
        "files": {"image": {"filename": "a.txt", "content": "file one"},
                  "other": {"filename": "b.csv", "content": "x,y\n1,2"}},
        "form": {"field": "value"}})


def test_urlencoded_form(server: Server) -> None:
    reply = server.post("/score?case=form", "a=1&a=2&b=hello+world",
                        content_type="application/x-www-form-urlencoded")
    expect(reply, status=200, headers=score_ok(),
           body=json.dumps({"form": {"a": ["1", "2"], "b": ["hello world"]}}))


def test_aml_response_str_is_html(server: Server) -> None:
    reply = server.get("/score?case=text")
    expect(reply, status=200, headers=score_ok(content_type=HTML), body="hello text")


def test_aml_response_json_str(server: Server) -> None:
    reply = server.get("/score?case=json_str")
    expect(reply, status=200, headers=score_ok(), body='{"a": 1, "b": [1, 2]}')


def test_aml_response_none_is_empty_object(server: Server) -> None:
    reply = server.get("/score?case=none")
    expect(reply, status=202, headers=score_ok(), body="{}")


def test_aml_response_custom_status_and_split_headers(server: Server) -> None:
    reply = server.post("/score?case=custom", "{}")
    expect(reply, status=201, headers=score_ok(content_type="text/plain"), body="created")
    assert reply.all("X-Multi") == ["a", "b", "c"]
    assert reply.all("X-Single") == ["one"]


def test_aml_response_bytes(server: Server) -> None:
    reply = server.get("/score?case=bytes")
    expect(reply, status=200, headers=score_ok(content_type="application/octet-stream"),
           body=b"\x00\x01\xfe\xff")


def test_aml_response_streaming_generator(server: Server) -> None:
    reply = server.get("/score?case=stream")
    expect(reply, status=200, headers=score_ok(content_type=HTML), body="chunk-1;chunk-2;chunk-3")
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.header("Content-Length") is None


def test_aml_response_5xx_marks_run_failed(server: Server) -> None:
    reply = server.get("/score?case=fail503")
    expect(reply, status=503, headers=score_ok(content_type=HTML, failed="True"), body="service unavailable")


def test_aml_response_500_overrides_flag(server: Server) -> None:
    reply = server.get("/score?case=fail500_flag_false")
    expect(reply, status=500, headers=score_ok(content_type=HTML, failed="True"), body="oops")


def test_aml_response_flag_kept_below_500(server: Server) -> None:
    reply = server.get("/score?case=flag_true_200")
    expect(reply, status=200, headers=score_ok(content_type=HTML, failed="True"), body="ok")


def test_aml_response_4xx(server: Server) -> None:
    reply = server.get("/score?case=unknown")
    expect(reply, status=400, headers=score_ok(content_type=HTML), body="unknown case unknown")


def test_user_code_cannot_override_request_id(server: Server) -> None:
    reply = server.get("/score?case=override_request_id", headers={"x-request-id": "client-rid"})
    expect(reply, status=200, body="mine", headers=score_ok(
        content_type=HTML, request_id="client-rid", ms_request_id="client-rid"))


def test_run_raising_is_500(server: Server) -> None:
    reply = server.get("/score?case=raise")
    expect(reply, status=500, headers=run_failed(), body=message(RUN_FAILED))
