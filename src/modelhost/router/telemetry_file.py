"""Telemetry as JSON lines on disk: the exporters used when no OTLP endpoint is configured, and the reader
behind ``modelhost service logs --requests``.

Files live in ``<home>/telemetry/``: ``requests.jsonl`` (the router's request spans) and ``traces.jsonl``
(the control plane's log records of the replicas' output). Each is rotated by size (default 50 MB,
3 backups: ``requests.jsonl.1`` is the newest backup). One object per line::

    {"type": "request", "time": "2026-11-23T16:01:45.123456Z", "name": "/score", "duration_ms": 1.2,
     "status": "OK", "trace_id": "...", "span_id": "...", "attributes": {...v1 attributes...},
     "events": [{"name": "exception", "time": "...", "attributes": {"exception.type": ..., ...}}]}
    {"type": "trace", "time": "...", "severity": "INFO", "body": "printed text", "attributes": {...}}

Exporters run on the OpenTelemetry batch processor's thread, never on the router's event loop.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "REQUESTS_FILE",
    "TRACES_FILE",
    "JsonLinesLogExporter",
    "JsonLinesSpanExporter",
    "RotatingJsonLines",
    "iso_time",
    "log_to_json",
    "request_summary",
    "span_to_json",
    "tail_records",
]

REQUESTS_FILE = "requests.jsonl"
TRACES_FILE = "traces.jsonl"
MAX_BYTES = 50 * 1024 * 1024
BACKUPS = 3
_BLOCK = 64 * 1024


def iso_time(ns: int | None) -> str | None:
    """Epoch nanoseconds as ISO 8601 UTC with a ``Z`` (v1's ``start_time`` form)."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def span_to_json(span: ReadableSpan) -> dict[str, Any]:
    """One request span as the line ``requests.jsonl`` holds."""
    ctx = span.context
    start, end = span.start_time or 0, span.end_time or 0
    return {
        "type": "request",
        "time": iso_time(start),
        "name": span.name,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": span.status.status_code.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {"name": e.name, "time": iso_time(e.timestamp),
             "attributes": {k: _plain(v) for k, v in (e.attributes or {}).items()}}
            for e in span.events
        ],
    }


def log_to_json(record: ReadableLogRecord) -> dict[str, Any]:
    """One log record as the line ``traces.jsonl`` holds (``type`` is ``exception`` for errors)."""
    rec = record.log_record
    attributes = {k: _plain(v) for k, v in (rec.attributes or {}).items()}
    return {
        "type": "exception" if "exception.type" in attributes else "trace",
        "time": iso_time(rec.timestamp),
        "severity": rec.severity_text,
        "body": rec.body,
        "attributes": attributes,
    }


class RotatingJsonLines:
    """Appends lines to ``path``; past ``max_bytes`` the file becomes ``path.1`` (``.1`` -> ``.2`` ...)."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()

    def write(self, objects: Sequence[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(o, default=str, separators=(",", ":")) + "\n" for o in objects)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(text) > self.max_bytes:
                self._rotate()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)


class JsonLinesSpanExporter(SpanExporter):
    """Spans to a rotating JSON-lines file (see the module docstring)."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.file = RotatingJsonLines(path, max_bytes=max_bytes, backups=backups)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.file.write([span_to_json(s) for s in spans])
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class JsonLinesLogExporter(LogRecordExporter):
    """Log records to a rotating JSON-lines file (see the module docstring)."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.file = RotatingJsonLines(path, max_bytes=max_bytes, backups=backups)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            self.file.write([log_to_json(r) for r in batch])
        except OSError:
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The file's lines, last first, read in blocks from the end (a 50 MB file is not read whole)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - a generator: closed by the with below
    except OSError:
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            parts = (f.read(step) + rest).split(b"\n")
            rest = parts[0]
            for line in reversed(parts[1:]):
                if line:
                    yield line
        if rest:
            yield rest


def tail_records(path: Path, tail: int, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The last ``tail`` records that ``keep`` accepts, oldest first, from ``path`` and its backups."""
    found: list[dict[str, Any]] = []
    files = [path, *(path.with_name(f"{path.name}.{i}") for i in range(1, BACKUPS + 1))]
    for file in files:
        for line in _lines_backwards(file):
            if len(found) >= tail:
                return found[::-1]
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(record, dict) and keep(record):
                found.append(record)
    return found[::-1]


def request_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What ``modelhost service logs --requests`` shows of one request record."""
    attributes = record.get("attributes") or {}
    error = next(
        (str((e.get("attributes") or {}).get("exception.message", "")) for e in record.get("events") or ()
         if e.get("name") == "exception"),
        None,
    )
    status = attributes.get("resultCode")
    return {
        "time": record.get("time"),
        "service": attributes.get("Service Name"),
        "request_id": attributes.get("Request Id"),
        "client_request_id": attributes.get("Client Request Id"),
        "method": attributes.get("http_method"),
        "status": int(status) if isinstance(status, str) and status.isdigit() else status,
        "duration_ms": record.get("duration_ms"),
        "replica": attributes.get("Replica Id"),
        "error": error,
    }
