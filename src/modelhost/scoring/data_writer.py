"""The bounded buffer and background thread behind ``ModelDataCollector``: rows in, CSV files out.

:meth:`DataWriter.put` runs on the request path. It never blocks and never touches a file: it adds a
batch of rows to an in-memory buffer of at most ``capacity`` rows, or drops the batch and counts it
when the buffer is full. One daemon thread, started with the first batch, drains the buffer and
appends the rows as CSV to ``<folder>/<prefix>-<tag>.csv``; ``tag`` is ``<replica>-<pid>``, so two
processes never share a file and never interleave partial lines. A batch whose header differs from
its file's header goes to a new file (``<prefix>-<tag>-<n>.csv``), so every file has one header.

The writer also keeps a small JSON file of its counters (rows written, dropped, queued) under
``<root>/.stats/<service>/<tag>.json``; the control plane reads it for ``modelhost data list``.
:meth:`DataWriter.close` (called on worker shutdown, and at exit) writes what is buffered.
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import os
import threading
import time
from typing import IO, Any

from .data_spool import hold_writer_lock, seal

__all__ = ["DEFAULT_CAPACITY", "DROP_LOG_EVERY", "Batch", "DataWriter"]

DEFAULT_CAPACITY = 10_000
DROP_LOG_EVERY = 1_000
_STATS_INTERVAL_S = 1.0
_IDLE_CLOSE_S = 60.0
_GATHER_S = 0.05

logger = logging.getLogger("azmlinfsrv.data_collector")


# (folder, file name prefix, header (may be empty), rows): a plain tuple, built once per collect() call
Batch = tuple[str, str, tuple[str, ...], list[list[Any]]]


class _File:
    __slots__ = ("handle", "header", "opened", "used")

    def __init__(self, handle: IO[str], header: tuple[str, ...]) -> None:
        self.handle = handle
        self.header = header
        self.used = self.opened = time.monotonic()


class DataWriter:
    """A bounded row buffer drained to CSV files by one background thread."""

    def __init__(
        self, root: str, service: str, tag: str, *, capacity: int = DEFAULT_CAPACITY,
        drop_log_every: int = DROP_LOG_EVERY, rotate_s: float | None = None,
    ) -> None:
        self.root = root
        self.service = service
        self.tag = tag
        self.capacity = capacity
        self._drop_log_every = max(1, drop_log_every)
        self._high_water = max(1, capacity // 2)
        self._buffer: collections.deque[Batch] = collections.deque()
        # put() takes the bare lock (C-level, no Python frames); the condition is only for waits
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queued = 0
        self._busy = 0  # rows taken by the thread and not yet written
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._files: dict[tuple[str, str, tuple[str, ...]], _File] = {}
        self._headers: dict[str, tuple[str, ...]] = {}  # path -> header of every file opened
        self._stats_at = 0.0
        self._cycle_at = 0.0
        self._stats_dirty = False
        # rotate_s (pods, see data_spool): close and seal every file at least this often for the uploader
        self._rotate_s = rotate_s
        self._lock_fd = hold_writer_lock(root) if rotate_s else None

    # --- the request path ---------------------------------------------------------------------
    def put(self, batch: Batch) -> bool:
        """Buffer ``batch``; False (and counted) when it does not fit. Never blocks on I/O."""
        n = len(batch[3])
        with self._lock:
            if self._closing or self._queued + self._busy + n > self.capacity:
                before, self.dropped = self.dropped, self.dropped + n
                self._stats_dirty = True
                every = self._drop_log_every
                # one line at the first drop and at every ``every`` rows dropped after it
                crossed = before == 0 or before // every != self.dropped // every
                dropped = self.dropped
            else:
                was_empty = not self._buffer
                self._buffer.append(batch)
                queued = self._queued
                self._queued = queued + n
                if self._thread is None:
                    self._start()
                # wake the writer for the first rows, or early when the buffer crosses half full (the
                # writer does not wait while above it); never per request
                if was_empty or queued < self._high_water <= queued + n:
                    self._cond.notify()
                return True
        if crossed:
            logger.warning(
                f"Model data collection buffer full ({self.capacity} rows): {dropped} row(s) dropped so far; "
                "scoring continues without waiting for the disk."
            )
        return False

    @property
    def queued(self) -> int:
        return self._queued + self._busy

    # --- the thread ---------------------------------------------------------------------------
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._drain, name="modelhost-data-collector", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            with self._cond:
                while not self._buffer and not self._closing:
                    self._cond.wait(_STATS_INTERVAL_S)
                    if not self._buffer:
                        break
                if self._buffer and not self._closing and self._queued < self._high_water:
                    # let rows gather: one write per interval instead of one per request
                    self._cond.wait(_GATHER_S)
                batches = list(self._buffer)
                self._buffer.clear()
                taken = sum(len(b[3]) for b in batches)
                self._queued -= taken
                self._busy = taken
                closing = self._closing
            self._write(batches)
            with self._cond:
                self._busy = 0
                self._cond.notify_all()
            self._maybe_stats(force=closing)
            if closing and not batches:
                self._close_files(0.0)
                return

    def _write(self, batches: list[Batch]) -> None:
        self._cycle_at = time.monotonic()
        # one formatting pass and one write per file per cycle, not one per collect() call
        groups: dict[tuple[str, str, tuple[str, ...]], list[list[Any]]] = {}
        for batch in batches:
            key = batch[:3]
            rows = groups.get(key)
            if rows is None:
                groups[key] = batch[3].copy()
            else:
                rows += batch[3]
        for key, rows in groups.items():
            self._stats_dirty = True
            try:
                text = _csv_text(rows)
            except Exception as exc:  # a value whose str() raises: these rows are lost, not the thread
                self.failed += len(rows)
                logger.error(f"Model data collection cannot format rows for {key[0]}: {exc!r}")
                continue
            try:
                self._handle(key).write(text)
                self.written += len(rows)
            except (OSError, ValueError) as exc:
                self.failed += len(rows)
                logger.error(f"Model data collection cannot write to {key[0]}: {exc}")
        for entry in self._files.values():
            entry.handle.flush()
        self._close_files(_IDLE_CLOSE_S)

    def _handle(self, key: tuple[str, str, tuple[str, ...]]) -> IO[str]:
        """The open file for this folder, prefix and header."""
        entry = self._files.get(key)
        if entry is None:
            entry = self._open((*key, []))
            self._files[key] = entry
        entry.used = self._cycle_at
        return entry.handle

    def _open(self, batch: Batch) -> _File:
        folder, prefix, header, _ = batch
        os.makedirs(folder, exist_ok=True)
        header_line = _csv_line(header) if header else ""
        n = 0
        while True:
            name = f"{prefix}-{self.tag}.csv" if n == 0 else f"{prefix}-{self.tag}-{n}.csv"
            path = os.path.join(folder, name)
            mine = self._headers.get(path)  # files this writer opened may hold unflushed headers
            existing = (_csv_line(mine) if mine else "") if mine is not None else _first_line(path)
            if existing is None or existing == header_line:
                break
            n += 1  # a file of this process with another header: one header per file
        handle = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115 (kept open across batches)
        self._headers[path] = header
        if existing is None and header_line:
            handle.write(header_line)
        return _File(handle, header)

    def _close_files(self, idle_s: float) -> None:
        now = time.monotonic()
        rotate = self._rotate_s
        for key, entry in list(self._files.items()):
            if now - entry.used >= idle_s or (rotate is not None and now - entry.opened >= rotate):
                entry.handle.close()
                del self._files[key]
                if rotate is not None:
                    self._headers.pop(entry.handle.name, None)  # the next batch starts a new file
                    try:
                        seal(entry.handle.name, int(time.time() * 1000))
                    except OSError as exc:
                        logger.error(f"Model data collection cannot seal {entry.handle.name}: {exc}")

    def _maybe_stats(self, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or (self._stats_dirty and now - self._stats_at >= _STATS_INTERVAL_S)):
            return
        self._stats_at, self._stats_dirty = now, False
        folder = os.path.join(self.root, ".stats", self.service)
        try:
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{self.tag}.json.tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(self.stats(), handle)
            os.replace(tmp, os.path.join(folder, f"{self.tag}.json"))
        except OSError as exc:
            logger.error(f"Model data collection cannot write its counters under {folder}: {exc}")

    # --- control ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The counters, as the stats file and the shutdown line report them."""
        return {
            "tag": self.tag,
            "pid": os.getpid(),
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
            "queued": self.queued,
            "capacity": self.capacity,
            "updated": time.time(),
        }

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every buffered row is written; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queued or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is buffered, stop the thread and log one line with the counters."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout_s)
        logger.info(
            f"Model data collection stopped: {self.written} row(s) written, {self.dropped} dropped "
            f"(buffer full), {self.failed} failed, {self.queued} unwritten."
        )


