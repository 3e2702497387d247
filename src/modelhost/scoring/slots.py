"""Concurrency slots for ``run()``: ``size`` dedicated threads fed by one FIFO queue, with deadlines.

A synchronous job is queued at once; the first free slot thread takes it, so requests beyond ``size``
wait in FIFO order and a thread moves to the next job without a round trip through the event loop.
Each answer comes back to the loop with ``call_soon_threadsafe``; the loop itself never blocks, so
health checks and other routes answer while ``run()`` works. ``async def run`` coroutines run on the
loop under a semaphore of the same size.

Deadline policy (documented in docs/scoring.md): a job's deadline is ``timeout_s`` after it *starts*
(time spent waiting for a slot does not count, as in v1). When a job outlives it the request is
answered at once with :data:`TIMED_OUT`, but a Python thread cannot be interrupted, so **the slot stays
occupied until the thread returns**. If it is still running ``grace_s`` after its deadline, the pool
calls ``on_stuck`` once; the server then recycles its worker process (a fresh process re-runs init()).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

__all__ = ["SLOTS_CLOSED", "TIMED_OUT", "RunSlots", "SlotsClosed"]

logger = logging.getLogger("azmlinfsrv")


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


TIMED_OUT: Any = _Sentinel("TIMED_OUT")
SLOTS_CLOSED: Any = _Sentinel("SLOTS_CLOSED")


class SlotsClosed(Exception):
    """The pool is shutting down (the worker is being recycled); no slot will come."""


class _Call:
    __slots__ = ("abandoned", "done", "future", "started", "timed")

    def __init__(self, future: asyncio.Future[Any], timed: bool) -> None:
        self.future = future
        self.timed = timed
        self.started: float | None = None  # set by the slot thread
        self.done = False
        self.abandoned = False


class RunSlots:
    """``size`` threads that run jobs for the event loop, with a per-job deadline."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        size: int,
        timeout_s: float | None,
        grace_s: float,
        on_stuck: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._size = size
        self._timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self._grace_s = grace_s
        self._on_stuck = on_stuck
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], _Call] | None] = (
            queue.SimpleQueue()
        )
        self._pending: dict[_Call, None] = {}  # submitted and not finished, oldest first
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        # the semaphore of async runs
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._threads = [
            threading.Thread(target=self._work, name=f"modelhost-run-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        return self._size

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not finished (running or waiting for a slot)."""
        return len(self._pending) + (self._size - self._free) + len(self._waiters)

    # --- synchronous jobs on the slot threads ---------------------------------------------------
    def submit(self, job: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``job(*args)`` for a slot thread.

        The future resolves with the job's return value, :data:`TIMED_OUT` at its deadline, or
        :data:`SLOTS_CLOSED` when the pool closed before the job started.
        """
        return self._submit(job, args, self._timeout_s is not None)

    def submit_untimed(self, job: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Like :meth:`submit` without a deadline (for init())."""
        return self._submit(job, args, False)

    def _submit(self, job: Callable[..., Any], args: tuple[Any, ...], timed: bool) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        if self._closed:
            future.set_result(SLOTS_CLOSED)
            return future
        call = _Call(future, timed)
        self._pending[call] = None
        if timed and self._timer is None:
            # No job can expire sooner than one full timeout from now; the timer re-arms itself.
            self._timer = self._loop.call_later(self._timeout_s, self._on_timer)  # type: ignore[arg-type]
        self._jobs.put((job, args, call))
        return future

    async def run(self, job: Callable[..., Any], *args: Any) -> Any:
        """Run the job on a slot thread: its value or :data:`TIMED_OUT`; raises :class:`SlotsClosed`."""
        result = await self._submit(job, args, self._timeout_s is not None)
        if result is SLOTS_CLOSED:
            raise SlotsClosed
        return result

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            item = jobs.get()
            if item is None:
                return
            job, args, call = item
            if call.abandoned:
                continue
            call.started = monotonic()
            try:
                result = job(*args)
            except BaseException as exc:  # jobs report their own errors; this is a last resort
                logger.exception("A scoring job failed unexpectedly")
                result = exc
            try:
                self._loop.call_soon_threadsafe(self._finish, call, result)
            except RuntimeError:  # the loop is closed: the process is exiting
                return

    def _finish(self, call: _Call, result: Any) -> None:
        call.done = True
        self._pending.pop(call, None)
        if not call.future.done():
            call.future.set_result(result)

    def _on_timer(self) -> None:
        self._timer = None
        timeout = self._timeout_s
        if timeout is None:
            return
        now = monotonic()
        next_due: float | None = None
        for call in list(self._pending):
            if not call.timed or call.future.done():
                continue
            due = now + timeout if call.started is None else call.started + timeout
            if due <= now:
                call.future.set_result(TIMED_OUT)
                self._loop.call_later(self._grace_s, self._check_stuck, call)
            elif next_due is None or due < next_due:
                next_due = due
        if next_due is not None:
            self._timer = self._loop.call_later(max(0.0, next_due - now), self._on_timer)

    def _check_stuck(self, call: _Call) -> None:
        if not call.done:
            logger.error(
                "A run() call is still executing %.1f s after its scoring timeout; its slot is stuck.",
                self._grace_s,
            )
            self._on_stuck()

    # --- async def run: a semaphore on the loop -------------------------------------------------
    async def _acquire(self) -> None:
        if self._closed:
            raise SlotsClosed
        if self._free and not self._waiters:
            self._free -= 1
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def run_async(self, factory: Callable[[], Awaitable[Any]]) -> Any:
        """Run a coroutine (an ``async def run``) on the loop under a slot and the same deadline."""
        await self._acquire()
        try:
            if self._timeout_s is None:
                return await factory()
            try:
                return await asyncio.wait_for(factory(), self._timeout_s)
            except TimeoutError:
                return TIMED_OUT
        finally:
            self._release()

    # --- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Refuse new jobs; jobs that have not started resolve to :data:`SLOTS_CLOSED`."""
        self._closed = True
        for call in list(self._pending):
            if call.started is None:
                call.abandoned = True
                if not call.future.done():
                    call.future.set_result(SLOTS_CLOSED)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(SlotsClosed())

    def stop(self) -> None:
        """Ask idle threads to exit (busy ones are daemon threads and die with the process)."""
        for _ in self._threads:
            self._jobs.put(None)
