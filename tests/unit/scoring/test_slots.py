"""Run slots: FIFO threads, deadlines counted from the start of a job, stuck detection, closing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from modelhost.scoring.slots import TIMED_OUT, RunSlots, SlotsClosed


def _run(coro_factory: Callable[[], Any]) -> Any:
    return asyncio.run(coro_factory())


def test_results_and_fifo_order() -> None:
    order: list[int] = []

    async def main() -> list[Any]:
        slots = RunSlots(asyncio.get_running_loop(), 1, None, 1.0, lambda: None)
        results = await asyncio.gather(*(slots.run(lambda i=i: order.append(i) or i) for i in range(5)))
        slots.stop()
        return list(results)

    assert _run(main) == [0, 1, 2, 3, 4]
    assert order == [0, 1, 2, 3, 4]


def test_timeout_answers_at_the_deadline_and_reports_a_stuck_slot() -> None:
    release = threading.Event()
    stuck: list[bool] = []

    async def main() -> tuple[Any, Any]:
        slots = RunSlots(asyncio.get_running_loop(), 1, 0.2, 0.2, lambda: stuck.append(True))
        first = await slots.run(lambda: release.wait(10))
        # The slot is still taken by the overrunning job: the next one waits for it.
        waiting = asyncio.ensure_future(slots.run(lambda: "next"))
        deadline = time.monotonic() + 10
        while not stuck and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not waiting.done()
        release.set()
        second = await waiting
        slots.stop()
        return first, second

    assert _run(main) == (TIMED_OUT, "next")
    assert stuck == [True]


def test_queue_time_does_not_count_towards_the_deadline() -> None:
    async def main() -> list[Any]:
        slots = RunSlots(asyncio.get_running_loop(), 1, 0.5, 5.0, lambda: None)
        results = await asyncio.gather(*(slots.run(lambda: time.sleep(0.3) or "done") for _ in range(3)))
        slots.stop()
        return list(results)

    assert _run(main) == ["done", "done", "done"]


def test_close_refuses_queued_and_new_jobs() -> None:
    gate = threading.Event()

    async def main() -> None:
        slots = RunSlots(asyncio.get_running_loop(), 1, None, 1.0, lambda: None)
        running = asyncio.ensure_future(slots.run(lambda: gate.wait(10)))
        queued = asyncio.ensure_future(slots.run(lambda: "never"))
        await asyncio.sleep(0.1)
        slots.close()
        with pytest.raises(SlotsClosed):
            await queued
        with pytest.raises(SlotsClosed):
            await slots.run(lambda: "late")
        gate.set()
        assert await running is True
        slots.stop()

    _run(main)


def test_async_runs_share_the_limit() -> None:
    inside = 0
    peak = 0

    async def job() -> int:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.02)
        inside -= 1
        return 1

    async def main() -> None:
        slots = RunSlots(asyncio.get_running_loop(), 2, 5.0, 1.0, lambda: None)
        assert sum(await asyncio.gather(*(slots.run_async(job) for _ in range(6)))) == 6
        slots.stop()

    _run(main)
    assert peak == 2
