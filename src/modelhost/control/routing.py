"""The routing table: built from the services and the runtime's status, published to the router.

:func:`build_table` is pure: each routed service (Local services answer on their own port and are
not routed) with its **ready** replicas only, its keys and its limits. :class:`RoutePublisher` is a
thread that rebuilds the table every ``interval_s`` and publishes it when it changed: written
atomically to ``<home>/router/table.json`` (0600, it holds keys; the router re-reads it, also after
its own restart) and ``PUT`` to the router's ``/-/table`` for immediacy. It also keeps the router
alive: a router found dead is started again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import httpx

from modelhost.control.discovery import write_private
from modelhost.control.router_process import (
    RouterInfo,
    ensure_router,
    find_router,
    read_router_info,
    table_file,
)
from modelhost.errors import ModelhostError
from modelhost.router.table import (
    Replica,
    RoutingTable,
    ServiceRoute,
    read_table_file,
    table_to_json,
)
from modelhost.runtime.base import ReplicaStatus, ServiceStatus
from modelhost.settings import Settings
from modelhost.spec.deployment import RuntimeSettings
from modelhost.store.records import ServiceKeys

__all__ = ["RoutePublisher", "RouteSource", "build_table", "same_routes"]

_log = logging.getLogger("modelhost.control")
ROUTER_CHECK_S = 2.0


@dataclass(frozen=True)
class RouteSource:
    """What the table needs of one service."""

    name: str
    settings: RuntimeSettings
    keys: ServiceKeys | None
    status: ServiceStatus | None
    excluded: frozenset[str] = frozenset()  # replicas the autoscaler drains
    # v1's APP_INSIGHTS_LOG_RESPONSE_ENABLED=false in the environment turns the response value off
    log_response: bool = True


def _routable(status: ServiceStatus | None) -> tuple[ReplicaStatus, ...]:
    """The ready replicas to route to: once the newest generation has all it wants ready, only it.

    During a rolling update both generations serve; as soon as the new one is complete the old one
    leaves the table (the router drains its in-flight requests), so a client that saw the update
    succeed is never answered by the old code.
    """
    if status is None:
        return ()
    current = tuple(r for r in status.ready if r.generation == status.generation)
    return current if current and len(current) >= status.desired_replicas else status.ready


def _route(source: RouteSource) -> ServiceRoute:
    s = source.settings
    ready = [r for r in _routable(source.status) if r.id not in source.excluded]
    keys = (source.keys.primary, source.keys.secondary) if source.keys is not None else ()
    autoscale = s.autoscale
    return ServiceRoute(
        name=source.name,
        replicas=tuple(Replica(id=r.id, host=r.host, port=r.port, ready=True) for r in ready),
        auth_enabled=s.auth != "none",
        auth_mode=s.auth,
        keys=keys if s.auth == "key" else (),  # a token service's keys stay out of the router
        max_concurrent_per_replica=s.max_concurrent_requests,
        max_queue_wait_ms=s.max_queue_wait_ms,
        scoring_timeout_ms=s.scoring_timeout_ms,
        scale_to_zero=autoscale is not None and autoscale.min_replicas == 0,
        desired_replicas=source.status.desired_replicas if source.status else None,
        telemetry=s.enable_app_insights,
        log_response=source.log_response,
    )


def build_table(sources: Iterable[RouteSource], version: int, *, token_issuer: str | None = None,
                token_keys: Mapping[str, str] | None = None) -> RoutingTable:
    """The table for ``sources`` (Local services left out), stamped ``version``, with the public
    keys (kid -> key) that verify the tokens of ``token_issuer``."""
    routed = sorted((s for s in sources if s.settings.compute_type != "Local"), key=lambda s: s.name)
    return RoutingTable(services={s.name: _route(s) for s in routed}, version=version,
                        token_issuer=token_issuer, token_keys=dict(token_keys or {}))


def same_routes(a: RoutingTable | None, b: RoutingTable) -> bool:
    """Whether two tables route the same (their versions aside)."""
    return a is not None and replace(a, version=0) == replace(b, version=0)


class RoutePublisher:
    """Rebuilds the table every ``interval_s`` from ``collect()`` and publishes changes.

    :meth:`publish_now` publishes synchronously (an operation that changed keys or removed a service
    returns only once the router has the new table).
    """

    def __init__(
        self,
        settings: Settings,
        collect: Callable[[], list[RouteSource]],
        *,
        interval_s: float = 0.2,
        manage_router: bool = True,
        tokens: Callable[[], tuple[str, Mapping[str, str]]] | None = None,
    ) -> None:
        self._settings = settings
        self._collect = collect
        self._tokens = tokens  # (issuer, public keys) for token auth, read at every rebuild
        self._interval_s = interval_s
        self._manage_router = manage_router
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last: RoutingTable | None = None
        self._excluded: dict[str, frozenset[str]] = {}
        self._router: RouterInfo | None = read_router_info(settings)
        self._router_checked = 0.0
        self._router_error: str | None = None
        self._version = self._file_version()
        self._thread = threading.Thread(target=self._run, name="modelhost-routes", daemon=True)

    def _file_version(self) -> int:
        try:
            return read_table_file(table_file(self._settings)).version
        except (OSError, ModelhostError):
            return 0

    @property
    def router(self) -> RouterInfo | None:
        return self._router

    @property
    def table(self) -> RoutingTable | None:
        return self._last

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def publish_now(self) -> RoutingTable:
        """Build and publish the table now (also when unchanged, so the router surely has it)."""
        with self._lock:
            return self._publish(force=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                with self._lock:
                    self._check_router()
                    self._publish(force=False)
            except Exception:  # the publisher must outlive one bad round
                _log.exception("publishing the routing table failed")

    def exclude(self, service: str, replica_ids: frozenset[str]) -> None:
        """The autoscaler's drain (``control.autoscaler.Routes``): publish ``service`` without
        ``replica_ids`` from now on (replacing the previous set); returns once published."""
        with self._lock:
            if replica_ids:
                self._excluded[service] = frozenset(replica_ids)
            else:
                self._excluded.pop(service, None)
            self._publish(force=False)

    def _publish(self, *, force: bool) -> RoutingTable:
        sources = [
            replace(s, excluded=self._excluded[s.name]) if s.name in self._excluded else s
            for s in self._collect()
        ]
        issuer, token_keys = self._tokens() if self._tokens is not None else (None, {})
        table = build_table(sources, self._version + 1, token_issuer=issuer, token_keys=token_keys)
        if same_routes(self._last, table) and not force:
            assert self._last is not None
            return self._last
        self._version += 1
        write_private(table_file(self._settings), json.dumps(table_to_json(table)) + "\n")
        self._last = table
        self._put(table)
        return table

    def _put(self, table: RoutingTable) -> None:
        info = self._router
        if info is None:
            return  # the router reads table.json when it starts
        try:
            response = httpx.put(
                f"{info.url}/-/table",
                json=table_to_json(table),
                headers={"Authorization": f"Bearer {info.token}"},
                timeout=5.0,
            )
            if response.status_code != 200:
                _log.error("the router refused the routing table: %s %s", response.status_code, response.text)
        except httpx.HTTPError as exc:
            _log.warning("could not publish the routing table to %s: %s (it reads the file)", info.url, exc)

    def _check_router(self) -> None:
        if not self._manage_router:
            return
        now = time.monotonic()
        if now - self._router_checked < ROUTER_CHECK_S:
            return
        self._router_checked = now
        found = find_router(self._settings)
        if found is not None:
            self._router, self._router_error = found, None
            return
        had = self._router is not None
        try:
            self._router = ensure_router(self._settings)
        except ModelhostError as exc:
            if self._router_error != exc.message:
                _log.error("the router is not running and could not be started: %s", exc.one_line())
            self._router, self._router_error = None, exc.message
            return
        self._router_error = None
        if had:
            _log.warning("the router was not running: started it again (pid %d)", self._router.pid)
        if self._last is not None:
            self._put(self._last)

    def check_router_now(self) -> RouterInfo | None:
        """Find (or start) the router at once; the publisher's own check runs every 2 s."""
        with self._lock:
            self._router_checked = 0.0
            self._check_router()
            return self._router

    @property
    def router_error(self) -> str | None:
        return self._router_error
