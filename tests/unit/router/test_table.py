"""Routing table JSON: defaults, round trip, and messages that name the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ValidationError
from modelhost.router.table import (
    Replica,
    RoutingTable,
    ServiceRoute,
    TableFileWatcher,
    table_from_json,
    table_to_json,
)


def test_defaults_follow_v1() -> None:
    table = table_from_json({"services": {"iris": {"replicas": [{"id": "r0", "port": 9000}]}}})
    route = table.services["iris"]
    assert route == ServiceRoute("iris", (Replica("r0", "127.0.0.1", 9000, True),))
    assert (route.auth_enabled, route.max_concurrent_per_replica, route.max_queue_wait_ms,
            route.scoring_timeout_ms) == (True, 1, 500, 60000)
    assert table.version == 0


def test_round_trip() -> None:
    table = RoutingTable(
        services={"a": ServiceRoute("a", (Replica("a0", "127.0.0.1", 1, False),), auth_enabled=False,
                                    keys=("k1", "k2"), max_concurrent_per_replica=3, max_queue_wait_ms=0,
                                    scoring_timeout_ms=5)},
        version=7,
    )
    assert table_from_json(table_to_json(table)) == table


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        pytest.param([], "table", id="not-object"),
        pytest.param({"services": {"a": {"replicas": [{"id": "x", "port": 0}]}}},
                     "services.a.replicas[0].port", id="port-range"),
        pytest.param({"services": {"a": {"replicas": [{"port": 1}]}}}, "services.a.replicas[0].id",
                     id="no-id"),
        pytest.param({"services": {"a": {"replicas": [], "keys": ["a", "b", "c"]}}}, "services.a.keys",
                     id="three-keys"),
        pytest.param({"services": {"a": {"replicas": [], "max_concurrent_per_replica": 0}}},
                     "services.a.max_concurrent_per_replica", id="limit-zero"),
        pytest.param({"services": {"a": {"replicas": [], "auth_enabled": "yes"}}}, "services.a.auth_enabled",
                     id="bool"),
        pytest.param({"version": -1}, "version", id="version"),
    ],
)
def test_invalid_tables_name_the_key(raw: Any, named: str) -> None:
    with pytest.raises(ValidationError) as info:
        table_from_json(raw)
    assert named in info.value.message


def test_watcher_keeps_last_table(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    seen: list[RoutingTable] = []
    watcher = TableFileWatcher(path, seen.append)
    assert not watcher.check()  # missing: nothing published
    path.write_text('{"version": 1, "services": {}}')
    assert watcher.check() and seen[-1].version == 1
    assert not watcher.check()  # unchanged
    path.write_text('{"version": 2, "services": {"a": {"replicas": "nope"}}}')
    assert not watcher.check()  # invalid: logged, last table stays
    path.unlink()
    assert not watcher.check()
    path.write_text('{"version": 3}')
    assert watcher.check() and seen[-1].version == 3
    with pytest.raises(ValidationError):
        path.write_text("{not json")
        TableFileWatcher(path, seen.append).check(strict=True)