class _Formats(dict[int, str]):
    """``"%s,%s,...,%s"`` for rows of each width, made on first use."""

    def __missing__(self, width: int) -> str:
        value = self[width] = ",".join(["%s"] * width)
        return value


_FORMATS = _Formats()


def _csv_text(rows: list[list[Any]]) -> str:
    """``rows`` as ``csv.writer(...).writerows`` writes them (excel dialect), two to three times faster.

    csv's C writer looks up every character in the line terminator; ``%s`` formatting (``str()`` of
    each value, as csv does) is right whenever no value needs quoting, which the checks below prove:
    no quote, CR or LF in any value, exactly one comma per field boundary, no ``None`` (csv writes an
    empty field) and no empty line (csv writes ``""``). Otherwise csv formats the rows.
    """
    if not rows:
        return ""
    formats = _FORMATS
    lines = [formats[len(row)] % (*row,) for row in rows]
    probe = ",".join(lines)
    if (
        "\n" not in probe and "\r" not in probe and '"' not in probe and "None" not in probe
        and probe.count(",") == sum(map(len, rows)) - 1 and "" not in lines
    ):
        return "\r\n".join(lines) + "\r\n"
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _csv_line(values: tuple[str, ...]) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def _first_line(path: str) -> str | None:
    """The file's first line with its line ending, or None when the file is missing or empty."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            line = handle.readline()
    except FileNotFoundError:
        return None
    return line or None
