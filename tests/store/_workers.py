"""Functions run in child processes by the concurrency tests (importable under 'spawn')."""

from __future__ import annotations

import traceback
from typing import Any

from modelhost.store import ModelFile, Store


def register_many(url: str, name: str, count: int, barrier: Any, results: Any) -> None:
    """Open the store (possibly migrating a new database), wait for the others, register ``count`` times."""
    try:
        barrier.wait(timeout=60)
        store = Store.open(url)
        try:
            versions = [
                store.register_model(
                    name=name, basename="m.pkl", is_dir=False, files=[ModelFile("m.pkl", "a" * 64, 1)]
                ).version
                for _ in range(count)
            ]
        finally:
            store.close()
        results.put(("ok", versions))
    except BaseException:
        results.put(("error", traceback.format_exc()))
