"""The router's Prometheus families for the load signal: utilization and the desired replica count."""

from __future__ import annotations

from modelhost.router.metrics import RouterMetrics
from modelhost.router.table import ServiceLoad, table_from_json, table_to_json


def test_utilization_and_desired_replicas_are_exported() -> None:
    loads = {"a": ServiceLoad(replicas=2, busy=1.0, queued=2, in_flight=1), "b": ServiceLoad(0, 0.0, 3, 0)}
    text = RouterMetrics(lambda: loads, lambda: {"a": 4, "b": None}).render().decode()
    assert 'modelhost_router_utilization{service="a"} 1.5' in text  # (1 busy + 2 queued) / 2 replicas
    assert 'modelhost_router_desired_replicas{service="a"} 4.0' in text
    # no replica: utilization is undefined, and no desired count was published for b
    assert 'modelhost_router_utilization{service="b"}' not in text
    assert 'modelhost_router_desired_replicas{service="b"}' not in text


def test_desired_replicas_travel_in_the_table_json() -> None:
    table = table_from_json({"services": {"a": {"replicas": [], "desired_replicas": 3}}})
    assert table.services["a"].desired_replicas == 3
    assert table_from_json(table_to_json(table)) == table
