"""Concurrent writers: threads share one Store, processes open their own (and migrate a new database)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from modelhost.store import ModelFile, Store

from . import _workers


def run_threads(count: int, target: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(target())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == count
    return results


def test_threads_registering_one_name_get_distinct_consecutive_versions(store: Store) -> None:
    def register_three() -> list[int]:
        return [
            store.register_model(
                name="shared", basename="m.pkl", is_dir=False, files=[ModelFile("m.pkl", "a" * 64, 1)]
            ).version
            for _ in range(3)
        ]

    versions = [v for batch in run_threads(6, register_three) for v in batch]
    assert sorted(versions) == list(range(1, 19))
    assert store.get_model("shared").version == 18


def test_processes_opening_a_new_database_and_registering_at_once(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs_n, each = 2, 5
    barrier, results = ctx.Barrier(procs_n), ctx.Queue()
    procs = [
        ctx.Process(target=_workers.register_many, args=(db_url, "shared", each, barrier, results))
        for _ in range(procs_n)
    ]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
        results.close()
        results.join_thread()
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert not errors, "\n".join(errors)
    versions = [v for _status, batch in outcomes for v in batch]
    assert sorted(versions) == list(range(1, procs_n * each + 1))
    with Store.open(db_url) as store:
        assert [m.version for m in store.list_models(name="shared")] == list(range(procs_n * each, 0, -1))


def test_threads_saving_one_environment_spec_share_one_version(store: Store) -> None:
    records = run_threads(6, lambda: store.save_environment(name="env", spec={"pip": ["x"]}, spec_hash="h1"))
    assert {(r.name, r.version) for r in records} == {("env", 1)}
    assert len(store.list_environments()) == 1


def test_threads_saving_one_snapshot(store: Store) -> None:
    from datetime import UTC, datetime

    from modelhost.store import SnapshotRecord

    record = SnapshotRecord("d" * 64, 10, 2, "score.py", datetime(2026, 1, 1, tzinfo=UTC))
    assert run_threads(6, lambda: store.save_snapshot(record)) == [record] * 6
