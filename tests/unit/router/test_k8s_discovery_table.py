"""The routing table discovery builds from a namespace's objects (pure): only ready endpoints."""

from __future__ import annotations

import base64
import json
from typing import Any

from modelhost.router.k8s_discovery import table_from_objects


def _anchor(service: str, route: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {"service": service}
    if route is not None:
        data["route"] = json.dumps(route)
    return {"metadata": {"name": f"modelhost-svc-{service}", "labels": {"modelhost.io/service": service}},
            "data": data}


def _secret(service: str, primary: str, secondary: str) -> dict[str, Any]:
    enc = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    return {"metadata": {"name": f"modelhost-keys-{service}", "labels": {"modelhost.io/service": service}},
            "data": {"primaryKey": enc(primary), "secondaryKey": enc(secondary)}}


def _slice(service: str, endpoints: list[tuple[str, str, bool | None]], port: int = 5001) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"modelhost-{service}-abc",
            "labels": {"kubernetes.io/service-name": f"modelhost-{service}"},
        },
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready},
             "targetRef": {"kind": "Pod", "name": pod}}
            for pod, ip, ready in endpoints
        ],
    }


def test_only_ready_endpoints_are_routed() -> None:
    table = table_from_objects(
        [_anchor("a")], [_secret("a", "k1", "k2")],
        [_slice("a", [("a-1", "127.1.0.2", True), ("a-2", "127.1.0.3", False), ("a-3", "127.1.0.4", None)])],
        version=7,
    )
    route = table.services["a"]
    assert [(r.id, r.host, r.port) for r in route.replicas] == [("a-1", "127.1.0.2", 5001)]
    assert route.keys == ("k1", "k2") and route.auth_enabled and table.version == 7


def test_a_service_exists_when_its_anchor_does_and_takes_its_route_settings() -> None:
    settings = {"auth_enabled": False, "max_concurrent_per_replica": 4, "scoring_timeout_ms": 1000}
    table = table_from_objects(
        [_anchor("b", settings)], [],
        [_slice("b", [("b-1", "127.1.0.5", True)]), _slice("orphan", [("o-1", "127.1.0.9", True)])],
        version=1,
    )
    assert set(table.services) == {"b"}
    route = table.services["b"]
    got = (route.auth_enabled, route.max_concurrent_per_replica, route.scoring_timeout_ms)
    assert got == (False, 4, 1000)


def test_no_slice_yet_means_no_replica_and_a_bad_anchor_spares_the_others() -> None:
    table = table_from_objects(
        [_anchor("c"), _anchor("d", {"max_queue_wait_ms": -5})], [_secret("c", "x", "y")], [], version=2
    )
    assert set(table.services) == {"c"} and table.services["c"].replicas == ()
