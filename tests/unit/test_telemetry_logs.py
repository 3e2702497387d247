"""The replicas' output as log records, and the init part of a replica log (control.telemetry_logs)."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest

from modelhost.control.telemetry_logs import (
    LogRecordSink,
    ReplicaEvent,
    ReplicaLogTailer,
    events_of,
    init_output,
    log_exporter,
    log_response_enabled,
    parse_entries,
)
from modelhost.scoring.worker import INIT_DONE_MARKER

BOOT = ("2026-11-23 16:00:00,001 I [10] azmlinfsrv - modelhost scoring server 0.1.0 "
        "(azureml-inference-server-http 1.5.1 compatible)")
MARK = f"2026-11-23 16:00:01,000 I [11] azmlinfsrv - {INIT_DONE_MARKER}"


def line(message: str, logger: str = "azmlinfsrv.print", level: str = "I", ms: int = 500) -> str:
    return f"2026-11-23 16:00:00,{ms:03d} {level} [11] {logger} - {message}"


def test_entries_group_continuation_lines() -> None:
    entries = parse_entries(["stray first", line("one"), "two", line("three", "azmlinfsrv", "E")])
    assert [(e.logger, e.message, e.level) for e in entries] == [
        ("stdout", "stray first", "INFO"),
        ("azmlinfsrv.print", "one\ntwo", "INFO"),
        ("azmlinfsrv", "three", "ERROR"),
    ]
    expected_s = calendar.timegm((2026, 11, 23, 16, 0, 0, 0, 0, 0))  # v1 lines are UTC
    assert entries[1].time_ns == (expected_s * 1000 + 500) * 1_000_000


def test_events_are_prints_and_errors_with_their_exception() -> None:
    trace = ["Encountered Exception Traceback (most recent call last):", '  File "score.py", line 3',
             "ValueError: model file missing"]
    entries = parse_entries([line("hello"), line("Invoking user's init function", "azmlinfsrv"),
                             line(trace[0], "azmlinfsrv", "E"), *trace[1:]])
    events = events_of(entries, "svc", "svc-1-abc")
    assert [(e.severity, e.body.splitlines()[0]) for e in events] == [("INFO", "hello"), ("ERROR", trace[0])]
    assert events[1].exception is not None
    kind, message, stack = events[1].exception
    assert (kind, message) == ("ValueError", "model file missing") and stack.startswith("Traceback")


@pytest.mark.parametrize(("lines", "expected"), [
    ([BOOT, line("in init"), MARK, line("in run")], [BOOT, line("in init"), MARK]),
    ([BOOT, line("old init"), MARK, line("crash"), BOOT, line("new init"), MARK, line("run")],
     [BOOT, line("new init"), MARK]),
    ([BOOT, line("init failing"), line("boom", "azmlinfsrv", "E")],
     [BOOT, line("init failing"), line("boom", "azmlinfsrv", "E")]),
    ([line("cut by tail"), MARK, line("run")], [line("cut by tail"), MARK]),
], ids=["first-boot", "latest-boot", "no-marker", "boot-line-cut"])
def test_init_output(lines: list[str], expected: list[str]) -> None:
    assert init_output("\n".join(lines)) == "\n".join(expected)


def test_init_output_per_replica_section() -> None:
    text = "\n".join(["==> a <==", BOOT, line("a init"), MARK, line("a run"),
                      "==> b <==", BOOT, line("b init"), MARK, line("b run")])
    assert init_output(text).splitlines() == ["==> a <==", BOOT, line("a init"), MARK,
                                              "==> b <==", BOOT, line("b init"), MARK]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, True), ({"APP_INSIGHTS_LOG_RESPONSE_ENABLED": "false"}, False),
    ({"APP_INSIGHTS_LOG_RESPONSE_ENABLED": "FALSE "}, False),
    ({"APP_INSIGHTS_LOG_RESPONSE_ENABLED": "true"}, True),
], ids=["unset", "false", "false-case", "true"])
def test_log_response_enabled(env: dict[str, str], expected: bool) -> None:
    assert log_response_enabled(env) is expected


def test_tailer_follows_new_lines_and_holds_an_unfinished_entry(tmp_path: Path) -> None:
    logs = tmp_path / "replicas"
    (logs / "svc").mkdir(parents=True)
    log = logs / "svc" / "svc-1-abc.log"
    got: list[ReplicaEvent] = []
    tailer = ReplicaLogTailer(logs, lambda: ["svc"], got.extend, offsets_file=tmp_path / "offsets.json")
    first = [BOOT, line("printed in init"), MARK, line("Traceback follows", "azmlinfsrv", "E")]
    log.write_text("\n".join(first) + "\n")
    tailer.poll_once()
    assert [e.body for e in got] == ["printed in init"]  # the error entry may still grow: held back
    with open(log, "a") as f:
        f.write("Traceback (most recent call last):\nKeyError: 'x'\n" + line("printed in run") + "\npartial")
    tailer.poll_once()
    assert [e.body.splitlines()[0] for e in got] == ["printed in init", "Traceback follows"]
    assert got[1].exception is not None and got[1].exception[0] == "KeyError"
    assert got[1].replica == "svc-1-abc"
    tailer.poll_once()  # nothing new: the held entry is complete now
    assert got[-1].body == "printed in run"
    saved = json.loads((tmp_path / "offsets.json").read_text())
    assert saved[str(log)] == len(log.read_bytes()) - len("partial")


def test_tailer_does_not_replay_a_quiet_old_file(tmp_path: Path) -> None:
    import os

    logs = tmp_path / "replicas"
    (logs / "svc").mkdir(parents=True)
    log = logs / "svc" / "old.log"
    log.write_text("\n".join([BOOT, line("long ago")]) + "\n")
    os.utime(log, (1, 1))
    got: list[ReplicaEvent] = []
    tailer = ReplicaLogTailer(logs, lambda: ["svc"], got.extend)
    tailer.poll_once()
    with open(log, "a") as f:
        f.write(line("new") + "\n" + line("newer") + "\n")
    tailer.poll_once()
    assert [e.body for e in got] == ["new"]  # "newer" waits: it may still gain lines


def test_sink_writes_traces_jsonl(tmp_path: Path) -> None:
    sink = LogRecordSink(lambda: log_exporter(None, tmp_path), workspace="ws")
    sink.emit([ReplicaEvent("svc", "svc-1", 1_700_000_000_000_000_000, "INFO", "hello", "azmlinfsrv.print"),
               ReplicaEvent("svc", "svc-1", None, "ERROR", "bad", "azmlinfsrv",
                            ("KeyError", "'x'", "Traceback"))])
    sink.close()
    records = [json.loads(x) for x in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert [(r["type"], r["severity"], r["body"]) for r in records] == [
        ("trace", "INFO", "hello"), ("exception", "ERROR", "bad")]
    assert records[0]["attributes"]["Service Name"] == "svc" and records[0]["time"].startswith("2023-11-14")
    assert records[1]["attributes"]["exception.type"] == "KeyError"


def test_log_response_lookup_reads_the_environment_from_a_real_store(tmp_path: Path) -> None:
    import dataclasses
    from datetime import UTC, datetime

    from modelhost.control.telemetry_logs import LogResponseLookup
    from modelhost.spec.deployment import AksDeploymentConfig
    from modelhost.spec.environment import EnvironmentSpec
    from modelhost.store.metadata import Store
    from modelhost.store.records import ServiceRecord

    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        spec = EnvironmentSpec(name="quiet", python=None, requirements=(), inherit=True,
                               env_vars=(("APP_INSIGHTS_LOG_RESPONSE_ENABLED", "false"),))
        env = store.save_environment(name="quiet", spec=spec.to_dict(), spec_hash="h1")
        now = datetime.now(UTC)
        record = ServiceRecord("svc", "AKS", {}, (), "score.py", "src", None, "quiet", env.version, 1,
                               "Healthy", None, now, now, None)
        on = AksDeploymentConfig(enable_app_insights=True).resolved().runtime_settings()
        off = dataclasses.replace(on, enable_app_insights=False)
        lookup = LogResponseLookup(store)
        assert lookup(record, on) is False
        assert lookup(record, off) is True  # telemetry off: not even looked up
        assert lookup(dataclasses.replace(record, environment_name=None), on) is True  # inherited: v1 default
        assert lookup(dataclasses.replace(record, environment_version=99), on) is True  # gone: v1 default
    finally:
        store.close()
