"""Kubernetes replicas' output as local log files, so telemetry's log records exist for them.

The telemetry tailer (:mod:`.telemetry_logs`) turns ``<home>/logs/replicas/<service>/*.log`` into
log records; local replicas write there, pods cannot. :class:`PodLogMirror` follows ``pods/log`` of
each running scoring container of the services ``services()`` names (those with telemetry on) and
appends the bytes to ``<logs_dir>/<service>/<pod>.log``, where the tailer finds them unchanged.

Why the control plane follows the log rather than a sidecar uploading it: the scoring server already
writes its lines to stdout, which the kubelet keeps and ``pods/log`` serves; following it needs no
change to the scoring server (no second copy of every line in the pod), no second upload route and no
new permission (``pods/log`` is in the attach check already). What it costs: one streaming request
per pod while telemetry is on; lines a pod writes while the control plane is down are read when it
comes back, as long as the container still runs.

Each followed container instance (pod uid + restart count) records how many bytes it mirrored in
``<logs_dir>/<service>/.mirror-offsets.json``, so a control-plane restart, or a stream the API server
cut, resumes without writing a line twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from modelhost.errors import ModelhostError

__all__ = ["LogStream", "PodLogMirror"]

_log = logging.getLogger("modelhost.control")

# (pod name, container instance key, opener of the followed log as byte chunks)
LogStream = tuple[str, str, Callable[[], Iterator[bytes]]]
_OFFSETS = ".mirror-offsets.json"


class PodLogMirror:
    """Appends followed pod logs to files the telemetry tailer reads (see the module docstring)."""

    def __init__(self, logs_dir: Path, services: Callable[[], Iterable[str]],
                 streams: Callable[[str], list[LogStream]], *, interval_s: float = 2.0) -> None:
        self._dir = logs_dir
        self._services = services
        self._streams = streams
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._following: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelhost-pod-logs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.poll_once()
            except Exception:  # the mirror must outlive one bad round
                _log.exception("telemetry: following the pods' logs failed")

    def poll_once(self) -> None:
        """Start following every running scoring container not followed yet."""
        for service in sorted(set(self._services())):
            try:
                streams = self._streams(service)
            except ModelhostError:
                continue  # an unreachable cluster: its services wait for the next round
            for pod, key, opener in streams:
                with self._lock:
                    if key in self._following:
                        continue
                    self._following.add(key)
                threading.Thread(target=self._copy, args=(service, pod, key, opener),
                                 name=f"modelhost-pod-log-{pod}", daemon=True).start()

    def _copy(self, service: str, pod: str, key: str, opener: Callable[[], Iterator[bytes]]) -> None:
        folder = self._dir / service
        try:
            folder.mkdir(parents=True, exist_ok=True)
            skip = self._offsets(folder).get(key, 0)
            received = saved = 0
            saved_at = time.monotonic()
            with open(folder / f"{pod}.log", "ab") as out:
                try:
                    for chunk in opener():
                        if self._stop.is_set():
                            break
                        start = max(0, skip - received)  # bytes mirrored before are not written again
                        received += len(chunk)
                        if start < len(chunk):
                            out.write(chunk[start:])
                            out.flush()
                            if time.monotonic() - saved_at >= 1.0:  # at most one offsets write a second
                                self._save(folder, key, received)
                                saved, saved_at = received, time.monotonic()
                finally:
                    if received > max(saved, skip):
                        self._save(folder, key, received)
        except Exception as exc:  # a cut stream: the next round follows again from the saved offset
            _log.warning("telemetry: following the log of pod %s ended: %s", pod, exc)
        finally:
            with self._lock:
                self._following.discard(key)

    def _offsets(self, folder: Path) -> dict[str, int]:
        try:
            raw = json.loads((folder / _OFFSETS).read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in raw.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _save(self, folder: Path, key: str, received: int) -> None:
        with self._lock:  # one writer of the offsets file per service folder at a time
            current = self._offsets(folder)
            current[key] = received
            tmp = folder / f"{_OFFSETS}.tmp"
            tmp.write_text(json.dumps(current), encoding="utf-8")
            os.replace(tmp, folder / _OFFSETS)
