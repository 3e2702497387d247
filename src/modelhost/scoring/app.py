"""The scoring server's ASGI application: v1's routes (``/score``, ``/``, ``/swagger.json``) and OIP v2.

A plain ASGI callable dispatches on the path; ``/score`` takes a short, precomputed hot path (no
middleware, no Request object), the v2 routes go to a Starlette ``Router``. Every header, status and
message follows azureml-inference-server-http 1.5.1 (see docs/scoring.md for the few deliberate
differences):

* ``/`` answers ``200 Healthy`` once init() has finished, ``503`` before (and while the worker is being
  recycled) — the readiness signal a router polls;
* responses of the v1 routes carry ``x-ms-server-version``, ``x-request-id``, ``x-ms-request-id``,
  ``x-ms-client-request-id`` (when sent) and ``TraceId`` (when sent); ids over 100 characters get 431;
* unknown paths get v1's 404 and wrong methods its 405, as JSON ``{"message": ...}`` without ids;
* a per-request line ``<METHOD> <path> <status> <ms>ms <length>`` is logged for /score and /swagger.json.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from random import getrandbits
from time import perf_counter
from typing import Any

from .aml_response import Headers
from .cors import CorsPolicy
from .entry_script import EntryScript
from .invoke import (
    BAD_INPUT,
    ENCODE_FAILED,
    OK_JSON,
    OK_RESPONSE,
    RUN_FAILED,
    Invoker,
    ResponseView,
    view_response,
)
from .logs import AccessLog
from .protocol import mimetype_of, resolve_request_ids
from .slots import TIMED_OUT, RunSlots, SlotsClosed
from .swagger import SwaggerDocs, SwaggerError

__all__ = ["ScoringApp", "ServerState"]

logger = logging.getLogger("azmlinfsrv")

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

NOT_FOUND_MESSAGE = (
    "The requested URL was not found on the server. If you entered the URL manually please check "
    "your spelling and try again."
)
METHOD_NOT_ALLOWED_MESSAGE = "The method is not allowed for the requested URL."
RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR_MESSAGE = "An unexpected internal error occurred. Check the logs for more info."
NOT_READY_MESSAGE = "The entry script is not ready: init() has not finished (or the worker is restarting)."
RECYCLING_MESSAGE = "The scoring worker is restarting because a run() call is stuck; retry shortly."

_JSON = b"application/json"
_HTML = b"text/html; charset=utf-8"
_FALSE = b"False"
_TRUE = b"True"


def _json_message(message: str) -> bytes:
    # json.dumps({"message": m}) without the call: v1's ErrorResponse body.
    import json

    return json.dumps({"message": message}).encode("utf-8")


_NOT_FOUND_BODY = _json_message(NOT_FOUND_MESSAGE)
_METHOD_NOT_ALLOWED_BODY = _json_message(METHOD_NOT_ALLOWED_MESSAGE)


class ServerState:
    """What the app knows about its worker: readiness, the loaded script, slots and swagger."""

    def __init__(self) -> None:
        self.ready = False
        self.recycling = False
        self.script: EntryScript | None = None
        self.invoker: Invoker | None = None
        self.slots: RunSlots | None = None
        self.swagger: SwaggerDocs | None = None
        self.on_startup: Callable[[], Any] | None = None
        # after the last request (uvicorn re-raises SIGTERM once run() returns: no code runs after it)
        self.on_shutdown: Callable[[], Any] | None = None


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class ScoringApp:
    """The ASGI app of one worker process."""

    def __init__(
        self,
        state: ServerState,
        *,
        server_version: str | None,
        cors_origins: tuple[str, ...] | None,
        timeout_ms: int,
        v2_app: Callable[..., Any] | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.state = state
        self._server_version = server_version.encode("latin-1") if server_version else None
        self._cors = CorsPolicy(cors_origins) if cors_origins else None
        self._timeout_ms = timeout_ms
        self._timeout_body = _json_message(f"Scoring timeout after {timeout_ms} ms")
        self._v2 = v2_app
        self._log = access_log or AccessLog()
        self._pid = os.getpid()

    # --- dispatch ---------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if "//" in path:  # Werkzeug merges repeated slashes
                while "//" in path:
                    path = path.replace("//", "/")
                scope["path"] = path
            if path == "/score":
                await self._score(scope, receive, send)
            elif path == "/":
                await self._health(scope, send)
            elif path == "/swagger.json":
                await self._swagger(scope, send)
            elif path.startswith("/v2") and self._v2 is not None:
                await self._v2(scope, receive, send)
            else:
                await self._plain(send, 404, _NOT_FOUND_BODY)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.state.on_startup is not None:
                    self.state.on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.state.on_shutdown is not None:
                    self.state.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- shared response pieces -------------------------------------------------------------------
    @staticmethod
    async def _plain(send: Send, status: int, body: bytes) -> None:
        """v1's app-level error (404/405): JSON message, no ids, no CORS."""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", _JSON),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-ms-run-function-failed", _FALSE),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _ids(
        self, headers: dict[bytes, bytes], method: str
    ) -> tuple[list[tuple[bytes, bytes]], str | None, str]:
        """Blueprint headers (CORS, server version, ids, TraceId), the 431 message if any, the request id."""
        rid = headers.get(b"x-request-id")
        legacy = headers.get(b"x-ms-request-id")
        client = headers.get(b"x-ms-client-request-id")
        ids = resolve_request_ids(
            None if rid is None else rid.decode("latin-1"),
            None if legacy is None else legacy.decode("latin-1"),
            None if client is None else client.decode("latin-1"),
            _new_id,
        )
        out: list[tuple[bytes, bytes]] = []
        if self._cors is not None:
            out += self._cors_headers(headers, method)
        if self._server_version is not None:
            out.append((b"x-ms-server-version", self._server_version))
        if ids.request_id:
            out.append((b"x-request-id", ids.request_id.encode("latin-1")))
        if ids.legacy_client_request_id:
            out.append((b"x-ms-request-id", ids.legacy_client_request_id.encode("latin-1")))
        if ids.client_request_id:
            out.append((b"x-ms-client-request-id", ids.client_request_id.encode("latin-1")))
        trace = headers.get(b"traceid")
        if trace is not None:
            out.append((b"traceid", trace))
        # run() sees the x-ms-request-id the client gets back (ModelDataCollector's $aml_request_id)
        return out, ids.error, ids.legacy_client_request_id or ids.request_id

    def _cors_headers(self, headers: dict[bytes, bytes], method: str) -> list[tuple[bytes, bytes]]:
        assert self._cors is not None
        origin = headers.get(b"origin")
        acrm = headers.get(b"access-control-request-method")
        acrh = headers.get(b"access-control-request-headers")
        return self._cors.headers(
            None if origin is None else origin.decode("latin-1"),
            method,
            None if acrm is None else acrm.decode("latin-1"),
            None if acrh is None else acrh.decode("latin-1"),
        )

    @staticmethod
    async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _error(
        self,
        send: Send,
        status: int,
        message: str | bytes,
        extra: list[tuple[bytes, bytes]],
        failed: bool = False,
    ) -> int:
        body = message if isinstance(message, bytes) else _json_message(message)
        await self._send(
            send,
            status,
            [
                (b"content-type", _JSON),
                (b"content-length", str(len(body)).encode()),
                (b"x-ms-run-function-failed", _TRUE if failed else _FALSE),
                *extra,
            ],
            body,
        )
        return len(body)

    def _log_line(self, scope: Scope, status: int, start: float, length: int | str) -> None:
        query = scope["query_string"]
        path = scope["path"] if not query else f"{scope['path']}?{query.decode('utf-8', 'replace')}"
        self._log.write(scope["method"], path, status, (perf_counter() - start) * 1000.0, length)

    # --- / ------------------------------------------------------------------------------------------
    async def _health(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD", "OPTIONS"):
            await self._plain(send, 405, _METHOD_NOT_ALLOWED_BODY)
            return
        headers = dict(scope["headers"])
        extra, error, _ = self._ids(headers, method)
        if error:
            await self._error(send, 431, error, extra)
        elif method == "OPTIONS":
            await self._options_get_only(send, extra)
        elif not self.state.ready:
            await self._error(
                send, 503, RECYCLING_MESSAGE if self.state.recycling else NOT_READY_MESSAGE, extra
            )
        else:
            await self._send(
                send, 200, [(b"content-type", _HTML), (b"content-length", b"7"), *extra], b"Healthy"
            )

    async def _options_get_only(self, send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        """v1's (Flask's) automatic OPTIONS answer for a GET-only route: 200, empty, with Allow."""
        headers = [(b"content-type", _HTML), (b"allow", b"HEAD, GET, OPTIONS"), *extra]
        await self._send(send, 200, [*headers, (b"content-length", b"0")], b"")

    # --- /swagger.json ------------------------------------------------------------------------------
    async def _swagger(self, scope: Scope, send: Send) -> None:
        start = perf_counter()
        method = scope["method"]
        if method not in ("GET", "HEAD", "OPTIONS"):
            await self._plain(send, 405, _METHOD_NOT_ALLOWED_BODY)
            return
        headers = dict(scope["headers"])
        extra, error, _ = self._ids(headers, method)
        if error:
            await self._error(send, 431, error, extra)
            return
        if method == "OPTIONS":
            await self._options_get_only(send, extra)
            return
        docs = self.state.swagger
        if docs is None:
            length: int = await self._error(send, 503, NOT_READY_MESSAGE, extra)
            self._log_line(scope, 503, start, length)
            return
        from urllib.parse import parse_qsl

        query = dict(parse_qsl(scope["query_string"].decode("utf-8", "replace"), keep_blank_values=True))
        try:
            body = docs.get(query.get("version", "2"))
        except SwaggerError as exc:
            length = await self._error(send, 404, exc.message, extra)
            self._log_line(scope, 404, start, length)
            return
        await self._send(
            send,
            200,
            [
                (b"content-type", _JSON),
                (b"content-length", str(len(body)).encode()),
                (b"x-ms-run-function-failed", _FALSE),
                *extra,
            ],
            body,
        )
        self._log_line(scope, 200, start, len(body))

    # --- /score -------------------------------------------------------------------------------------
    async def _score(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        method = scope["method"]
        if method not in ("POST", "GET", "OPTIONS", "HEAD"):
            await self._plain(send, 405, _METHOD_NOT_ALLOWED_BODY)
            return
        headers = dict(scope["headers"])
        extra, error, request_id = self._ids(headers, method)
        if error:
            await self._error(send, 431, error, extra)
            return
        state = self.state
        invoker = state.invoker
        if not state.ready or invoker is None:
            length = await self._error(
                send, 503, RECYCLING_MESSAGE if state.recycling else NOT_READY_MESSAGE, extra
            )
            self._log_line(scope, 503, start, length)
            return
        body = await _read_body(receive)
        script = invoker.script
        if method in ("OPTIONS", "HEAD") and script.mode.value != "raw":
            if method == "OPTIONS":
                await self._send(
                    send,
                    200,
                    [
                        (b"content-type", _HTML),
                        (b"content-length", b"0"),
                        (b"x-ms-run-function-failed", _FALSE),
                        *extra,
                    ],
                    b"",
                )
                self._log_line(scope, 200, start, 0)
            else:
                length = await self._error(send, 405, "Method not allowed", extra)
                self._log_line(scope, 405, start, length)
            return
        mimetype = mimetype_of(headers.get(b"content-type"))
        slots = state.slots
        assert slots is not None
        try:
            if script.is_async:
                outcome = await slots.run_async(
                    lambda: invoker.score_async(method, body, scope, mimetype, request_id)
                )
            else:
                outcome = await slots.run(invoker.score, method, body, scope, mimetype, request_id)
        except SlotsClosed:
            length = await self._error(send, 503, RECYCLING_MESSAGE, extra)
            self._log_line(scope, 503, start, length)
            return
        await self._respond(scope, send, outcome, extra, start)

    async def _respond(
        self, scope: Scope, send: Send, outcome: Any, extra: list[tuple[bytes, bytes]], start: float
    ) -> None:
        if outcome is TIMED_OUT:
            logger.error(
                "Encountered Exception: Script failed to finish execution within the allocated time: "
                f"{self._timeout_ms}ms"
            )
            length = await self._error(send, 500, self._timeout_body, extra, failed=True)
            self._log_line(scope, 500, start, length)
            return
        kind = outcome[0]
        if kind == OK_JSON:
            body = outcome[1]
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", _JSON),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-ms-run-function-failed", _FALSE),
                        (b"x-ms-run-fn-exec-ms", f"{outcome[2]:.3f}".encode()),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            self._log_line(scope, 200, start, len(body))
        elif kind == OK_RESPONSE:
            await self._send_response_object(scope, send, outcome[1], outcome[2], extra, start)
        elif kind == BAD_INPUT:
            length = await self._error(send, outcome[1], outcome[2], extra)
            self._log_line(scope, outcome[1], start, length)
        elif kind == RUN_FAILED:
            logger.error(f"Encountered Exception: {outcome[1]}")
            length = await self._error(send, 500, RUN_FAILED_MESSAGE, extra, failed=True)
            self._log_line(scope, 500, start, length)
        else:
            if kind == ENCODE_FAILED:
                logger.error(f"Encountered Exception: {outcome[1]}")
            else:
                logger.error(f"Encountered Exception: {outcome!r}")
            length = await self._error(send, 500, INTERNAL_ERROR_MESSAGE, extra)
            self._log_line(scope, 500, start, length)

    async def _send_response_object(
        self,
        scope: Scope,
        send: Send,
        response: Any,
        run_ms: float,
        extra: list[tuple[bytes, bytes]],
        start: float,
    ) -> None:
        logger.info("run() output is HTTP Response")
        try:
            view: ResponseView = view_response(response)
        except Exception:
            import traceback

            logger.error(f"Encountered Exception: {traceback.format_exc()}")
            length = await self._error(send, 500, INTERNAL_ERROR_MESSAGE, extra)
            self._log_line(scope, 500, start, length)
            return
        headers: Headers = view.headers
        if view.status >= 500:
            headers["x-ms-run-function-failed"] = True
        headers.add("x-ms-run-fn-exec-ms", f"{run_ms:.3f}")
        wire = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        wire = _merge_blueprint_headers(wire, extra)
        await send({"type": "http.response.start", "status": view.status, "headers": wire})
        if view.stream is None:
            body = view.body or b""
            await send({"type": "http.response.body", "body": body})
            self._log_line(scope, view.status, start, len(body))
            return
        self._log_line(scope, view.status, start, "N/A")
        await _stream(send, view.stream)


def _merge_blueprint_headers(
    wire: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """Add v1's after-request headers to a script's response: ids replace the script's own values."""
    replace = {b"x-request-id", b"x-ms-request-id", b"x-ms-client-request-id"}
    out = list(wire)
    for name, value in extra:
        if name in replace:
            for i, (k, _) in enumerate(out):
                if k == name:
                    out[i] = (name, value)
                    out[i + 1 :] = [(k2, v2) for k2, v2 in out[i + 1 :] if k2 != name]
                    break
            else:
                out.append((name, value))
        else:
            out.append((name, value))
    return out


_END = object()


async def _stream(send: Send, chunks: Any) -> None:
    """Send a run()'s generator chunk by chunk; the generator runs on the default thread pool."""
    loop = asyncio.get_running_loop()
    iterator = iter(chunks)
    try:
        while True:
            chunk = await loop.run_in_executor(None, next, iterator, _END)
            if chunk is _END:
                break
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except Exception:
        import traceback

        logger.error(f"Encountered Exception while streaming the response: {traceback.format_exc()}")
    await send({"type": "http.response.body", "body": b"", "more_body": False})


_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))


def _new_id() -> str:
    """A random version-4 UUID string; Mersenne Twister bits suffice for a request id (no syscall)."""
    h = f"{(getrandbits(128) & _VERSION_MASK) | _VERSION_4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
