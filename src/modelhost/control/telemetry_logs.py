"""The replicas' output as telemetry, and the init part of their logs.

The router sees requests, not a replica's stdout, so the control plane (which has the replica logs)
turns their output into OpenTelemetry log records for the services with telemetry on:
:class:`ReplicaLogTailer` polls ``<home>/logs/replicas/<service>/*.log`` (the local runtime's
documented layout) every ``interval_s``, reads the bytes added since its last look, and hands the
events to :class:`LogRecordSink`, which exports them with a batch processor (OTLP/HTTP when an
endpoint is configured, else ``<home>/telemetry/traces.jsonl``). What v1 sent to App Insights from
inside the container, we send from here:

- ``print()`` output (logger ``azmlinfsrv.print``) as INFO traces;
- ERROR and CRITICAL lines (a failed ``init()``, a ``run()`` exception) as ERROR records; with a
  traceback they carry ``exception.type``, ``exception.message`` and ``exception.stacktrace``.

Offsets survive a control-plane restart (``<home>/telemetry/tail-offsets.json``). A log file seen
for the first time is read from the start of the replica's latest boot (found in its last MB), so a
new replica's ``init()`` output is not missed and an old one's history is not replayed.

Pure helpers: :func:`parse_entries`, :func:`events_of`, :func:`init_output`,
:func:`log_response_enabled`.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from modelhost.errors import ModelhostError
from modelhost.scoring.worker import INIT_DONE_MARKER
from modelhost.spec.deployment import RuntimeSettings
from modelhost.spec.environment import EnvironmentSpec
from modelhost.store.records import ServiceRecord

__all__ = [
    "LogEntry",
    "LogRecordSink",
    "LogResponseLookup",
    "ReplicaEvent",
    "ReplicaLogTailer",
    "ReplicaTelemetry",
    "events_of",
    "init_output",
    "log_exporter",
    "log_response_enabled",
    "parse_entries",
    "request_records",
]

_log = logging.getLogger("modelhost.control")

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ([DIWEC]) \[(\d+)\] (\S+) - (.*)$")
_LEVELS = {"D": "DEBUG", "I": "INFO", "W": "WARNING", "E": "ERROR", "C": "CRITICAL"}
# The first line a scoring server writes (modelhost.scoring.__main__): a replica's boot starts there.
_BOOT = re.compile(r" azmlinfsrv - modelhost scoring server \S+ \(azureml-inference-server-http ")
_BOOT_BYTES = b" azmlinfsrv - modelhost scoring server "
_HEADER = re.compile(r"^==> (\S+) <==$")
_FIRST_LOOK_BYTES = 1 << 20
_READ_LIMIT = 4 << 20


@dataclass(frozen=True)
class LogEntry:
    """One v1-format log line with its continuation lines; ``time_ns`` is None for a foreign line."""

    time_ns: int | None
    level: str
    logger: str
    message: str


@dataclass(frozen=True)
class ReplicaEvent:
    """One log record to export."""

    service: str
    replica: str
    time_ns: int | None
    severity: str
    body: str
    logger: str
    exception: tuple[str, str, str] | None = None  # type, message, stacktrace


# -- pure ------------------------------------------------------------------------------------------

def _time_ns(stamp: str, millis: str) -> int:
    seconds = calendar.timegm(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))  # v1 logs in UTC
    return (seconds * 1000 + int(millis)) * 1_000_000


def parse_entries(lines: Iterable[str]) -> list[LogEntry]:
    """Group lines into entries: a line in v1's format starts one, any other line continues the
    previous one (a multi-line print, a traceback) or, at the start, stands alone."""
    entries: list[LogEntry] = []
    for line in lines:
        m = _LINE.match(line)
        if m:
            entries.append(LogEntry(_time_ns(m[1], m[2]), _LEVELS[m[3]], m[5], m[6]))
        elif entries:
            last = entries[-1]
            entries[-1] = LogEntry(last.time_ns, last.level, last.logger, f"{last.message}\n{line}")
        elif line.strip():
            entries.append(LogEntry(None, "INFO", "stdout", line))
    return entries


def _exception(message: str) -> tuple[str, str, str] | None:
    start = message.find("Traceback (most recent call last):")
    if start < 0:
        return None
    stack = message[start:].rstrip()
    last = stack.splitlines()[-1]
    kind, sep, text = last.partition(": ")
    if not sep or " " in kind:
        return "Exception", last, stack
    return kind, text, stack


def events_of(entries: Sequence[LogEntry], service: str, replica: str) -> list[ReplicaEvent]:
    """The entries that become records: print output (INFO) and ERROR/CRITICAL lines."""
    events = []
    for e in entries:
        if e.logger == "azmlinfsrv.print":
            events.append(ReplicaEvent(service, replica, e.time_ns, "INFO", e.message, e.logger))
        elif e.level in ("ERROR", "CRITICAL"):
            events.append(ReplicaEvent(service, replica, e.time_ns, e.level, e.message, e.logger,
                                       _exception(e.message)))
    return events


def _init_lines(lines: list[str]) -> list[str]:
    """From the latest boot's first line to the first init-done marker after it (inclusive); the
    whole boot when the marker is not there (init() still running, or failed)."""
    start = max((i for i, line in enumerate(lines) if _BOOT.search(line)), default=0)
    for i in range(start, len(lines)):
        if lines[i].endswith(INIT_DONE_MARKER):
            return lines[start:i + 1]
    return lines[start:]


def init_output(text: str) -> str:
    """The init part of a replica log text (each ``==> <replica> <==`` section of a multi-replica text
    cut the same way): what the server printed at start and ``init()`` printed, up to the marker
    the worker logs once ``init()`` returned."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            sections.append((line, []))
        else:
            sections[-1][1].append(line)
    out: list[str] = []
    for header, lines in sections:
        if header is None and not lines:
            continue
        if header is not None:
            out.append(header)
        out += _init_lines(lines)
    return "\n".join(out)


