"""The router's side of scale to zero, without the autoscaler: a request at zero replicas waits for
one to start (``scale_to_zero``), up to ``cold_start_wait_ms``, then gets the documented 503."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from modelhost.runtime.base import ProbeSettings, ServiceDeployment
from modelhost.runtime.local import LocalRuntime
from modelhost.types import ServiceName
from tests.e2e.autoscale.conftest import ADMIN
from tests.support.net import wait_until

NO_READY = "No ready replicas for service cold"


def publish(router_url: str, route: dict[str, Any], version: int) -> None:
    r = httpx.put(f"{router_url}/-/table", json={"version": version, "services": {"cold": route}},
                  headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200, r.text


def score(router_url: str) -> httpx.Response:
    return httpx.post(f"{router_url}/api/v1/service/cold/score", json={"data": [1]}, timeout=60)


def test_without_scale_to_zero_no_replica_fails_at_once(router_url: str) -> None:
    publish(router_url, {"replicas": [], "auth_enabled": False}, 1)
    r = score(router_url)
    assert (r.status_code, r.json()["message"]) == (503, NO_READY)


def test_cold_start_wait_expires_with_the_documented_503(router_url: str) -> None:
    publish(router_url, {"replicas": [], "auth_enabled": False, "scale_to_zero": True,
                         "cold_start_wait_ms": 400}, 1)
    result: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: result.append(score(router_url)))
    started = time.monotonic()
    waiter.start()
    # while it waits, the load signal shows it queued: what makes the autoscaler start a replica
    wait_until(lambda: httpx.get(f"{router_url}/-/load").json()["services"]["cold"]["queued"] == 1, 10,
               interval_s=0.01, what="the request queued at zero replicas")
    waiter.join(30)
    assert time.monotonic() - started >= 0.4
    assert (result[0].status_code, result[0].json()["message"]) == (503, NO_READY)


def test_a_replica_that_appears_serves_the_waiting_requests(router_url: str, runtime: LocalRuntime,
                                                          entry_script: Path) -> None:
    route: dict[str, Any] = {"auth_enabled": False, "scale_to_zero": True, "cold_start_wait_ms": 30000}
    publish(router_url, {**route, "replicas": []}, 1)
    results: list[httpx.Response] = []
    waiters = [threading.Thread(target=lambda: results.append(score(router_url))) for _ in range(3)]
    for w in waiters:
        w.start()
    load = f"{router_url}/-/load"
    wait_until(lambda: httpx.get(load).json()["services"]["cold"]["queued"] == 3, 10, what="3 queued")
    # a table that still has no ready replica keeps them waiting (no 503 at the swap)
    publish(router_url, {**route, "replicas": []}, 2)
    assert httpx.get(load).json()["services"]["cold"]["queued"] == 3
    runtime.deploy(ServiceDeployment(service=ServiceName("cold"), generation=1, python=Path(sys.executable),
                                     entry_script=str(entry_script), source_dir="src",
                                     probe=ProbeSettings(period_seconds=1, initial_delay_seconds=60)))
    wait_until(lambda: bool(runtime.status(ServiceName("cold")).ready), 60, what="replica ready")
    (replica,) = runtime.status(ServiceName("cold")).ready
    publish(router_url, {**route, "replicas": [{"id": replica.id, "port": replica.port}]}, 3)
    for w in waiters:
        w.join(60)
    assert [r.status_code for r in results] == [200, 200, 200]
    assert all(r.json()["replica"] == replica.id for r in results)
    cold = httpx.get(load, params={"by_replica": "1"}).json()["services"]["cold"]
    assert cold["in_flight_by_replica"] == {replica.id: 0}
