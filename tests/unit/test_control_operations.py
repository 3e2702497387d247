"""Long-running operations: states, the append-only log with offsets, long-poll wake-ups, dedupe."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from modelhost.control.operations import Operation, Operations
from modelhost.errors import ConflictError, NotFoundError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_log_offsets_and_success() -> None:
    op = Operation("build", "env:1", clock=FakeClock())
    op.append("one")
    op.append("two\nthree\n")
    assert [line for _, line in op.lines()] == ["one", "two", "three"]
    view = op.to_dict(offset=1)
    assert view["state"] == "Running" and view["offset"] == 1 and view["next_offset"] == 3
    assert [line for _, line in view["log"]] == ["two", "three"]
    assert op.to_dict(offset=10)["log"] == [] and op.to_dict(offset=10)["next_offset"] == 10
    op.succeed({"ok": True})
    assert op.done and op.to_dict()["state"] == "Succeeded" and op.result == {"ok": True}
    assert op.ended is not None and op.ended > op.started


def test_failure_records_the_error_payload() -> None:
    op = Operation("build", "env:1")
    op.fail(ConflictError("busy", hint="wait"))
    view = op.to_dict()
    assert view["state"] == "Failed"
    assert view["error"] == {"code": "conflict", "message": "busy", "hint": "wait", "details": []}
    assert view["log"][-1][1] == "error: busy (wait)"


def test_wait_returns_when_a_line_arrives_from_another_thread() -> None:
    op = Operation("build", "x")

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        threading.Timer(0.05, op.append, args=("late line",)).start()
        await op.wait(0, timeout=30)
        return loop.time() - start

    assert asyncio.run(scenario()) < 20  # woken by the line, not by the 30 s timeout
    assert op.to_dict(0)["log"][0][1] == "late line"


def test_wait_returns_at_once_when_lines_exist_or_done_and_after_timeout_otherwise() -> None:
    op = Operation("build", "x")
    asyncio.run(op.wait(0, timeout=0.01))  # nothing new: times out quietly
    op.append("a")
    asyncio.run(op.wait(0, timeout=30))
    op.succeed(None)
    asyncio.run(op.wait(1, timeout=30))
    assert op._waiters == []


def test_operations_run_work_dedupe_running_targets_and_map_errors() -> None:
    ops = Operations()
    gate = threading.Event()

    def slow(op: Operation) -> dict[str, Any]:
        op.append("working")
        gate.wait(10)
        return {"n": 1}

    first = ops.start("build", "a:1", slow)
    assert ops.start("build", "a:1", slow) is first
    other = ops.start("build", "b:1", slow)
    assert other is not first
    gate.set()
    assert first.wait_done(10) and other.wait_done(10)
    assert first.state == "Succeeded" and first.result == {"n": 1}
    assert ops.start("build", "a:1", slow) is not first  # finished: a new one starts

    def crash(op: Operation) -> None:
        raise RuntimeError("boom")

    crashed = ops.start("build", "c:1", crash)
    assert crashed.wait_done(10) and crashed.state == "Failed"
    assert (
        crashed.error is not None
        and crashed.error["code"] == "internal"
        and "boom" in crashed.error["message"]
    )
    assert ops.get(first.id) is first
    with pytest.raises(NotFoundError):
        ops.get("nope")
    assert first in ops.list()
