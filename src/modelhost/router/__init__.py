"""The router: the one front door for every service (auth, limits, queue, least-loaded choice).

The forwarding path is asyncio Protocols with httptools and pooled keep-alive upstream
connections (:mod:`.proxy`, :mod:`.upstream`); Starlette serves only the router's own endpoints.
The control plane publishes a :class:`RoutingTable` (``PUT /-/table``) or points the router at a
JSON file, and reads the load signal from ``GET /-/load``.
"""

from modelhost.router.app import Router, RouterConfig, run
from modelhost.router.table import (
    Replica,
    RoutingTable,
    ServiceLoad,
    ServiceRoute,
    read_table_file,
    table_from_json,
    table_to_json,
)

__all__ = [
    "Replica",
    "Router",
    "RouterConfig",
    "RoutingTable",
    "ServiceLoad",
    "ServiceRoute",
    "read_table_file",
    "run",
    "table_from_json",
    "table_to_json",
]
