"""AMLResponse and AMLRequest behave like v1's Flask-based classes where scripts look."""

from __future__ import annotations

from typing import Any

from modelhost.scoring.aml_request import AMLRequest, parse_multipart
from modelhost.scoring.aml_response import AMLResponse


def test_response_defaults_and_json() -> None:
    plain = AMLResponse("hi", 200)
    assert plain.headers.items() == [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "2"),
        ("x-ms-run-function-failed", "False"),
    ]
    assert plain.get_data() == b"hi" and plain.status == "200 OK"
    as_json = AMLResponse({"a": 1}, 201, json_str=True, run_function_failed=True)
    assert as_json.get_data(as_text=True) == '{"a": 1}'
    assert as_json.headers["X-MS-RUN-FUNCTION-FAILED"] == "True"
    assert AMLResponse(None, 200).get_data() == b"{}"


def test_response_user_headers_split_on_commas_and_replace_content_type() -> None:
    response = AMLResponse(b"x", 200, {"Content-Type": "image/png", "X-Multi": "a, b"})
    assert response.headers.getlist("Content-Type") == ["image/png"]
    assert response.headers.getlist("X-Multi") == ["a", "b"]


def test_streamed_response() -> None:
    response = AMLResponse((c for c in ["a", "b"]), 200)
    assert response.is_streamed
    assert "Content-Length" not in response.headers
    assert list(response.iter_encoded()) == [b"a", b"b"]


def _scope(
    method: str = "POST", query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": "/score",
        "query_string": query,
        "root_path": "",
        "headers": headers or [(b"host", b"example:5001")],
        "scheme": "http",
        "client": ("1.2.3.4", 9),
    }


def test_request_urls_args_and_headers() -> None:
    request = AMLRequest(
        _scope(
            query=b"a=1&a=2&b=", headers=[(b"host", b"h:1"), (b"x-thing", b"v"), (b"cookie", b"k=v; j=w")]
        ),
        b"",
    )
    assert (request.full_path, request.url, request.base_url) == (
        "/score?a=1&a=2&b=",
        "http://h:1/score?a=1&a=2&b=",
        "http://h:1/score",
    )
    assert request.args.getlist("a") == ["1", "2"] and request.args["b"] == ""
    assert request.args.get("a", type=int) == 1
    assert dict(request.headers) == {"Host": "h:1", "X-Thing": "v", "Cookie": "k=v; j=w"}
    assert request.headers["x-THING"] == "v"
    assert request.cookies == {"k": "v", "j": "w"}
    assert request.remote_addr == "1.2.3.4"
    assert AMLRequest(_scope(), b"").full_path == "/score?"


def test_request_body_json_and_forms() -> None:
    json_request = AMLRequest(_scope(headers=[(b"content-type", b"application/json")]), b'{"a": 1}')
    assert json_request.get_json() == {"a": 1} and json_request.json == {"a": 1} and json_request.is_json
    assert json_request.data == b'{"a": 1}'
    form = AMLRequest(_scope(headers=[(b"content-type", b"application/x-www-form-urlencoded")]), b"x=1&y=2")
    assert form.form.to_dict() == {"x": "1", "y": "2"}
    assert form.data == b"" and form.get_data() == b"x=1&y=2"
    assert form.get_json(silent=True) is None


def test_multipart() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n"
        b'--B\r\nContent-Disposition: form-data; name="k"\r\n\r\nv\r\n--B--\r\n'
    )
    form, files = parse_multipart(body, "B")
    assert form == [("k", "v")]
    name, storage = files[0]
    assert (name, storage.filename, storage.read(), storage.content_type) == (
        "f",
        "a.bin",
        b"\x00\x01",
        "application/octet-stream",
    )