def log_response_enabled(env_vars: Mapping[str, str]) -> bool:
    """v1's ``APP_INSIGHTS_LOG_RESPONSE_ENABLED``: only ``false`` (any case) turns it off."""
    return env_vars.get("APP_INSIGHTS_LOG_RESPONSE_ENABLED", "true").strip().lower() != "false"


# -- I/O -----------------------------------------------------------------------------------------

class LogRecordSink:
    """Exports :class:`ReplicaEvent` values as OpenTelemetry log records through a batch processor.

    ``exporter`` makes the exporter when the first events arrive (None: nothing is configured, and
    events are dropped with one warning).
    """

    def __init__(self, exporter: Callable[[], Any], *, workspace: str = "",
                 schedule_delay_ms: int = 1000) -> None:
        self._make_exporter = exporter
        self.workspace = workspace
        self._schedule_delay_ms = schedule_delay_ms
        self._provider: Any = None
        self._logger: Any = None
        self._disabled = False

    def emit(self, events: Sequence[ReplicaEvent]) -> None:
        if not events or not self._ready():
            return
        from opentelemetry._logs import SeverityNumber

        for ev in events:
            attributes: dict[str, str] = {"Service Name": ev.service, "Replica Id": ev.replica,
                                          "Workspace Name": self.workspace, "logger": ev.logger}
            if ev.exception is not None:
                attributes.update({"exception.type": ev.exception[0], "exception.message": ev.exception[1],
                                   "exception.stacktrace": ev.exception[2]})
            self._logger.emit(timestamp=ev.time_ns, observed_timestamp=time.time_ns(), body=ev.body,
                              severity_text=ev.severity, severity_number=getattr(SeverityNumber, ev.severity),
                              attributes=attributes)

    def _ready(self) -> bool:
        if self._logger is not None:
            return True
        if self._disabled:
            return False
        exporter = self._make_exporter()
        if exporter is None:
            _log.warning("telemetry: no exporter configured for the replicas' log records; dropped")
            self._disabled = True
            return False
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        provider = LoggerProvider(resource=Resource.create({"service.name": "modelhost-replicas"}),
                                  shutdown_on_exit=False)
        provider.add_log_record_processor(
            BatchLogRecordProcessor(exporter, schedule_delay_millis=self._schedule_delay_ms))
        self._provider = provider
        self._logger = provider.get_logger("modelhost.replicas")
        return True

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def log_exporter(endpoint: str | None, directory: Path) -> Any:
    """OTLP/HTTP logs to ``endpoint`` when given, else ``directory/traces.jsonl``."""
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        return OTLPLogExporter(endpoint=endpoint, timeout=10)
    from modelhost.router.telemetry_file import TRACES_FILE, JsonLinesLogExporter

    return JsonLinesLogExporter(directory / TRACES_FILE)


@dataclass
class _File:
    offset: int
    pending: list[str] = field(default_factory=list)  # the last entry, held until it is complete


def _boot_offset(path: Path, size: int) -> int:
    """Where the replica's latest boot starts within the file's last MB; the end when not there."""
    start = max(0, size - _FIRST_LOOK_BYTES)
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return size
    at = data.rfind(_BOOT_BYTES)
    if at < 0:  # no boot line yet: a new replica's file is read whole, an old one's from its end
        return 0 if start == 0 else size
    return start + data.rfind(b"\n", 0, at) + 1


