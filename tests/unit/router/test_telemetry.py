"""Request telemetry: the pure span building, the JSON-lines file, and the real OpenTelemetry pipeline
writing to it (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelhost.router.telemetry import (
    BINARY_PLACEHOLDER,
    CAPTURE_LIMIT,
    RESPONSE_LIMIT,
    Capture,
    RequestRecord,
    RequestTelemetry,
    exception_of,
    format_duration,
    otlp_endpoint,
    response_value,
    span_attributes,
    span_exporter,
    span_name,
)
from modelhost.router.telemetry_file import (
    JsonLinesSpanExporter,
    RotatingJsonLines,
    request_summary,
    tail_records,
)
from modelhost.router.telemetry_pipe import TelemetryPipe

OK_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: rid-1\r\n"
           b"x-ms-request-id: client-1\r\nx-ms-client-request-id: client-1\r\ncontent-length: 11\r\n\r\n")


def record(**changes: object) -> RequestRecord:
    values: dict[str, object] = dict(
        service="iris", method="POST", path="/api/v1/service/iris/score", status=200, duration_s=0.0015,
        end_ns=1_700_000_000_000_000_000, replica="iris-1-abc", request_ids=("", "client-1", ""),
        host="127.0.0.1:8791", query="", response=OK_HEAD + b'{"a": 1.5}\n', error=None, log_response=True,
    )
    values.update(changes)
    return RequestRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ms", "expected"), [
    (0, "00:00:00.000"),
    (1.9, "00:00:00.001"),
    (61_234, "00:01:01.234"),
    (3_600_000 * 25 + 5, "1.01:00:00.005"),
], ids=["zero", "sub-ms", "minute", "day"])
def test_format_duration_is_v1s(ms: float, expected: str) -> None:
    assert format_duration(ms) == expected


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    (b'{"a": 1}', "application/json", json.dumps('{"a": 1}')),
    (b"plain", "text/plain; charset=utf-8", json.dumps("plain")),
    (b"\x89PNG\r\n", "image/png", json.dumps(BINARY_PLACEHOLDER)),
    (b"\xff\xfe\x00bad", "application/json", json.dumps(BINARY_PLACEHOLDER)),
    (b"no type", "", json.dumps("no type")),
], ids=["json", "text", "binary-type", "invalid-utf8", "no-content-type"])
def test_response_value(body: bytes, content_type: str, expected: str) -> None:
    assert response_value(body, content_type) == expected


def test_response_value_is_cut_at_64_kb_without_breaking_a_character() -> None:
    body = b"a" * (RESPONSE_LIMIT - 1) + "é".encode() + b"tail"  # é straddles the limit
    text = json.loads(response_value(body, "text/plain"))
    assert text == "a" * (RESPONSE_LIMIT - 1)


@pytest.mark.parametrize(("path", "name"), [
    ("/api/v1/service/iris/score", "/score"),
    ("/api/v1/service/iris/v2/models/m/infer", "/v2/models/m/infer"),
    ("/api/v1/service/iris", "/api/v1/service/iris"),
], ids=["score", "v2", "bare"])
def test_span_name_is_the_replica_path(path: str, name: str) -> None:
    assert span_name(path) == name


def test_success_attributes_are_v1s_with_the_replicas_ids() -> None:
    rec = record()
    headers = {"content-type": "application/json", "x-request-id": "rid-1",
               "x-ms-client-request-id": "client-1"}
    attributes = span_attributes(rec, headers, b'{"a": 1.5}', workspace="ws", scheme="http")
    assert attributes["Request Id"] == "rid-1"
    assert attributes["Client Request Id"] == "client-1"
    assert attributes["Response Value"] == json.dumps('{"a": 1.5}')
    assert attributes["resultCode"] == "200" and attributes["success"] is True
    assert attributes["url"] == "http://127.0.0.1:8791/api/v1/service/iris/score"
    assert attributes["name"] == "/score" and attributes["http_method"] == "POST"
    assert attributes["Workspace Name"] == "ws" and attributes["Service Name"] == "iris"
    assert attributes["duration"] == "00:00:00.001"
    assert str(attributes["start_time"]).endswith("Z")


def test_response_value_left_out_when_the_service_disables_it() -> None:
    attributes = span_attributes(record(log_response=False), {}, b"secret", workspace="", scheme="http")
    assert "Response Value" not in attributes


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, None),
    ({"status": 401, "error": "key refused"}, None),
    ({"status": 502}, ("RunFunctionError", "boom")),
    ({"status": 504, "error": "timed out after 500 ms"}, ("ScoringTimeout", "timed out after 500 ms")),
    ({"status": 503, "error": "overloaded"}, ("RouterError", "overloaded")),
    ({"status": 502, "error": "Replica closed connection before replying"},
     ("RouterError", "Replica closed connection before replying")),
], ids=["ok", "4xx", "run-failed", "timeout", "overloaded", "replica-gone"])
def test_exception_of(changes: dict[str, object], expected: tuple[str, str] | None) -> None:
    assert exception_of(record(**changes), b"boom") == expected


@pytest.mark.parametrize(("explicit", "env", "expected"), [
    (None, {}, None),
    ("http://c:4318/", {}, "http://c:4318/v1/traces"),
    (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
    (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"},
     "http://t/x"),
], ids=["none", "explicit", "standard", "signal-specific"])
def test_otlp_endpoint(explicit: str | None, env: dict[str, str], expected: str | None) -> None:
    assert otlp_endpoint(explicit, env) == expected


def test_capture_keeps_only_the_first_bytes() -> None:
    capture = Capture(b"h", b"")
    capture.add(b"x" * (CAPTURE_LIMIT - 10))
    capture.add(b"y" * 100)
    capture.add(b"z" * 100)
    assert len(capture.data) == CAPTURE_LIMIT and capture.data.endswith(b"y" * 10)


def test_pipeline_writes_spans_to_the_json_lines_file(tmp_path: Path) -> None:
    telemetry = RequestTelemetry(lambda: span_exporter(None, tmp_path), workspace="ws", interval_s=0.01)
    telemetry.start()
    telemetry.record(record())
    fail_head = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\n"
    telemetry.record(record(status=502, response=fail_head + b"boom", request_ids=("r2", "", "")))
    telemetry.close()
    lines = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [line["attributes"]["resultCode"] for line in lines] == ["200", "502"]
    ok, failed = lines
    assert ok["name"] == "/score" and ok["status"] == "UNSET" and ok["events"] == []
    assert ok["attributes"]["Request Id"] == "rid-1"
    assert failed["status"] == "ERROR"
    assert failed["events"][0]["attributes"]["exception.message"] == "boom"
    summary = request_summary(failed)
    assert summary["status"] == 502 and summary["error"] == "boom" and summary["request_id"] == "r2"


def test_no_exporter_drops_records_quietly() -> None:
    telemetry = RequestTelemetry(lambda: span_exporter(None, None))
    telemetry.record(record())
    telemetry.close()  # nothing configured: no thread, no file, no error


def test_rotation_and_tail_across_backups(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    file = RotatingJsonLines(path, max_bytes=200, backups=2)
    for i in range(30):
        file.write([{"type": "request", "i": i, "attributes": {"Service Name": "a" if i % 2 else "b"}}])
    assert path.with_name("requests.jsonl.1").exists() and path.with_name("requests.jsonl.2").exists()
    assert not path.with_name("requests.jsonl.3").exists()
    found = tail_records(path, 4, lambda r: r["attributes"]["Service Name"] == "a")
    assert [r["i"] for r in found] == [23, 25, 27, 29]


def test_span_exporter_file_export_reports_failure_when_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    exporter = JsonLinesSpanExporter(blocker / "requests.jsonl")
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert exporter.export([]) == SpanExportResult.FAILURE


@pytest.mark.parametrize(("insights", "log_response"), [(True, True), (True, False), (False, True)],
                         ids=["on", "on-no-response", "off"])
def test_routing_table_carries_the_telemetry_flags(insights: bool, log_response: bool) -> None:
    from modelhost.control.routing import RouteSource, build_table
    from modelhost.router.table import table_from_json, table_to_json
    from modelhost.spec.deployment import AksDeploymentConfig

    settings = AksDeploymentConfig(enable_app_insights=insights).resolved().runtime_settings()
    table = build_table([RouteSource("svc", settings, None, None, log_response=log_response)], 1)
    route = table.services["svc"]
    assert (route.telemetry, route.log_response) == (insights, log_response)
    assert table_from_json(table_to_json(table)).services["svc"] == route


def test_routing_table_rejects_a_non_boolean_telemetry_flag() -> None:
    from modelhost.errors import ValidationError
    from modelhost.router.table import table_from_json

    with pytest.raises(ValidationError, match=r"services\.svc\.telemetry='yes' is not true or false"):
        table_from_json({"services": {"svc": {"replicas": [], "telemetry": "yes"}}})


def test_pipe_exports_through_a_child_process(tmp_path: Path) -> None:
    """The router's side only pickles records down a pipe; a real child process builds and writes
    the spans (so span building never holds the router's GIL)."""
    pipe = TelemetryPipe(otlp_endpoint=None, telemetry_dir=tmp_path, workspace="ws", interval_s=0.01)
    pipe.start()
    for i in range(50):
        pipe.record(record(request_ids=(f"r{i}", "", "")))
    pipe.close(timeout_s=30)
    lines = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == 50 and pipe.dropped == 0
    assert lines[0]["attributes"]["Workspace Name"] == "ws"


def test_pipe_drops_and_counts_when_full(tmp_path: Path) -> None:
    pipe = TelemetryPipe(otlp_endpoint=None, telemetry_dir=tmp_path, max_pending=3)
    for _ in range(5):  # not started: nothing drains the queue
        pipe.record(record())
    assert pipe.dropped == 2
    pipe.close(timeout_s=30)
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 3
