"""Request telemetry out of the router's process: records go down a pipe to an exporter child.

Building an OpenTelemetry span costs ~250 Python calls (50-150 µs); done in a thread of the router
it holds the GIL the event loop needs, and a service with telemetry on lost a third of its
throughput. :class:`TelemetryPipe` keeps only the cheap part in the router: :meth:`record` appends
to a bounded deque on the loop, and a thread sends batches (pickled, length-prefixed) to a child
process, ``python -m modelhost.router.telemetry_pipe``, which runs :class:`RequestTelemetry` (span
building and export) on its own core. A child that dies is restarted on the next batch (at most
once a second); when the pipe is full, the thread waits, the deque fills, and further records are
dropped and counted: telemetry never slows scoring down. The pipe is private to the two processes,
so pickle is safe here.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from modelhost.router.telemetry import (
    RecordQueue,
    RequestRecord,
    RequestTelemetry,
    otlp_endpoint,
    span_exporter,
)

__all__ = ["TelemetryPipe", "main"]

log = logging.getLogger("modelhost.router")

_FRAME = struct.Struct("!I")
_RESTART_INTERVAL_S = 1.0


class TelemetryPipe(RecordQueue):
    """The router's side: the same ``record``/``start``/``close``/``dropped`` as RequestTelemetry."""

    def __init__(self, *, otlp_endpoint: str | None, telemetry_dir: Path | None, workspace: str = "",
                 scheme: str = "http", interval_s: float = 0.05, max_pending: int = 10_000) -> None:
        super().__init__(interval_s=interval_s, max_pending=max_pending,
                         thread_name="modelhost-telemetry-pipe")
        self._argv = [sys.executable, "-m", "modelhost.router.telemetry_pipe", "--workspace", workspace,
                      "--scheme", scheme]
        if otlp_endpoint:
            self._argv += ["--otlp-endpoint", otlp_endpoint]
        if telemetry_dir is not None:
            self._argv += ["--telemetry-dir", str(telemetry_dir)]
        self._child: subprocess.Popen[bytes] | None = None
        self._last_start = 0.0

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is pending, close the pipe and let the child export and exit."""
        super().close(timeout_s)
        child, self._child = self._child, None
        if child is not None:
            assert child.stdin is not None
            try:
                child.stdin.close()
                child.wait(timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                child.kill()
                child.wait()

    def _drain(self) -> None:
        self._send_pending()

    def _send_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        stdin = self._stdin()
        if stdin is None:
            return
        batch = []
        while pending:
            batch.append(pending.popleft())
        payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            stdin.write(_FRAME.pack(len(payload)) + payload)
            stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.dropped += len(batch)
            log.warning("request telemetry: the exporter process exited; %d record(s) lost", len(batch))
            self._child = None

    def _stdin(self) -> IO[bytes] | None:
        child = self._child
        if child is not None and child.poll() is None:
            return child.stdin
        now = time.monotonic()
        if now - self._last_start < _RESTART_INTERVAL_S:
            return None
        self._last_start = now
        if child is not None:
            log.warning("request telemetry: the exporter process exited (status %s); restarting it",
                        child.returncode)
        self._child = subprocess.Popen(self._argv, stdin=subprocess.PIPE, close_fds=True)
        return self._child.stdin


def _frames(stream: IO[bytes]) -> list[RequestRecord] | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    records: list[RequestRecord] = pickle.loads(body)
    return records


def main(argv: list[str] | None = None) -> int:
    """The exporter child: read record batches from stdin until it closes, export every record."""
    p = argparse.ArgumentParser(prog="python -m modelhost.router.telemetry_pipe")
    p.add_argument("--otlp-endpoint")
    p.add_argument("--telemetry-dir", type=Path)
    p.add_argument("--workspace", default="")
    p.add_argument("--scheme", default="http")
    a = p.parse_args(argv)
    # The router ends us by closing the pipe (EOF), after its last records: a signal to the whole
    # process group must not cut the export of what is already in the pipe.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    endpoint = otlp_endpoint(a.otlp_endpoint, os.environ)
    telemetry = RequestTelemetry(lambda: span_exporter(endpoint, a.telemetry_dir), workspace=a.workspace,
                                 scheme=a.scheme)
    telemetry.start()
    try:
        while (batch := _frames(sys.stdin.buffer)) is not None:
            for rec in batch:
                telemetry.record(rec)
    finally:
        telemetry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
