"""Request telemetry: one SERVER span per scoring request of a service with telemetry on.

v1's scoring server sent App Insights a span per request from inside the container; here the router
produces it, so model environments need no telemetry dependency. The attributes are v1's
(``Request Id``, ``Client Request Id``, ``Response Value``, ``name``, ``url``, ``start_time``,
``duration``, ``resultCode``, ``success``, ``http_method``, ``Workspace Name``, ``Service Name``) plus
``Replica Id``. A failed ``run()`` (the replica's 500, answered 502), the router's timeout (504) and its
other 5xx answers add an ``exception`` event and an ERROR status.

Cost: the proxy checks one per-route flag; only for such services does it keep the first
:data:`CAPTURE_LIMIT` bytes of the response and hand a :class:`RequestRecord` to
:meth:`RequestTelemetry.record` (a deque append). A thread turns records into spans (parsing,
``json.dumps`` of the response value) and OpenTelemetry's batch processor exports them: OTLP/HTTP
when an endpoint is configured, else ``<home>/telemetry/requests.jsonl``. The event loop never
waits on an export.

Pure part: :func:`span_name`, :func:`span_attributes`, :func:`exception_of`, :func:`response_value`,
:func:`format_duration`, :func:`otlp_endpoint` (no I/O, no clock).
"""

from __future__ import annotations

import codecs
import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # opentelemetry is imported when the first record arrives, not with the router
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "BINARY_PLACEHOLDER",
    "CAPTURE_LIMIT",
    "RESPONSE_LIMIT",
    "Capture",
    "RequestRecord",
    "RequestTelemetry",
    "exception_of",
    "format_duration",
    "otlp_endpoint",
    "response_value",
    "span_attributes",
    "span_exporter",
    "span_name",
]

log = logging.getLogger("modelhost.router")

RESPONSE_LIMIT = 64 * 1024  # v1: "payloads logged to App Insights are limited to 64 KB"
CAPTURE_LIMIT = RESPONSE_LIMIT + 16 * 1024  # the response head and the first 64 KB of the body
BINARY_PLACEHOLDER = "Scoring request response payload is a non serializable object or raw binary"
_TEXTUAL = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded")


