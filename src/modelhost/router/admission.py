"""Admission for one service: per-replica concurrency slots and a bounded FIFO queue with a deadline.

A request takes a slot on one replica (chosen by :func:`modelhost.balance.choose`) and gives it
back with :meth:`ServiceAdmission.release`. When every ready replica is full the request waits in a
FIFO queue for at most the service's ``max_queue_wait_ms``; a released slot goes straight to the
oldest waiter that can use it, so a newcomer never overtakes the queue. Asyncio primitives only: no
sockets, no clock reads (callers pass ``now`` where it matters, in the loop's clock).

A table swap (:meth:`update`) keeps the in-flight counts: replicas that left the table keep their
slots until their requests finish (drain), new replicas wake waiters at once.

Scale to zero (``route.scale_to_zero``): a request that finds no ready replica waits in the same
queue for up to ``route.cold_start_wait_ms`` (its whole wait, also once a replica is ready) instead
of failing at once; it shows as ``queued`` in :meth:`ServiceAdmission.load`, which is what makes
the autoscaler start a replica. A table with no ready replica does not fail those waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

from modelhost.balance import Candidate, choose
from modelhost.router.table import Replica, ServiceLoad, ServiceRoute

__all__ = ["DEFAULT_MAX_QUEUE", "EJECT_S", "Rejected", "Rejection", "ServiceAdmission"]

DEFAULT_MAX_QUEUE = 4096
# After a refused connection a replica is avoided for this long while others can serve.
EJECT_S = 1.0


class Rejection(enum.Enum):
    OVERLOADED = "overloaded"
    NO_READY_REPLICAS = "no ready replicas"


class Rejected(Exception):
    """No slot could be had: the queue wait ran out or was full, or no replica is ready."""

    def __init__(self, reason: Rejection) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[Replica]
    exclude: Collection[str]


class ServiceAdmission:
    """Slots and queue of one service; see the module docstring for the rules."""

    def __init__(self, route: ServiceRoute, *, rng: random.Random | None = None,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.name = route.name
        self._rng = rng or random.Random()
        self._max_queue = max_queue
        self._in_flight: dict[str, int] = {}
        self._ejected_until: dict[str, float] = {}
        self._queue: deque[_Waiter] = deque()
        self.route = route
        self._ready: tuple[Replica, ...] = ()
        self._ids: frozenset[str] = frozenset()
        self.update(route)

    # -- table ---------------------------------------------------------------------------------
    def update(self, route: ServiceRoute) -> None:
        """Adopt a new route; in-flight requests keep their slots, waiters are re-dispatched."""
        self.route = route
        self._ready = tuple(r for r in route.replicas if r.ready)
        ids = self._ids = frozenset(r.id for r in route.replicas)
        for rid in [rid for rid, n in self._in_flight.items() if n == 0 and rid not in ids]:
            del self._in_flight[rid]
        for rid in [rid for rid in self._ejected_until if rid not in ids]:
            del self._ejected_until[rid]
        if not self._ready:
            if not route.scale_to_zero:  # at zero, waiters keep waiting for a replica to start
                self._fail_waiters(Rejection.NO_READY_REPLICAS)
        else:
            self._dispatch(now=0.0)

    def close(self) -> None:
        """The service left the table: refuse every waiter (in-flight requests still finish)."""
        self._ready = ()
        self._fail_waiters(Rejection.NO_READY_REPLICAS)

    # -- slots ---------------------------------------------------------------------------------
    def has_ready(self, exclude: Collection[str] = ()) -> bool:
        return any(r.id not in exclude for r in self._ready)

    def can_wait(self, exclude: Collection[str] = ()) -> bool:
        """Whether a request that got no slot at once may queue: a ready replica exists, or the
        service scales to zero and none was tried yet (it waits for one to start)."""
        return self.has_ready(exclude) or (self.route.scale_to_zero and not exclude)

    def try_acquire(self, now: float, exclude: Collection[str] = ()) -> Replica | None:
        """A replica with its slot taken, at once, or None (full, or others already queue)."""
        if self._queue:
            return None
        return self._take(now, exclude)

    async def acquire(self, now: float, exclude: Collection[str] = ()) -> Replica:
        """A replica with its slot taken, waiting up to the route's ``max_queue_wait_ms``.

        Raises Rejected(NO_READY_REPLICAS) when no ready replica (outside ``exclude``) exists,
        Rejected(OVERLOADED) when the queue is full or the wait runs out. At scale to zero with no
        ready replica it waits up to ``cold_start_wait_ms`` instead, then raises NO_READY_REPLICAS
        if still none is ready.
        """
        replica = self.try_acquire(now, exclude)
        if replica is not None:
            return replica
        wait_ms = self.route.max_queue_wait_ms
        if not self.has_ready(exclude):
            if not self.can_wait(exclude):
                raise Rejected(Rejection.NO_READY_REPLICAS)
            wait_ms = self.route.cold_start_wait_ms
        if len(self._queue) >= self._max_queue:
            raise Rejected(Rejection.OVERLOADED)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), exclude)
        self._queue.append(waiter)
        timer = loop.call_later(wait_ms / 1000, self._expire, waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            fut = waiter.future
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release(fut.result().id)  # handed a slot just as we were cancelled
            self._forget(waiter)
            raise
        finally:
            timer.cancel()

    def release(self, replica_id: str, now: float = 0.0) -> None:
        """Give a slot back; the oldest waiter that can use a free slot gets one."""
        left = self._in_flight.get(replica_id, 0) - 1
        if left > 0:
            self._in_flight[replica_id] = left
        elif replica_id in self._ids:
            self._in_flight[replica_id] = 0
        else:
            self._in_flight.pop(replica_id, None)  # drained a replica that left the table
        if self._queue:
            self._dispatch(now)

    def eject(self, replica_id: str, now: float) -> None:
        """Avoid a replica that refused a connection for EJECT_S, while others can serve."""
        self._ejected_until[replica_id] = now + EJECT_S

    def load(self) -> ServiceLoad:
        limit = self.route.max_concurrent_per_replica
        in_flight = sum(self._in_flight.values())
        # Per replica for the autoscaler's drain: ready ones (0 included) and any still serving.
        by_replica = {r.id: self._in_flight.get(r.id, 0) for r in self._ready}
        by_replica.update((rid, n) for rid, n in self._in_flight.items() if n > 0)
        return ServiceLoad(replicas=len(self._ready), busy=in_flight / limit, queued=len(self._queue),
                           in_flight=in_flight, in_flight_by_replica=by_replica)

    def in_flight(self, replica_id: str) -> int:
        return self._in_flight.get(replica_id, 0)

    # -- internals -----------------------------------------------------------------------------
    def _take(self, now: float, exclude: Collection[str]) -> Replica | None:
        limit = self.route.max_concurrent_per_replica
        pool = [r for r in self._ready if r.id not in exclude] if exclude else self._ready
        if self._ejected_until:
            healthy = [r for r in pool if self._ejected_until.get(r.id, 0.0) <= now]
            pool = healthy or pool
        in_flight = self._in_flight
        if len(pool) == 1:
            replica: Replica | None = pool[0] if in_flight.get(pool[0].id, 0) < limit else None
        else:
            replica = choose([Candidate(r, in_flight.get(r.id, 0), limit) for r in pool], self._rng)
        if replica is not None:
            in_flight[replica.id] = in_flight.get(replica.id, 0) + 1
        return replica

    def _dispatch(self, now: float) -> None:
        for waiter in list(self._queue):
            if waiter.future.done():
                self._forget(waiter)
                continue
            replica = self._take(now, waiter.exclude)
            if replica is None:
                if not waiter.exclude:
                    return  # full for everyone: keep FIFO order
                continue
            self._forget(waiter)
            waiter.future.set_result(replica)

    def _expire(self, waiter: _Waiter) -> None:
        self._forget(waiter)
        if not waiter.future.done():
            # Still no replica at the end of a cold-start wait is "no ready replicas", not overload.
            reason = Rejection.OVERLOADED if self._ready else Rejection.NO_READY_REPLICAS
            waiter.future.set_exception(Rejected(reason))

    def _fail_waiters(self, reason: Rejection) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(Rejected(reason))

    def _forget(self, waiter: _Waiter) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(waiter)
