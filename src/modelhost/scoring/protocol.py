"""Pure rules of v1's HTTP contract: request ids, query strings, headers and JSON bodies.

Each function reproduces one behaviour of azureml-inference-server-http 1.5.1 (``routes.py``,
``input_parsers.py``); none does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "HEADER_LIMIT",
    "BadInput",
    "RequestIds",
    "extract_parameters",
    "is_form_mimetype",
    "is_json_mimetype",
    "parse_json_object",
    "query_to_json_text",
    "query_to_params",
    "resolve_request_ids",
    "title_case_headers",
]

HEADER_LIMIT = 100
_MISSING = object()


class BadInput(Exception):
    """The request cannot be turned into run() arguments; ``status`` is 400 or 415."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RequestIds:
    """The ids a response echoes, or the 431 message when a client id is too long."""

    __slots__ = ("client_request_id", "error", "legacy_client_request_id", "request_id")

    def __init__(self, request_id: str, legacy: str, client: str, error: str | None) -> None:
        self.request_id = request_id
        self.legacy_client_request_id = legacy
        self.client_request_id = client
        self.error = error


def resolve_request_ids(
    x_request_id: str | None,
    x_ms_request_id: str | None,
    x_ms_client_request_id: str | None,
    new_id: Callable[[], str],
) -> RequestIds:
    """v1's ``_init_headers``.

    ``x-request-id`` is taken or generated; the client id is ``x-ms-client-request-id``, else the legacy
    ``x-ms-request-id``; the response's ``x-ms-request-id`` is the legacy value if sent, else the client
    id, else the request id. Ids over 100 characters give a 431 message (and, for ``x-request-id``, no
    ids at all).
    """
    request_id = x_request_id if x_request_id is not None else new_id()
    if len(request_id) > HEADER_LIMIT:
        return RequestIds("", "", "", f"x-request-id must not exceed {HEADER_LIMIT} characters")
    legacy = x_ms_request_id or ""
    client = x_ms_client_request_id or ""
    if legacy:
        if not client:
            client = legacy
    else:
        legacy = client or request_id
    if len(legacy) > HEADER_LIMIT or len(client) > HEADER_LIMIT:
        return RequestIds(
            request_id,
            "",
            "",
            f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters",
        )
    return RequestIds(request_id, legacy, client, None)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def query_to_params(query: str) -> dict[str, Any]:
    """v1's ``_parse_get_parameters``: each value parsed as JSON if it can be, repeated keys become lists."""
    grouped: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        grouped.setdefault(key, []).append(value)
    return {
        k: (_json_or_text(vs[0]) if len(vs) == 1 else [_json_or_text(v) for v in vs])
        for k, vs in grouped.items()
    }


def query_to_json_text(query: str) -> str:
    """What an undecorated ``run`` receives for a GET: the query string as JSON text."""
    return json.dumps(query_to_params(query))


def title_case_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """``dict(request.headers)`` as a v1 script sees it: Title-Case names, repeated headers joined by ','.

    gunicorn drops header names containing ``_`` (so this does too).
    """
    headers: dict[str, str] = {}
    for name, value in raw:
        if b"_" in name:
            continue
        key = name.decode("latin-1").title()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def mimetype_of(content_type: bytes | None) -> str:
    if not content_type:
        return ""
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1")


def is_json_mimetype(mimetype: str) -> bool:
    """Werkzeug's ``is_json``: ``application/json`` or ``application/*+json``."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def is_form_mimetype(mimetype: str) -> bool:
    """Bodies Werkzeug parses as a form, so that ``request.data`` is empty for them."""
    return mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The POST body of a schema-decorated run(): a JSON object, or :class:`BadInput` with v1's message."""
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        if body:
            raise BadInput(f"POST body could not be decoded as JSON: {exc}") from None
        raise BadInput("POST body is empty. Expecting a JSON dictionary.") from None
    if not isinstance(parsed, dict):
        raise BadInput("POST body should be a JSON dictionary.")
    return parsed


def extract_parameters(body: dict[str, Any], params: Sequence[tuple[str, Any]], empty: Any) -> dict[str, Any]:
    """Look each run() parameter up by name (``(name, default)`` pairs); extra keys are ignored."""
    values: dict[str, Any] = {}
    for name, default in params:
        value = body.get(name, default)
        if value is empty:
            raise BadInput(f"A value is not provided for the {name!r} parameter.")
        values[name] = value
    return values
