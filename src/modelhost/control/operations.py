"""Long-running operations: a state machine plus an append-only, streamed log.

An :class:`Operation` starts ``Running`` and ends ``Succeeded`` (with a result dict) or ``Failed``
(with the error's JSON payload). Its work runs on a thread of its own; the API answers with the id at
once and clients read ``GET /api/v1/operations/{id}?offset=n&wait=s``, which long-polls: it returns as
soon as a line past ``offset`` exists or the operation ends, or after ``wait`` seconds. Log lines
arrive from worker threads; waiting handlers are woken on their own event loop.

Operations live in memory: a restart of the control plane forgets them (what they changed is in the
store). Only the most recent finished ones are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from modelhost.errors import ModelhostError, NotFoundError

__all__ = ["Operation", "OperationState", "Operations"]

OperationState = Literal["Running", "Succeeded", "Failed"]
Work = Callable[["Operation"], dict[str, Any] | None]

_log = logging.getLogger("modelhost.control")
_KEEP_FINISHED = 200


class Operation:
    """One long-running operation; every method is safe to call from any thread."""

    def __init__(self, kind: str, target: str, *, clock: Callable[[], float] = time.time) -> None:
        self.id = uuid.uuid4().hex
        self.kind = kind
        self.target = target
        self.state: OperationState = "Running"
        self.started = clock()
        self.ended: float | None = None
        self.error: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self._clock = clock
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._done = threading.Event()

    def append(self, line: str) -> None:
        """Add one log line (a multi-line string becomes several lines)."""
        now = self._clock()
        with self._lock:
            self._lines.extend((now, part) for part in line.rstrip("\n").split("\n"))
        self._wake()

    def succeed(self, result: dict[str, Any] | None) -> None:
        self._end("Succeeded", result=result)

    def fail(self, error: ModelhostError) -> None:
        self.append(f"error: {error.one_line()}")
        self._end("Failed", error=error.to_payload()["error"])

    def _end(
        self,
        state: OperationState,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            self.state, self.result, self.error, self.ended = state, result, error, self._clock()
        self._done.set()
        self._wake()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block until the operation ends (for threads and tests); True if it ended."""
        return self._done.wait(timeout)

    def lines(self, offset: int = 0) -> list[tuple[float, str]]:
        with self._lock:
            return self._lines[max(offset, 0) :]

    def to_dict(self, offset: int = 0) -> dict[str, Any]:
        """The JSON view: state, times, error, result and the log lines from ``offset`` on."""
        with self._lock:
            lines = self._lines[max(offset, 0) :]
            return {
                "id": self.id,
                "kind": self.kind,
                "target": self.target,
                "state": self.state,
                "started": self.started,
                "ended": self.ended,
                "error": self.error,
                "result": self.result,
                "offset": max(offset, 0),
                "next_offset": max(offset, 0) + len(lines),
                "log": [[ts, text] for ts, text in lines],
            }

    async def wait(self, offset: int, timeout: float) -> None:
        """Return once a line past ``offset`` exists, the operation has ended, or ``timeout`` passed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if len(self._lines) > offset or self.state != "Running":
                return
            self._waiters.append(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # the loop may have closed meanwhile
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Operations:
    """The registry of operations; :meth:`start` runs work on a thread and records its outcome."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: dict[str, Operation] = {}

    def start(self, kind: str, target: str, work: Work, *, dedupe: bool = True) -> Operation:
        """Start ``work`` as an operation on ``target``; with ``dedupe`` a running one is returned instead.

        ``work`` receives the operation (to append log lines) and returns the result dict; a
        ``ModelhostError`` it raises fails the operation with that error, anything else with a 500.
        """
        with self._lock:
            if dedupe:
                for op in self._ops.values():
                    if op.kind == kind and op.target == target and op.state == "Running":
                        return op
            op = Operation(kind, target, clock=self._clock)
            self._ops[op.id] = op
            self._trim()
        thread = threading.Thread(target=_run, args=(op, work), name=f"op-{kind}-{op.id[:8]}", daemon=True)
        thread.start()
        return op

    def get(self, op_id: str) -> Operation:
        with self._lock:
            op = self._ops.get(op_id)
        if op is None:
            raise NotFoundError(
                f"Operation {op_id!r} not found",
                hint="Operations are kept in memory; a restarted control plane forgets them.",
            )
        return op

    def list(self) -> list[Operation]:
        with self._lock:
            return sorted(self._ops.values(), key=lambda op: op.started)

    def _trim(self) -> None:
        finished = [op for op in self._ops.values() if op.state != "Running"]
        for op in sorted(finished, key=lambda o: o.started)[: max(0, len(finished) - _KEEP_FINISHED)]:
            del self._ops[op.id]


def _run(op: Operation, work: Work) -> None:
    try:
        result = work(op)
    except ModelhostError as exc:
        op.fail(exc)
    except Exception as exc:
        _log.exception("operation %s (%s %s) crashed", op.id, op.kind, op.target)
        op.fail(ModelhostError(f"{op.kind} of {op.target} failed unexpectedly: {type(exc).__name__}: {exc}"))
    else:
        op.succeed(result)
