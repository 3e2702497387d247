"""Turn one request into ``run()`` arguments, call ``run()``, and encode its result: v1's semantics.

:class:`Invoker` is built once per entry script, with the input mode and the parameter names
precomputed. Its :meth:`Invoker.score` runs on a slot thread (see :mod:`modelhost.scoring.slots`), so
body parsing, ``run()`` and JSON encoding all stay off the event loop. It returns an outcome tuple
whose first item says what happened:

* ``(OK_JSON, body_bytes, run_ms)`` — a plain result, ``json.dumps``-ed like v1;
* ``(OK_RESPONSE, response, run_ms)`` — run() returned an ``AMLResponse`` (or a Flask/Werkzeug response);
* ``(BAD_INPUT, status, message)`` — 400/415 before run() was called;
* ``(RUN_FAILED, traceback_text)`` — run() raised;
* ``(ENCODE_FAILED, traceback_text)`` — the result is not JSON serializable.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import traceback
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from .aml_request import AMLRequest
from .aml_response import AMLResponse, Headers
from .entry_script import EntryScript, InputMode
from .protocol import (
    BadInput,
    extract_parameters,
    is_form_mimetype,
    is_json_mimetype,
    parse_json_object,
    query_to_json_text,
    query_to_params,
    title_case_headers,
)

__all__ = [
    "BAD_INPUT",
    "ENCODE_FAILED",
    "OK_JSON",
    "OK_RESPONSE",
    "RUN_FAILED",
    "Invoker",
    "ResponseView",
    "current_request_id",
    "view_response",
]

OK_JSON, OK_RESPONSE, BAD_INPUT, RUN_FAILED, ENCODE_FAILED = range(5)
_EMPTY = inspect.Parameter.empty
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None), tuple})

# The x-ms-request-id answered for the request being scored, for code inside run() (ModelDataCollector).
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "modelhost_request_id", default="00000000-0000-0000-0000-000000000000"
)


def is_response(result: Any) -> bool:
    """An AMLResponse, or a Flask/Werkzeug response object (duck-typed, Flask is not imported)."""
    if type(result) in _PLAIN:
        return False
    if isinstance(result, AMLResponse):
        return True
    return all(hasattr(result, a) for a in ("status_code", "headers", "get_data", "response"))


class Invoker:
    """Calls one entry script's ``run()`` the way v1 would for a request."""

    def __init__(self, script: EntryScript) -> None:
        self.script = script
        self._run = script.run
        self._mode = script.mode
        self._first = script.first_param
        self._params = tuple((p.name, p.default) for p in script.params)
        self._wants_headers = script.wants_headers

    # --- arguments ------------------------------------------------------------------------------
    def arguments(self, method: str, body: bytes, scope: dict[str, Any], mimetype: str) -> dict[str, Any]:
        """run()'s keyword arguments for this request; raises :class:`BadInput`."""
        mode = self._mode
        kwargs: dict[str, Any]
        if mode is InputMode.JSON_STRING:
            if method == "POST":
                if is_form_mimetype(mimetype):
                    text = ""
                else:
                    try:
                        text = str(body, "utf-8")
                    except UnicodeDecodeError as exc:
                        raise BadInput(f"Input cannot be decoded as UTF-8: {exc}") from None
            else:
                text = query_to_json_text(scope["query_string"].decode("utf-8", "replace"))
            kwargs = {self._first: text}
        elif mode is InputMode.OBJECT:
            if method == "POST":
                if not is_json_mimetype(mimetype):
                    raise BadInput("Expects Content-Type to be application/json", 415)
                values = parse_json_object(body)
            else:
                values = query_to_params(scope["query_string"].decode("utf-8", "replace"))
            kwargs = extract_parameters(values, self._params, _EMPTY)
        else:
            kwargs = {self._first: AMLRequest(scope, body)}
        if self._wants_headers:
            kwargs["request_headers"] = title_case_headers(scope["headers"])
        return kwargs

    # --- the call -------------------------------------------------------------------------------
    def score(
        self, method: str, body: bytes, scope: dict[str, Any], mimetype: str, request_id: str
    ) -> tuple[Any, ...]:
        """Parse, call run() and JSON-encode: the whole job of one /score request (on a slot thread)."""
        try:
            kwargs = self.arguments(method, body, scope, mimetype)
        except BadInput as exc:
            return (BAD_INPUT, exc.status, exc.message)
        current_request_id.set(request_id)
        start = perf_counter()
        try:
            result = self._run(**kwargs)
        except BaseException:
            return (RUN_FAILED, traceback.format_exc())
        return encode_result(result, (perf_counter() - start) * 1000.0)

    def call(
        self, kwargs: dict[str, Any], request_id: str, encode: Callable[[Any, float], tuple[Any, ...]]
    ) -> tuple[Any, ...]:
        """Call run() with ready arguments and encode the result with ``encode`` (used by the v2 protocol)."""
        current_request_id.set(request_id)
        start = perf_counter()
        try:
            result = self._run(**kwargs)
        except BaseException:
            return (RUN_FAILED, traceback.format_exc())
        return encode(result, (perf_counter() - start) * 1000.0)

    async def score_async(
        self, method: str, body: bytes, scope: dict[str, Any], mimetype: str, request_id: str
    ) -> tuple[Any, ...]:
        """The same for ``async def run``, on the event loop."""
        try:
            kwargs = self.arguments(method, body, scope, mimetype)
        except BadInput as exc:
            return (BAD_INPUT, exc.status, exc.message)
        return await self.call_async(kwargs, request_id, encode_result)

    async def call_async(
        self, kwargs: dict[str, Any], request_id: str, encode: Callable[[Any, float], tuple[Any, ...]]
    ) -> tuple[Any, ...]:
        current_request_id.set(request_id)
        start = perf_counter()
        try:
            result = self._run(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            return (RUN_FAILED, traceback.format_exc())
        return encode(result, (perf_counter() - start) * 1000.0)


def encode_result(result: Any, run_ms: float) -> tuple[Any, ...]:
    """v1's ``wrap_response``: a response object passes through, anything else is ``json.dumps``-ed."""
    if result is None:  # v1 wraps it as AMLResponse(None, 200, json_str=True): an empty object
        return (OK_JSON, b"{}", run_ms)
    if type(result) not in _PLAIN and is_response(result):
        return (OK_RESPONSE, result, run_ms)
    try:
        body = json.dumps(result).encode("utf-8")
    except Exception:
        return (ENCODE_FAILED, traceback.format_exc())
    return (OK_JSON, body, run_ms)


class ResponseView:
    """Status, headers and body (or stream) of a response object returned by run()."""

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self, status: int, headers: Headers, body: bytes | None, stream: Iterable[bytes] | None
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream


def view_response(response: Any) -> ResponseView:
    """Read an AMLResponse, or a Werkzeug response, into a :class:`ResponseView` (consumes no stream)."""
    if isinstance(response, AMLResponse):
        headers = Headers(response.headers.items())
        if response.is_streamed:
            return ResponseView(response.status_code, headers, None, response.iter_encoded())
        return ResponseView(response.status_code, headers, response.get_data(), None)  # type: ignore[arg-type]
    headers = Headers((str(k), str(v)) for k, v in response.headers.items())
    if getattr(response, "is_streamed", False):
        return ResponseView(int(response.status_code), headers, None, response.iter_encoded())
    body = response.get_data()
    if "Content-Length" not in headers:
        headers.add("Content-Length", str(len(body)))
    return ResponseView(int(response.status_code), headers, body, None)
