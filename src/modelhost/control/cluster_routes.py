"""What the in-cluster router reads, kept in step with the control plane (docs/kubernetes.md).

A router installed in a cluster (``modelhost compute install-router``) learns its table from the
namespace, not from the control plane: each service's anchor ConfigMap (``data.route``: auth mode,
limits, timeouts), its keys Secret and the token keys ConfigMap (public keys only). The deploy writes
them; :class:`ClusterRouteSync` re-applies them whenever they change afterwards: keys regenerated,
a configuration-only update, ``modelhost keys rotate``. :meth:`ClusterRouteSync.sync_now` runs in
the caller's thread (the operation returns once the cluster has the change); a background thread
retries what failed (a cluster that could not be reached) every ``interval_s``.

:func:`anchor_route` is the pure part: a service's route settings as the anchor carries them (the
routing table's route keys; never the replicas, the keys or the replica count, which change on
their own and have their own sources).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from modelhost.control.routing import RouteSource, build_table
from modelhost.errors import ModelhostError
from modelhost.router.table import table_to_json
from modelhost.runtime.k8s_render import ANCHOR_ROUTE_KEYS, ServiceKeys
from modelhost.types import ServiceName

__all__ = ["ClusterRouteSync", "anchor_keys", "anchor_route"]

_log = logging.getLogger("modelhost.control")

TokenKeys = Callable[[], tuple[str, Mapping[str, str]]]


def anchor_route(source: RouteSource | None) -> dict[str, Any] | None:
    """The service's route settings for its anchor's ``data.route`` (None: not routed)."""
    if source is None:
        return None
    table = build_table([source], 0)
    if source.name not in table.services:
        return None  # a Local service: not routed by any router
    route = table_to_json(table)["services"][source.name]
    return {k: route[k] for k in ANCHOR_ROUTE_KEYS}


def anchor_keys(source: RouteSource) -> ServiceKeys | None:
    """The keys the keys Secret carries (the store's pair), or None for a service without keys."""
    if source.keys is None:
        return None
    return ServiceKeys(source.keys.primary, source.keys.secondary)


class ClusterRouteSync:
    """Re-applies changed routes, keys and token keys to each cluster target (see the module docstring).

    ``sources()`` lists ``(target, RouteSource)`` for every service on a cluster; ``runtime_for``
    gives a target's runtime (a ``KubernetesRuntime``: ``update_route``, ``update_token_keys``);
    ``tokens()`` the issuer and the public keys of the signing keys.
    """

    def __init__(self, sources: Callable[[], list[tuple[str, RouteSource]]],
                 runtime_for: Callable[[str], Any], tokens: TokenKeys | None = None, *,
                 interval_s: float = 5.0) -> None:
        self._sources = sources
        self._runtime_for = runtime_for
        self._tokens = tokens
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._applied: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # service -> target, route, keys
        self._token_applied: dict[str, str] = {}  # target -> JSON of (issuer, keys)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelhost-cluster-routes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def sync_now(self) -> None:
        """Apply every change since the last sync; failures are logged and retried later."""
        try:
            with self._lock:
                self._sync()
        except Exception:  # the caller's operation succeeded locally; the loop retries
            _log.exception("updating the in-cluster router's routes failed")

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sync_now()

    def _sync(self) -> None:
        sources = self._sources()
        live = {s.name for _, s in sources}
        for gone in set(self._applied) - live:
            del self._applied[gone]
        targets = sorted({t for t, _ in sources})
        for target in targets:
            self._sync_tokens(target)
        for target, source in sources:
            route = anchor_route(source)
            keys = anchor_keys(source)
            wanted = (target, json.dumps(route, sort_keys=True),
                      (keys.primary, keys.secondary) if keys is not None else ())
            if self._applied.get(source.name) == wanted:
                continue
            try:
                runtime = self._runtime_for(target)
                if not hasattr(runtime, "update_route"):
                    continue
                if runtime.update_route(ServiceName(source.name), keys, route):
                    self._applied[source.name] = wanted
            except ModelhostError as exc:
                _log.warning("compute target %s: route of %s not updated: %s", target, source.name,
                             exc.one_line())

    def _sync_tokens(self, target: str) -> None:
        if self._tokens is None:
            return
        issuer, keys = self._tokens()
        wanted = json.dumps([issuer, dict(keys)], sort_keys=True)
        if self._token_applied.get(target) == wanted:
            return
        try:
            runtime = self._runtime_for(target)
            if not hasattr(runtime, "update_token_keys"):
                return
            runtime.update_token_keys(issuer, keys)
            self._token_applied[target] = wanted
        except ModelhostError as exc:
            _log.warning("compute target %s: token keys not updated: %s", target, exc.one_line())