class Capture:
    """The first bytes of one response (head included) and the router's own error, if it gave one."""

    __slots__ = ("chunks", "error", "host", "query", "size")

    def __init__(self, host: bytes, query: bytes) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.host = host
        self.query = query
        self.error: str | None = None

    def add(self, data: bytes) -> None:
        room = CAPTURE_LIMIT - self.size
        if room > 0:
            self.chunks.append(data if len(data) <= room else data[:room])
        self.size += len(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the proxy knows when a scoring request ends; ``end_ns`` is wall-clock epoch nanoseconds.

    ``request_ids`` are the client's ``x-request-id``, ``x-ms-request-id``, ``x-ms-client-request-id``
    (empty when not sent); ``response`` holds the captured head and body start; ``error`` is the
    router's own message when it answered itself (504, 503, 502 ...).
    """

    service: str
    method: str
    path: str
    status: int
    duration_s: float
    end_ns: int
    replica: str
    request_ids: tuple[str, str, str]
    host: str
    query: str
    response: bytes
    error: str | None
    log_response: bool


# -- pure ------------------------------------------------------------------------------------------

def format_duration(ms: float) -> str:
    """v1's ``_calc_duration``: ``[d.]hh:mm:ss.fff``."""
    rest = int(ms)
    parts = []
    for unit in (1000, 60, 60, 24):
        parts.append(rest % unit)
        rest //= unit
    ms, s, m, h = parts
    text = f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"
    return f"{rest}.{text}" if rest else text


def _split_response(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Headers (lower-case names) and the body start of a captured response; chunked bodies decoded."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return {}, b""
    headers: dict[str, str] = {}
    for line in raw[:end].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    body = raw[end + 4:]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    return headers, body


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(data[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out)


def _text(body: bytes, content_type: str) -> str | None:
    """The body as text (cut at :data:`RESPONSE_LIMIT` bytes), None when it is binary."""
    if content_type and not any(t in content_type.lower() for t in _TEXTUAL):
        return None
    body = body[:RESPONSE_LIMIT]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data":
            return None
    # a character cut by the limit: leave it out instead of calling the payload binary
    return codecs.getincrementaldecoder("utf-8")().decode(body, final=False)


def response_value(body: bytes, content_type: str) -> str:
    """v1's ``Response Value``: the body text JSON-encoded (v1 kept that double encoding), or the
    placeholder for a binary payload."""
    text = _text(body, content_type)
    return json.dumps(BINARY_PLACEHOLDER if text is None else text)


def span_name(path: str) -> str:
    """The path as the replica sees it (``/score``, ``/swagger.json``, ``/v2/...``): v1's span name."""
    parts = path.split("/", 5)  # "", "api", "v1", "service", name, rest
    return "/" + parts[5] if len(parts) == 6 else path


def exception_of(record: RequestRecord, body: bytes) -> tuple[str, str] | None:
    """``(exception.type, exception.message)`` for a failed request, None otherwise."""
    if record.status == 502 and record.error is None:  # the replica's 500, answered 502: run() failed
        text = _text(body, "text/plain")
        return "RunFunctionError", (text if text is not None else BINARY_PLACEHOLDER) or "run() failed"
    if record.status == 504:
        return "ScoringTimeout", record.error or f"Request to service {record.service} timed out"
    if record.status >= 500:
        return "RouterError", record.error or f"HTTP {record.status}"
    return None


def span_attributes(record: RequestRecord, headers: Mapping[str, str], body: bytes, *,
                    workspace: str, scheme: str) -> dict[str, str | bool | float]:
    """v1's request attributes; ids as the replica (or the router) answered them."""
    rid, ms_rid, client_rid = record.request_ids
    start_ns = record.end_ns - int(record.duration_s * 1e9)
    duration_ms = record.duration_s * 1000
    url = f"{scheme}://{record.host}{record.path}" + (f"?{record.query}" if record.query else "")
    attributes: dict[str, str | bool | float] = {
        "Request Id": headers.get("x-request-id") or rid,
        "Client Request Id": headers.get("x-ms-client-request-id") or client_rid or ms_rid,
        "name": span_name(record.path),
        "url": url,
        "start_time": _iso(start_ns),
        "duration": format_duration(duration_ms),
        "duration_ms": round(duration_ms, 3),
        "resultCode": str(record.status),
        "success": record.status < 400,
        "http_method": record.method,
        "Workspace Name": workspace,
        "Service Name": record.service,
        "Replica Id": record.replica,
    }
    if record.log_response and record.error is None:
        attributes["Response Value"] = response_value(body, headers.get("content-type", ""))
    return attributes


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{rest // 1_000_000:03d}Z"


def otlp_endpoint(explicit: str | None, env: Mapping[str, str], signal: str = "traces") -> str | None:
    """The OTLP/HTTP URL for ``signal`` (``traces`` or ``logs``): the explicit base URL, else the
    standard ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (used as is) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
    (``/v1/<signal>`` appended); None when none is set (the JSON-lines file is used)."""
    if explicit:
        return explicit.rstrip("/") + f"/v1/{signal}"
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + f"/v1/{signal}" if base else None


# -- I/O -----------------------------------------------------------------------------------------

def span_exporter(endpoint: str | None, directory: Path | None) -> SpanExporter | None:
    """OTLP/HTTP to ``endpoint`` when given, else ``directory/requests.jsonl``; None when neither."""
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, timeout=10)
    if directory is not None:
        from modelhost.router.telemetry_file import REQUESTS_FILE, JsonLinesSpanExporter

        return JsonLinesSpanExporter(directory / REQUESTS_FILE)
    return None


class RecordQueue:
    """Records queued on the event loop and drained by a daemon thread every ``interval_s``.

    :meth:`record` is a deque append; beyond ``max_pending`` records waiting, new ones are dropped and
    counted (telemetry must not grow the router's memory when its consumer is stuck). Subclasses
    implement :meth:`_drain`; :meth:`close` stops the thread and drains once more.
    """

    def __init__(self, *, interval_s: float, max_pending: int, thread_name: str) -> None:
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._thread_name = thread_name
        self._pending: collections.deque[RequestRecord] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def record(self, rec: RequestRecord) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append(rec)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._drain()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._drain()
            except Exception:  # telemetry must never take the router down
                log.exception("request telemetry failed")

    def _drain(self) -> None:
        raise NotImplementedError


class RequestTelemetry(RecordQueue):
    """Turns :class:`RequestRecord` values into exported spans, off the event loop.

    :meth:`record` is called on the loop and only appends to a bounded deque (beyond ``max_pending``
    records waiting, new ones are dropped and counted: telemetry must not grow the router's memory
    when the exporter is stuck). A daemon thread drains it every ``interval_s``; the OpenTelemetry
    pipeline (and its import) is built when the first record arrives.
    """

    def __init__(self, exporter: Callable[[], SpanExporter | None], *, workspace: str = "",
                 scheme: str = "http", interval_s: float = 0.05, schedule_delay_ms: int = 1000,
                 max_pending: int = 10_000) -> None:
        self._make_exporter = exporter
        self.workspace = workspace
        self.scheme = scheme
        super().__init__(interval_s=interval_s, max_pending=max_pending, thread_name="modelhost-telemetry")
        self._schedule_delay_ms = schedule_delay_ms
        self._provider: Any = None
        self._tracer: Any = None
        self._disabled = False
        self._server_kind: Any = None
        self._error: Callable[[str], Any] = lambda kind: None

    def close(self, timeout_s: float = 5.0) -> None:
        """Export what is pending, then shut the pipeline down."""
        super().close(timeout_s)
        if self._provider is not None:
            self._provider.shutdown()

    def _drain(self) -> None:
        pending = self._pending
        if not pending or not self._ready():
            if self._disabled:
                pending.clear()
            return
        while pending:
            self._emit(pending.popleft())

    def _ready(self) -> bool:
        if self._tracer is not None:
            return True
        if self._disabled:
            return False
        exporter = self._make_exporter()
        if exporter is None:
            log.warning("request telemetry is on for a service but no exporter is configured "
                        "(--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT or --telemetry-dir): records dropped")
            self._disabled = True
            return False
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "modelhost-router"}),
                                  shutdown_on_exit=False)
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=self._schedule_delay_ms))
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._server_kind = SpanKind.SERVER
        self._error = lambda kind: Status(StatusCode.ERROR, kind)
        self._provider = provider
        self._tracer = provider.get_tracer("modelhost.router")
        return True

    def _emit(self, rec: RequestRecord) -> None:
        headers, body = _split_response(rec.response)
        attributes = span_attributes(rec, headers, body, workspace=self.workspace, scheme=self.scheme)
        start_ns = rec.end_ns - int(rec.duration_s * 1e9)
        span = self._tracer.start_span(span_name(rec.path), kind=self._server_kind, start_time=start_ns,
                                       attributes=attributes)
        failure = exception_of(rec, body)
        if failure is not None:
            kind, message = failure
            span.add_event("exception", {"exception.type": kind, "exception.message": message,
                                         "Request Id": str(attributes["Request Id"]),
                                         "Client Request Id": str(attributes["Client Request Id"])},
                           timestamp=rec.end_ns)
            span.set_status(self._error(kind))
        span.end(end_time=rec.end_ns)
