"""The control plane's pure routing-table builder: which replicas a service's route holds."""

from __future__ import annotations

import pytest

from modelhost.control.routing import RouteSource, build_table
from modelhost.runtime.base import ReplicaState, ReplicaStatus, ServiceStatus
from modelhost.spec.deployment import AksDeploymentConfig, LocalDeploymentConfig
from modelhost.store.records import ServiceKeys
from modelhost.types import ReplicaId, ServiceName

SVC = ServiceName("svc")


def replica(n: int, generation: int, state: ReplicaState = "ready") -> ReplicaStatus:
    rid = ReplicaId(f"r{n}")
    return ReplicaStatus(rid, SVC, generation, state, "127.0.0.1", 9000 + n, None, 0, None, 0.0)


def status(generation: int, desired: int, *replicas: ReplicaStatus) -> ServiceStatus:
    return ServiceStatus(SVC, generation, "Transitioning", desired, replicas)


def routed_ids(st: ServiceStatus | None, *, excluded: frozenset[str] = frozenset()) -> list[str]:
    settings = AksDeploymentConfig(num_replicas=2, autoscale_enabled=False).resolved().runtime_settings()
    source = RouteSource("svc", settings, ServiceKeys("p", "s"), st, excluded)
    return [r.id for r in build_table([source], 1).services["svc"].replicas]


@pytest.mark.parametrize(
    ("st", "expected"),
    [
        pytest.param(None, [], id="no-status"),
        pytest.param(status(1, 2, replica(1, 1), replica(2, 1, "starting")), ["r1"], id="ready-only"),
        pytest.param(
            status(2, 2, replica(1, 1), replica(2, 1), replica(3, 2), replica(4, 2, "starting")),
            ["r1", "r2", "r3"],
            id="rolling-new-generation-incomplete-both-serve",
        ),
        pytest.param(
            status(2, 2, replica(1, 1), replica(2, 1), replica(3, 2), replica(4, 2)),
            ["r3", "r4"],
            id="rolling-new-generation-complete-old-leaves",
        ),
        pytest.param(status(2, 1, replica(1, 1), replica(3, 2, "crashed")), ["r1"], id="new-generation-down"),
    ],
)
def test_route_holds_the_replicas_that_should_serve(st: ServiceStatus | None, expected: list[str]) -> None:
    assert routed_ids(st) == expected


def test_excluded_replicas_drain_out_of_the_route() -> None:
    st = status(1, 2, replica(1, 1), replica(2, 1))
    assert routed_ids(st, excluded=frozenset({"r2"})) == ["r1"]


def test_local_services_are_not_routed_and_keys_travel_with_the_route() -> None:
    local = RouteSource("loc", LocalDeploymentConfig(port=5005).resolved().runtime_settings(), None, None)
    aks = RouteSource(
        "svc",
        AksDeploymentConfig().resolved().runtime_settings(),
        ServiceKeys("primary", "secondary"),
        status(1, 1, replica(1, 1)),
    )
    table = build_table([local, aks], 7)
    assert list(table.services) == ["svc"]
    assert table.services["svc"].keys == ("primary", "secondary")
    assert table.services["svc"].auth_enabled is True
    assert table.version == 7
