"""Health answers during a long run(); the scoring timeout; stuck run() recycling; concurrent run() slots."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tests.e2e.scoring.conftest import ScoringServer
from tests.support.net import wait_until


def _post_in_background(
    server: ScoringServer, payload: dict[str, Any], results: list[Any]
) -> threading.Thread:
    def go() -> None:
        try:
            results.append(server.post_json("/score", payload, timeout=60))
        except OSError as exc:
            results.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_health_answers_while_run_is_busy(start_server: Any, tmp_path: Path) -> None:
    server = start_server("slow.py", env={"SLOW_INIT_LOG": str(tmp_path / "init.log")})
    results: list[Any] = []
    busy = _post_in_background(server, {"sleep": 3}, results)
    wait_until(
        lambda: server.request("GET", "/").status == 200 and busy.is_alive(), 10, what="health while busy"
    )
    assert busy.is_alive(), "the health probe must answer while run() is still sleeping"
    busy.join(30)
    assert results[0].json() == {"slept": 3}


def test_timeout_answers_500_and_stuck_worker_is_recycled(start_server: Any, tmp_path: Path) -> None:
    init_log = tmp_path / "init.log"
    server = start_server(
        "slow.py",
        env={"SLOW_INIT_LOG": str(init_log), "SCORING_TIMEOUT_MS": "500", "MODELHOST_STUCK_GRACE_S": "1"},
    )
    assert server.post_json("/score", {"sleep": 0}).json() == {"slept": 0}
    reply = server.post_json("/score", {"sleep": 600}, timeout=30)
    assert reply.status == 500
    assert reply.json() == {"message": "Scoring timeout after 500 ms"}
    assert reply.header("x-ms-run-function-failed") == "True"
    # The slot is stuck past the grace period: the worker is replaced and init() runs again.
    wait_until(lambda: len(init_log.read_text().split()) >= 2, 60, what="a second init() after the recycle")
    server.wait_ready()
    assert server.post_json("/score", {"sleep": 0}).json() == {"slept": 0}
    pids = init_log.read_text().split()
    assert len(set(pids)) == len(pids)
    assert "Recycling this worker process" in server.output()


def test_short_overrun_keeps_the_worker(start_server: Any, tmp_path: Path) -> None:
    init_log = tmp_path / "init.log"
    server = start_server(
        "slow.py",
        env={"SLOW_INIT_LOG": str(init_log), "SCORING_TIMEOUT_MS": "300", "MODELHOST_STUCK_GRACE_S": "30"},
    )
    reply = server.post_json("/score", {"sleep": 1})
    assert reply.json() == {"message": "Scoring timeout after 300 ms"}
    # The overrunning call still holds the only slot; the next request waits for it, then runs.
    assert server.post_json("/score", {"sleep": 0}).json() == {"slept": 0}
    assert len(init_log.read_text().split()) == 1


def test_max_concurrent_requests(start_server: Any) -> None:
    server = start_server("concurrency.py", args=["--max_concurrent_requests", "2"])
    results: list[Any] = []
    threads = [_post_in_background(server, {"want": 2}, results) for _ in range(2)]
    for thread in threads:
        thread.join(30)
    assert sorted(json.loads(r.body)["seen"] for r in results) == [2, 2]


def test_default_concurrency_is_one(start_server: Any) -> None:
    server = start_server("concurrency.py")
    results: list[Any] = []
    threads = [_post_in_background(server, {"want": 2, "wait": 1}, results) for _ in range(2)]
    for thread in threads:
        thread.join(60)
    assert sorted(json.loads(r.body)["seen"] for r in results) == [1, 1]