class ReplicaLogTailer:
    """Follows the log files of the services ``services()`` names (see the module docstring)."""

    def __init__(self, logs_dir: Path, services: Callable[[], Iterable[str]],
                 emit: Callable[[list[ReplicaEvent]], None], *, offsets_file: Path | None = None,
                 interval_s: float = 0.5) -> None:
        self._dir = logs_dir
        self._services = services
        self._emit = emit
        self._offsets_file = offsets_file
        self._interval_s = interval_s
        self._files: dict[str, _File] = {}
        self._since: dict[str, float] = {}  # when each service was first followed (wall clock)
        self._saved: dict[str, int] = self._load_offsets()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load_offsets(self) -> dict[str, int]:
        if self._offsets_file is None:
            return {}
        try:
            raw = json.loads(self._offsets_file.read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in raw.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelhost-log-tailer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.poll_once()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.poll_once()
            except Exception:  # the tailer must outlive one bad round
                _log.exception("telemetry: reading the replica logs failed")

    def poll_once(self) -> int:
        """Read what every followed file gained; returns the number of events emitted."""
        events: list[ReplicaEvent] = []
        for service in sorted(set(self._services())):
            self._since.setdefault(service, time.time())
            folder = self._dir / service
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.log")):
                events += self._read(service, path)
        if events:
            self._emit(events)
        self._save_offsets()
        return len(events)

    def _read(self, service: str, path: Path) -> list[ReplicaEvent]:
        key = str(path)
        try:
            st = path.stat()
        except OSError:
            return []
        size = st.st_size
        state = self._files.get(key)
        if state is None:
            saved = self._saved.get(key)
            if saved is not None and saved <= size:
                offset = saved
            elif st.st_mtime < self._since[service] - 1.0:  # quiet since before we followed it: no replay
                offset = size
            else:
                offset = _boot_offset(path, size)
            state = self._files[key] = _File(offset)
        if size < state.offset:  # truncated or replaced: start over
            state.offset, state.pending = 0, []
        new: list[str] = []
        if size > state.offset:
            with open(path, "rb") as f:
                f.seek(state.offset)
                data = f.read(min(size - state.offset, _READ_LIMIT))
            end = data.rfind(b"\n") + 1  # a line still being written waits for the next round
            state.offset += end
            new = data[:end].decode(errors="replace").splitlines()
        lines = [*state.pending, *new]
        cut = len(lines)
        if new:  # the last entry may still gain continuation lines (a traceback): hold it back a round
            cut = max((i for i, line in enumerate(lines) if _LINE.match(line)), default=0)
        state.pending = lines[cut:]
        return events_of(parse_entries(lines[:cut]), service, path.stem)

    def _save_offsets(self) -> None:
        if self._offsets_file is None:
            return
        # the held-back entry is re-read after a restart rather than lost
        current = {k: f.offset - sum(len(line.encode()) + 1 for line in f.pending)
                   for k, f in self._files.items()}
        if current == self._saved:
            return
        self._saved = current
        try:
            self._offsets_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._offsets_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(current), encoding="utf-8")
            os.replace(tmp, self._offsets_file)
        except OSError as exc:
            _log.warning("telemetry: could not save the log offsets: %s", exc)



class _EnvironmentStore(Protocol):
    def get_environment(self, name: str, version: int) -> Any: ...


class LogResponseLookup:
    """Whether a service's request spans carry the response value: v1's
    ``APP_INSIGHTS_LOG_RESPONSE_ENABLED`` among its environment's variables. Looked up only for
    services with telemetry on, once per environment version (versions never change)."""

    def __init__(self, store: _EnvironmentStore) -> None:
        self._store = store
        self._cache: dict[tuple[str, int], bool] = {}

    def __call__(self, record: ServiceRecord, settings: RuntimeSettings) -> bool:
        name, version = record.environment_name, record.environment_version
        if not settings.enable_app_insights or name is None or version is None:
            return True
        cached = self._cache.get((name, version))
        if cached is None:
            try:
                spec = EnvironmentSpec.from_dict(self._store.get_environment(name, version).spec)
                cached = log_response_enabled(dict(spec.env_vars))
            except ModelhostError:  # the environment is gone: keep v1's default
                cached = True
            self._cache[(name, version)] = cached
        return cached


class ReplicaTelemetry:
    """The control plane's share of telemetry: the tailer and its sink, started and closed together.

    Exports to the OTLP/HTTP endpoint of the standard ``OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT`` variables
    (read from ``env`` when the first record is exported), else to ``<telemetry_dir>/traces.jsonl``.
    """

    def __init__(self, telemetry_dir: Path, replica_logs_dir: Path, services: Callable[[], Iterable[str]],
                 *, workspace: str, env: Mapping[str, str], interval_s: float = 0.5) -> None:
        from modelhost.router.telemetry import otlp_endpoint

        self.sink = LogRecordSink(lambda: log_exporter(otlp_endpoint(None, env, "logs"), telemetry_dir),
                                  workspace=workspace)
        self.tailer = ReplicaLogTailer(replica_logs_dir, services, self.sink.emit, interval_s=interval_s,
                                       offsets_file=telemetry_dir / "tail-offsets.json")

    def start(self) -> None:
        self.tailer.start()

    def close(self) -> None:
        self.tailer.stop()
        self.sink.close()


def request_records(telemetry_dir: Path, service: str, tail: int) -> list[dict[str, Any]]:
    """The last ``tail`` request records of ``service`` (summaries, oldest first) from the router's
    ``requests.jsonl`` and its backups; empty when the router exports over OTLP instead."""
    from modelhost.router.telemetry_file import REQUESTS_FILE, request_summary, tail_records

    def mine(record: dict[str, Any]) -> bool:
        attributes = record.get("attributes") or {}
        return record.get("type") == "request" and attributes.get("Service Name") == service

    return [request_summary(r) for r in tail_records(telemetry_dir / REQUESTS_FILE, tail, mine)]
