"""Request telemetry end to end: a real control plane, router and replicas; spans and log records
read back from the JSON-lines files, the control API, the CLI and a real OTLP/HTTP receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.deploy.conftest import Plane, aks, make_plane
from tests.support.net import wait_until

ON, OFF = "tele-on", "tele-off"
SCRIPT = textwrap.dedent("""
    import json, time

    def init():
        print("INIT-PRINT-MARK from init")

    def run(raw):
        data = json.loads(raw)
        print(f"RUN-PRINT-{data.get('tag')}")
        if data.get("sleep"):
            time.sleep(float(data["sleep"]))
        if data.get("fail"):
            raise RuntimeError("asked to fail " + str(data.get("tag")))
        return {"echo": data.get("tag")}
""")


@pytest.fixture(scope="module")
def svc(shared: Plane) -> tuple[Plane, dict[str, str]]:
    keys = {}
    for name, on in ((ON, True), (OFF, False)):
        config = aks(enable_app_insights=on, scoring_timeout_ms=1500)
        op = shared.deploy(name, SCRIPT, config=config)
        assert op["state"] == "Succeeded", op["error"]
        keys[name] = shared.keys(name)[0]
    return shared, keys


def _post(plane: Plane, key: str, name: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(plane.score_url(name), json=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}", **headers})


def _records(plane: Plane, file: str) -> list[dict[str, Any]]:
    path = plane.settings.home / "telemetry" / file
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _request(plane: Plane, client_id: str) -> dict[str, Any]:
    """The span whose Client Request Id is ``client_id``, once the router exported it."""
    found: list[dict[str, Any]] = []

    def exported() -> bool:
        found[:] = [r for r in _records(plane, "requests.jsonl")
                    if r["attributes"].get("Client Request Id") == client_id]
        return bool(found)

    wait_until(exported, 20, 0.1, what=f"request span of {client_id}")
    return found[0]


def test_success_span_has_v1_attributes_and_the_response(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    r = _post(plane, keys[ON], ON, {"tag": "ok1"}, **{"x-ms-request-id": "client-ok-1"})
    assert r.status_code == 200
    span = _request(plane, "client-ok-1")
    a = span["attributes"]
    assert a["Request Id"] == r.headers["x-request-id"]
    assert a["Response Value"] == json.dumps(r.text)
    assert (a["resultCode"], a["success"], a["http_method"], a["name"]) == ("200", True, "POST", "/score")
    assert a["Service Name"] == ON and a["Workspace Name"] == plane.settings.home.name
    assert a["url"].endswith(f"/api/v1/service/{ON}/score")
    assert span["events"] == [] and span["status"] != "ERROR"


def test_run_failure_is_an_exception_event(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    r = _post(plane, keys[ON], ON, {"tag": "f1", "fail": True}, **{"x-ms-client-request-id": "client-fail-1"})
    assert r.status_code == 502
    span = _request(plane, "client-fail-1")
    assert span["status"] == "ERROR" and span["attributes"]["success"] is False
    (event,) = span["events"]
    assert event["name"] == "exception" and event["attributes"]["exception.type"] == "RunFunctionError"
    # the replica's 500 body, as the client got it (v1's generic message; the traceback is in the log)
    assert event["attributes"]["exception.message"] == r.text


def test_timeout_is_an_exception_event(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    r = _post(plane, keys[ON], ON, {"tag": "slow", "sleep": 2.5},
              **{"x-ms-client-request-id": "client-slow-1"})
    assert r.status_code == 504
    span = _request(plane, "client-slow-1")
    assert span["attributes"]["resultCode"] == "504"
    assert span["events"][0]["attributes"]["exception.type"] == "ScoringTimeout"
    assert "timed out after 1500 ms" in span["events"][0]["attributes"]["exception.message"]


def test_print_output_becomes_traces(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    assert _post(plane, keys[ON], ON, {"tag": "trace1"}).status_code == 200

    def bodies() -> list[str]:
        return [r["body"] for r in _records(plane, "traces.jsonl") if r["attributes"]["Service Name"] == ON]

    wait_until(lambda: "RUN-PRINT-trace1" in bodies(), 20, 0.2, what="run()'s print as a trace")
    assert "INIT-PRINT-MARK from init" in bodies()
    trace = next(r for r in _records(plane, "traces.jsonl") if r["body"] == "RUN-PRINT-trace1")
    assert trace["type"] == "trace" and trace["severity"] == "INFO"
    assert trace["attributes"]["Replica Id"].startswith(f"{ON}-")


def test_run_exception_is_an_error_record(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    assert _post(plane, keys[ON], ON, {"tag": "f2", "fail": True}).status_code == 502

    def errors() -> list[dict[str, Any]]:
        return [r for r in _records(plane, "traces.jsonl")
                if r["type"] == "exception" and "asked to fail f2" in r["body"]]

    wait_until(lambda: bool(errors()), 20, 0.2, what="run()'s exception as a record")
    assert errors()[0]["attributes"]["exception.type"] == "RuntimeError"


def test_cli_shows_the_request_records(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    assert _post(plane, keys[ON], ON, {"tag": "cli-f", "fail": True}).status_code == 502
    r = _post(plane, keys[ON], ON, {"tag": "cli"}, **{"x-ms-client-request-id": "client-cli-1"})
    _request(plane, "client-cli-1")
    cli = [sys.executable, "-c", "from modelhost.cli import main; main()",
           "service", "logs", ON, "--requests"]
    out = subprocess.run([*cli, "--json", "--tail", "50"], env=plane.env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert records[-1]["request_id"] == r.headers["x-request-id"] and records[-1]["status"] == 200
    assert {rec["status"] for rec in records} >= {200, 502}
    assert all(rec["service"] == ON for rec in records)
    failed = next(rec for rec in records if rec["status"] == 502)
    assert "unexpected error occurred in scoring script" in failed["error"]
    text = subprocess.run([*cli, "--tail", "1"], env=plane.env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    (line,) = text.stdout.splitlines()
    assert r.headers["x-request-id"] in line and " 200 " in line


def test_init_logs_hold_init_output_not_runs(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    assert _post(plane, keys[ON], ON, {"tag": "after-init"}).status_code == 200
    wait_until(lambda: "RUN-PRINT-after-init" in _logs(plane), 10, 0.2, what="run()'s print in the log")
    init = plane.client.get(f"/api/v1/services/{ON}/logs", params={"init": "true"}).json()["content"]
    assert "INIT-PRINT-MARK from init" in init and "Invoking user's init function" in init
    assert "RUN-PRINT" not in init
    assert init.rstrip().endswith("init() done, ready for requests")
    assert "RUN-PRINT-after-init" in _logs(plane)  # the whole log has it; the init part does not


def _logs(plane: Plane) -> str:
    return str(plane.client.get(f"/api/v1/services/{ON}/logs").json()["content"])


def test_telemetry_off_records_nothing(svc: tuple[Plane, dict[str, str]]) -> None:
    plane, keys = svc
    r = _post(plane, keys[OFF], OFF, {"tag": "off"}, **{"x-ms-client-request-id": "client-off-1"})
    assert r.status_code == 200
    _post(plane, keys[ON], ON, {"tag": "sentinel"}, **{"x-ms-client-request-id": "client-sentinel"})
    _request(plane, "client-sentinel")  # a later request of the other service is exported: so would this
    assert not [x for x in _records(plane, "requests.jsonl") if x["attributes"]["Service Name"] == OFF]
    assert not [x for x in _records(plane, "traces.jsonl") if x["attributes"]["Service Name"] == OFF]
    assert plane.client.get(f"/api/v1/services/{OFF}/requests").json()["requests"] == []


def test_update_switches_telemetry_on(svc: tuple[Plane, dict[str, str]]) -> None:
    plane = svc[0]
    name = "tele-update"
    assert plane.deploy(name, SCRIPT, config=aks())["state"] == "Succeeded"
    key = plane.keys(name)[0]
    r = plane.client.patch(f"/api/v1/services/{name}", json={"changes": {"enable_app_insights": True}})
    assert r.status_code == 202, r.text
    assert plane.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    assert plane.service(name)["appInsightsEnabled"] is True
    r = _post(plane, key, name, {"tag": "upd"}, **{"x-ms-client-request-id": "client-upd-1"})
    assert r.status_code == 200
    assert _request(plane, "client-upd-1")["attributes"]["Service Name"] == name


# -- OTLP/HTTP ------------------------------------------------------------------------------------

class _Receiver(BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector (none is installed here): counts and decodes protobuf payloads."""

    payloads: dict[str, list[bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-type") == "application/x-protobuf":
            self.server.payloads.setdefault(self.path, []).append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.payloads = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_otlp_export_when_an_endpoint_is_set(tmp_path: Path, machine_cache: Path,
                                             collector: ThreadingHTTPServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_address[1]}")
    plane = make_plane(tmp_path, machine_cache)
    plane.start()  # the control plane, and the router it starts, inherit the variable
    try:
        op = plane.deploy("otlp-svc", SCRIPT, config=aks(enable_app_insights=True))
        assert op["state"] == "Succeeded", op["error"]
        key = plane.keys("otlp-svc")[0]
        assert _post(plane, key, "otlp-svc", {"tag": "otlp"}).status_code == 200
        payloads: dict[str, list[bytes]] = collector.payloads  # type: ignore[attr-defined]

        def spans() -> list[Any]:
            out = []
            for raw in payloads.get("/v1/traces", []):
                req = ExportTraceServiceRequest.FromString(raw)
                out += [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
            return out

        wait_until(lambda: bool(spans()), 20, 0.2, what="a span at the OTLP receiver")
        attributes = {kv.key: kv.value for kv in spans()[0].attributes}
        assert attributes["Service Name"].string_value == "otlp-svc"
        assert attributes["resultCode"].string_value == "200"

        def log_bodies() -> list[str]:
            out = []
            for raw in payloads.get("/v1/logs", []):
                req = ExportLogsServiceRequest.FromString(raw)
                out += [r.body.string_value for rl in req.resource_logs for sl in rl.scope_logs
                        for r in sl.log_records]
            return out

        wait_until(lambda: "RUN-PRINT-otlp" in log_bodies(), 20, 0.2, what="a log record at the receiver")
        assert not (plane.settings.home / "telemetry" / "requests.jsonl").exists()
    finally:
        plane.stop_all()
