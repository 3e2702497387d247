"""Pure rules of v1's HTTP contract."""

from __future__ import annotations

import inspect

import pytest

from modelhost.scoring.protocol import (
    BadInput,
    extract_parameters,
    is_json_mimetype,
    mimetype_of,
    parse_json_object,
    query_to_json_text,
    query_to_params,
    resolve_request_ids,
    title_case_headers,
)


def _ids(rid: str | None, legacy: str | None, client: str | None) -> tuple[str, str, str, str | None]:
    ids = resolve_request_ids(rid, legacy, client, lambda: "GEN")
    return ids.request_id, ids.legacy_client_request_id, ids.client_request_id, ids.error


@pytest.mark.parametrize(
    ("rid", "legacy", "client", "want"),
    [
        (None, None, None, ("GEN", "GEN", "", None)),
        ("R1", None, None, ("R1", "R1", "", None)),
        ("R1", None, "C1", ("R1", "C1", "C1", None)),
        ("R1", "L1", None, ("R1", "L1", "L1", None)),
        ("R1", "L1", "C1", ("R1", "L1", "C1", None)),
        ("a" * 100, None, None, ("a" * 100, "a" * 100, "", None)),
        ("a" * 101, None, None, ("", "", "", "x-request-id must not exceed 100 characters")),
        (
            "R1",
            None,
            "c" * 101,
            ("R1", "", "", "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"),
        ),
        (
            "R1",
            "l" * 101,
            None,
            ("R1", "", "", "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"),
        ),
    ],
    ids=["generated", "given", "client", "legacy", "both", "limit", "long-rid", "long-client", "long-legacy"],
)
def test_request_ids(
    rid: str | None, legacy: str | None, client: str | None, want: tuple[str, str, str, str | None]
) -> None:
    assert _ids(rid, legacy, client) == want


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("a=1&b=[1,2]&c=x&c=y&d=null", {"a": 1, "b": [1, 2], "c": ["x", "y"], "d": None}),
        ("e=%7B%22k%22%3A1%7D&f=", {"e": {"k": 1}, "f": ""}),
        ("s=hello+world", {"s": "hello world"}),
        ("", {}),
    ],
    ids=["json-values", "encoded-and-blank", "plus-is-space", "empty"],
)
def test_query_to_params(query: str, want: dict[str, object]) -> None:
    assert query_to_params(query) == want


def test_query_to_json_text_matches_v1_spacing() -> None:
    assert query_to_json_text("a=1&c=x&c=y") == '{"a": 1, "c": ["x", "y"]}'


def test_title_case_headers() -> None:
    raw = [
        (b"x-ms-request-id", b"1"),
        (b"content-type", b"text/plain"),
        (b"x-dup", b"a"),
        (b"x-dup", b"b"),
        (b"x_under", b"dropped"),
        (b"traceid", b"t"),
    ]
    assert title_case_headers(raw) == {
        "X-Ms-Request-Id": "1",
        "Content-Type": "text/plain",
        "X-Dup": "a,b",
        "Traceid": "t",
    }


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        (b"application/json", True),
        (b"Application/JSON; charset=utf-8", True),
        (b"application/vnd.api+json", True),
        (b"text/plain", False),
        (None, False),
        (b"text/json", False),
    ],
)
def test_json_mimetype(content_type: bytes | None, is_json: bool) -> None:
    assert is_json_mimetype(mimetype_of(content_type)) is is_json


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "POST body is empty. Expecting a JSON dictionary."),
        (b"[1]", "POST body should be a JSON dictionary."),
        (b'{"a": ', "POST body could not be decoded as JSON: Expecting value: line 1 column 7 (char 6)"),
    ],
)
def test_parse_json_object_errors(body: bytes, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_json_object(body)
    assert (info.value.status, info.value.message) == (400, message)


def test_extract_parameters_uses_defaults_and_names_the_missing_one() -> None:
    empty = inspect.Parameter.empty
    params = [("data", empty), ("flag", False)]
    assert extract_parameters({"data": 1, "extra": 2}, params, empty) == {"data": 1, "flag": False}
    with pytest.raises(BadInput, match=r"A value is not provided for the 'data' parameter\."):
        extract_parameters({"flag": True}, params, empty)
