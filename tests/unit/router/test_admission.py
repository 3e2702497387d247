"""Admission: slots per replica, FIFO queue, wait deadline, table swaps and drain."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from modelhost.router.admission import EJECT_S, Rejected, Rejection, ServiceAdmission
from modelhost.router.table import Replica, ServiceRoute

T = TypeVar("T")

A = Replica("a", "127.0.0.1", 1)
B = Replica("b", "127.0.0.1", 2)


def route(*replicas: Replica, limit: int = 1, wait_ms: int = 200) -> ServiceRoute:
    return ServiceRoute("svc", tuple(replicas), max_concurrent_per_replica=limit, max_queue_wait_ms=wait_ms)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_slots_respect_the_per_replica_limit() -> None:
    adm = ServiceAdmission(route(A, B, limit=2), rng=random.Random(0))
    got = [adm.try_acquire(0.0) for _ in range(5)]
    assert sorted(r.id for r in got if r) == ["a", "a", "b", "b"]
    assert got[4] is None
    assert adm.load().busy == 2.0 and adm.load().in_flight == 4


def test_least_loaded_spreads_across_replicas() -> None:
    adm = ServiceAdmission(route(A, B, limit=10), rng=random.Random(0))
    first = adm.try_acquire(0.0)
    second = adm.try_acquire(0.0)
    assert first and second and {first.id, second.id} == {"a", "b"}


def test_no_ready_replica_is_rejected_at_once() -> None:
    adm = ServiceAdmission(route(Replica("a", "h", 1, ready=False)))
    with pytest.raises(Rejected) as info:
        run(adm.acquire(0.0))
    assert info.value.reason is Rejection.NO_READY_REPLICAS
    assert adm.load().replicas == 0


def test_queue_deadline_rejects_as_overloaded() -> None:
    async def scenario() -> Rejection:
        adm = ServiceAdmission(route(A, wait_ms=50))
        assert adm.try_acquire(0.0) is A
        try:
            await adm.acquire(0.0)
        except Rejected as exc:
            assert adm.load().queued == 0
            return exc.reason
        raise AssertionError("acquire should have been rejected")

    assert run(scenario()) is Rejection.OVERLOADED


def test_queue_is_fifo_and_release_hands_the_slot_over() -> None:
    async def scenario() -> list[str]:
        adm = ServiceAdmission(route(A, wait_ms=5000))
        assert adm.try_acquire(0.0) is A
        order: list[str] = []

        async def wait(tag: str) -> None:
            replica = await adm.acquire(0.0)
            order.append(tag)
            await asyncio.sleep(0.01)
            adm.release(replica.id)

        tasks = [asyncio.create_task(wait(t)) for t in "xyz"]
        await asyncio.sleep(0.01)
        assert adm.load().queued == 3
        assert adm.try_acquire(0.0) is None  # newcomers do not overtake the queue
        adm.release("a")
        await asyncio.gather(*tasks)
        assert adm.load().in_flight == 0
        return order

    assert run(scenario()) == ["x", "y", "z"]


def test_queue_bound() -> None:
    async def scenario() -> Rejection:
        adm = ServiceAdmission(route(A, wait_ms=5000), max_queue=1)
        adm.try_acquire(0.0)
        first = asyncio.create_task(adm.acquire(0.0))
        await asyncio.sleep(0)
        try:
            await adm.acquire(0.0)
        except Rejected as exc:
            first.cancel()
            return exc.reason
        raise AssertionError("second waiter should be refused")

    assert run(scenario()) is Rejection.OVERLOADED


def test_cancelled_waiter_leaves_no_slot_behind() -> None:
    async def scenario() -> int:
        adm = ServiceAdmission(route(A, wait_ms=5000))
        adm.try_acquire(0.0)
        waiter = asyncio.create_task(adm.acquire(0.0))
        await asyncio.sleep(0)
        adm.release("a")  # hands the slot to the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return adm.load().in_flight

    assert run(scenario()) == 0


def test_new_replica_in_table_wakes_waiters() -> None:
    async def scenario() -> str:
        adm = ServiceAdmission(route(A, wait_ms=5000))
        adm.try_acquire(0.0)
        waiter = asyncio.create_task(adm.acquire(0.0))
        await asyncio.sleep(0)
        adm.update(route(A, B, wait_ms=5000))
        return (await waiter).id

    assert run(scenario()) == "b"


def test_removed_replica_drains() -> None:
    adm = ServiceAdmission(route(A, B, limit=1), rng=random.Random(0))
    held = [adm.try_acquire(0.0), adm.try_acquire(0.0)]
    adm.update(route(B))
    assert adm.in_flight("a") == 1  # still counted while its request finishes
    assert adm.try_acquire(0.0) is None  # b is full, a is gone
    adm.release("a")
    assert adm.in_flight("a") == 0
    assert adm.load().in_flight == 1
    assert {r.id for r in held if r} == {"a", "b"}


def test_waiters_fail_when_the_service_loses_every_replica() -> None:
    async def scenario() -> Rejection:
        adm = ServiceAdmission(route(A, wait_ms=5000))
        adm.try_acquire(0.0)
        waiter = asyncio.create_task(adm.acquire(0.0))
        await asyncio.sleep(0)
        adm.update(route())
        try:
            await waiter
        except Rejected as exc:
            return exc.reason
        raise AssertionError("waiter should be refused")

    assert run(scenario()) is Rejection.NO_READY_REPLICAS


def test_exclude_and_eject() -> None:
    adm = ServiceAdmission(route(A, B, limit=5), rng=random.Random(0))
    assert adm.try_acquire(0.0, exclude=["a"]) is B
    assert not adm.has_ready(exclude=["a", "b"])
    adm.eject("a", now=10.0)
    assert all(adm.try_acquire(10.0) is B for _ in range(4))  # a avoided while b is healthy ...
    assert adm.try_acquire(10.0) is None  # ... even when b is full: wait rather than hit a dead port
    assert adm.try_acquire(10.0, exclude=["b"]) is A  # the only one left is tried anyway
    assert adm.try_acquire(10.0 + EJECT_S) is A  # and after EJECT_S it is back in the choice
