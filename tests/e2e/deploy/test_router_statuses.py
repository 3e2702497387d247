"""Every status the router produces, reached through a deployed service (v1 §4's table).

503 "No ready replicas" is in test_deploy (a service whose replica is still booting)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest

from tests.e2e.deploy.conftest import Plane, aks
from tests.support.net import wait_until

NAME = "status-svc"


@pytest.fixture(scope="module")
def svc(shared: Plane) -> tuple[Plane, str]:
    """One replica taking one request at a time, a short queue wait and a short router timeout."""
    config = aks(replica_max_concurrent_requests=1, max_request_wait_time=100, scoring_timeout_ms=1500)
    op = shared.deploy(NAME, config=config)
    assert op["state"] == "Succeeded", op["error"]
    return shared, shared.keys(NAME)[0]


def _post(plane: Plane, key: str, body: Any) -> httpx.Response:
    return httpx.post(
        plane.score_url(NAME), json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_401_without_or_with_a_wrong_key(svc: tuple[Plane, str]) -> None:
    plane, key = svc
    assert httpx.post(plane.score_url(NAME), json={}).status_code == 401
    assert _post(plane, "not-the-key", {}).status_code == 401
    assert _post(plane, key, {}).status_code == 200


def test_413_for_a_body_over_100_mb(svc: tuple[Plane, str]) -> None:
    plane, key = svc
    head = (
        f"POST /api/v1/service/{NAME}/score HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {101 * 1024 * 1024}\r\n\r\n{{}}"
    )
    with socket.create_connection(("127.0.0.1", plane.settings.router_port), timeout=10) as sock:
        sock.sendall(head.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", status_line


def test_502_when_run_raises(svc: tuple[Plane, str]) -> None:
    plane, key = svc
    r = _post(plane, key, {"fail": True})
    assert r.status_code == 502


def test_503_overloaded_when_the_replica_is_busy_past_the_queue_wait(svc: tuple[Plane, str]) -> None:
    plane, key = svc
    results: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: results.append(_post(plane, key, {"sleep": 1.0})))
    slow.start()
    try:
        wait_until(lambda: _in_flight(plane) >= 1, 10, what="the slow request in flight")
        queued = _post(plane, key, {})
    finally:
        slow.join(30)
    assert queued.status_code == 503
    assert queued.json()["message"] == f"Too many requests for service {NAME} (overloaded)"
    assert results and results[0].status_code == 200


def test_504_when_run_outlasts_the_router_timeout(svc: tuple[Plane, str]) -> None:
    plane, key = svc
    r = _post(plane, key, {"sleep": 4})
    # the router's 504 comes first: the replica's own timeout is the router's plus a margin
    assert r.status_code == 504 and "timed out after 1500 ms" in r.json()["message"]
    wait_until(lambda: _post(plane, key, {}).status_code == 200, 20, what="the replica free again")


def test_502_when_the_replica_dies_mid_request(svc: tuple[Plane, str]) -> None:
    plane, key = svc
    r = _post(plane, key, {"exit": True})
    assert r.status_code == 502 and r.json()["message"] == "Replica closed connection before replying"
    # the scoring server restarts its worker; the service serves again
    wait_until(lambda: _post(plane, key, {}).status_code == 200, 30, what="the worker restarted")
    assert plane.service(NAME)["state"] == "Healthy"


def _in_flight(plane: Plane) -> int:
    load = httpx.get(f"{plane.router_url}/-/load").json()["services"]
    return int(load.get(NAME, {}).get("in_flight", 0))
