"""The router's live state: the current table, each service's admission, each replica's pool.

:meth:`RouterState.swap` adopts a new table without disturbing requests in flight: admissions are
updated in place (their slot counts carry over), pools of replicas that left are retired (idle
connections closed now, busy ones when their exchange ends).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from modelhost.router.admission import DEFAULT_MAX_QUEUE, ServiceAdmission
from modelhost.router.auth import bearer_forms
from modelhost.router.table import Replica, RoutingTable, ServiceLoad, ServiceRoute
from modelhost.router.tokens import TokenVerifier
from modelhost.router.upstream import UpstreamPool

__all__ = ["RouterState", "Service"]

log = logging.getLogger("modelhost.router")


@dataclass(eq=False, slots=True)
class Service:
    """A service as the hot path needs it: route, admission, keys as bytes, timeout in seconds."""

    name: str
    route: ServiceRoute
    admission: ServiceAdmission
    keys: tuple[bytes, ...]
    timeout_s: float
    bearers: tuple[bytes, ...] = ()

    def adopt(self, route: ServiceRoute) -> None:
        self.route = route
        self.keys = tuple(k.encode() for k in route.keys)
        self.bearers = bearer_forms(self.keys)
        self.timeout_s = route.scoring_timeout_ms / 1000
        self.admission.update(route)


class RouterState:
    """Table, admissions and pools, swapped as one (see the module docstring)."""

    def __init__(self, *, rng: random.Random | None = None, max_queue: int = DEFAULT_MAX_QUEUE,
                 pool_idle_timeout_s: float = 4.0) -> None:
        self.table = RoutingTable()
        self.services: dict[str, Service] = {}
        self.pools: dict[str, UpstreamPool] = {}
        self.tokens = TokenVerifier()  # the table's token keys; a new one (empty cache) when they change
        self._rng = rng or random.Random()
        self._max_queue = max_queue
        self._pool_idle_timeout_s = pool_idle_timeout_s

    def swap(self, table: RoutingTable) -> None:
        """Adopt ``table``; requests in flight finish where they are."""
        for name, route in table.services.items():
            service = self.services.get(name)
            if service is None:
                admission = ServiceAdmission(route, rng=self._rng, max_queue=self._max_queue)
                self.services[name] = Service(name, route, admission, (), 0.0)
                self.services[name].adopt(route)
            else:
                service.adopt(route)
        for name in [n for n in self.services if n not in table.services]:
            self.services.pop(name).admission.close()
        self._swap_pools(table)
        self.tokens = self.tokens.adopt(table.token_issuer, table.token_keys)
        self.table = table
        log.info("routing table version %d adopted: %d services", table.version, len(table.services))

    def _swap_pools(self, table: RoutingTable) -> None:
        wanted: dict[str, Replica] = {r.id: r for route in table.services.values() for r in route.replicas}
        for rid, pool in list(self.pools.items()):
            replica = wanted.get(rid)
            if replica is None or (replica.host, replica.port) != (pool.host, pool.port):
                pool.retire()
                del self.pools[rid]
        for rid, replica in wanted.items():
            if rid not in self.pools:
                self.pools[rid] = UpstreamPool(replica.host, replica.port,
                                               idle_timeout_s=self._pool_idle_timeout_s)

    def pool(self, replica: Replica) -> UpstreamPool:
        """The pool for a replica; a retired stand-in when the replica left the table meanwhile."""
        pool = self.pools.get(replica.id)
        if pool is None or (pool.host, pool.port) != (replica.host, replica.port):
            pool = UpstreamPool(replica.host, replica.port)
            pool.retired = True
        return pool

    def loads(self) -> dict[str, ServiceLoad]:
        """Every service's load signal, sampled now."""
        return {name: service.admission.load() for name, service in self.services.items()}

    def sweep(self, now: float) -> None:
        for pool in self.pools.values():
            pool.sweep(now)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close_all()
