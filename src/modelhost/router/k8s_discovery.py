"""The router's routing table learned from the Kubernetes API instead of the control plane.

``python -m modelhost.router --discover kubernetes --namespace N [--kubeconfig F]`` (in-cluster
config without ``--kubeconfig``) watches, in namespace ``N``:

- the services' anchors (ConfigMaps ``app.kubernetes.io/component=anchor``): which services exist,
  and their route settings when the anchor's ``data.route`` holds them (JSON with the keys of a
  routing-table route, see :mod:`.table`; defaults otherwise);
- their keys Secrets (``component=keys``: ``primaryKey``/``secondaryKey``);
- their EndpointSlices (``kubernetes.io/service-name=modelhost-<service>``), in
  ``discovery.k8s.io/v1``, or ``v1beta1`` where the server does not serve v1 (Kubernetes < 1.21);
- the token keys ConfigMap (``component=token-keys``: ``issuer`` and ``keys``, JSON of
  ``kid -> Ed25519 public key``): what token-auth services' JWTs are verified with, offline;

and publishes a :class:`~.table.RoutingTable` holding only **ready** endpoints after every change.
:func:`table_from_objects` is the pure part; :class:`KubernetesDiscovery` does the watching.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.errors import ValidationError
from modelhost.router.table import Replica, RoutingTable, table_from_json

__all__ = ["DiscoveryOptions", "KubernetesDiscovery", "serve_with_discovery", "table_from_objects"]

log = logging.getLogger("modelhost.router")

_SLICE_PREFIX = "modelhost-"
_SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_COMPONENT = "app.kubernetes.io/component"
_MANAGED = "app.kubernetes.io/managed-by=modelhost"
_ROUTE_KEYS = (
    "auth_enabled", "auth_mode", "max_concurrent_per_replica", "max_queue_wait_ms", "scoring_timeout_ms",
    "scale_to_zero", "cold_start_wait_ms", "desired_replicas",
)
Obj = Mapping[str, Any]


@dataclass(frozen=True)
class DiscoveryOptions:
    namespace: str
    kubeconfig: Path | None = None  # None: the pod's in-cluster configuration
    context: str | None = None


def _labels(obj: Obj) -> Mapping[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _decode(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _keys(secret: Obj | None) -> tuple[str, ...]:
    data = (secret or {}).get("data") or {}
    found = (_decode(data.get("primaryKey")), _decode(data.get("secondaryKey")))
    return tuple(k for k in found if k)


def _ready_replicas(slices: Iterable[Obj]) -> tuple[Replica, ...]:
    """Every ready endpoint of the slices, on the port named ``http`` (else the first)."""
    found: dict[str, Replica] = {}
    for s in slices:
        ports = s.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") == "http"), None)
        port = port if port is not None else (ports[0].get("port") if ports else None)
        if not isinstance(port, int):
            continue
        for endpoint in s.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is not True:
                continue  # v1: ready is false while terminating, and unset means unknown
            for address in (endpoint.get("addresses") or [])[:1]:
                ref = endpoint.get("targetRef") or {}
                rid = str(ref.get("name") or address)
                found[rid] = Replica(rid, str(address), port)
    return tuple(found[k] for k in sorted(found))


def _settings(anchor: Obj, name: str) -> dict[str, Any]:
    raw = (anchor.get("data") or {}).get("route")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        log.warning("service %s: the anchor's data.route is not JSON; using default route settings", name)
        return {}
    return {k: parsed[k] for k in _ROUTE_KEYS if isinstance(parsed, dict) and k in parsed}


def _token_settings(configs: Iterable[Obj]) -> dict[str, Any]:
    """``token_issuer``/``token_keys`` from the token keys ConfigMap; none when absent or invalid."""
    for config in configs:
        data = config.get("data") or {}
        try:
            keys = json.loads(data.get("keys") or "{}")
            found = {"token_issuer": data.get("issuer") or None, "token_keys": keys}
            table_from_json(found)  # validates the issuer and that each key is a public key
        except (ValueError, ValidationError) as exc:
            log.warning("discovery: the token keys ConfigMap is not valid (%s); token auth refuses all",
                        getattr(exc, "message", type(exc).__name__))
            return {}
        return found
    return {}


def table_from_objects(anchors: Iterable[Obj], secrets: Iterable[Obj], slices: Iterable[Obj],
                       version: int, token_configs: Iterable[Obj] = ()) -> RoutingTable:
    """The table for the namespace's objects now (pure). A service exists when its anchor does."""
    by_service: dict[str, list[Obj]] = {}
    for s in slices:
        owner = _labels(s).get(_SERVICE_NAME_LABEL, "")
        if owner.startswith(_SLICE_PREFIX):
            by_service.setdefault(owner[len(_SLICE_PREFIX):], []).append(s)
    keys = {_labels(s).get("modelhost.io/service"): s for s in secrets}
    routes: dict[str, Any] = {}
    for anchor in anchors:
        name = (anchor.get("data") or {}).get("service") or _labels(anchor).get("modelhost.io/service")
        if not isinstance(name, str) or not name:
            continue
        replicas = _ready_replicas(by_service.get(name, []))
        settings = _settings(anchor, name)
        route = {
            "replicas": [{"id": r.id, "host": r.host, "port": r.port} for r in replicas],
            # a token service's keys never enter the table (D12)
            "keys": [] if settings.get("auth_mode") == "token" else list(_keys(keys.get(name))),
            **settings,
        }
        routes[name] = route
    tokens = _token_settings(token_configs)
    try:
        return table_from_json({"services": routes, "version": version, **tokens})
    except ValidationError as exc:  # one bad anchor must not take every route down
        log.warning("discovery: %s; keeping services with valid settings only", exc.message)
        good = {}
        for name, route in routes.items():
            try:
                table_from_json({"services": {name: route}})
                good[name] = route
            except ValidationError:
                continue
        return table_from_json({"services": good, "version": version, **tokens})


class KubernetesDiscovery:
    """Watches anchors, keys Secrets and EndpointSlices; calls ``publish`` with each new table."""

    def __init__(self, options: DiscoveryOptions, publish: Callable[[RoutingTable], None],
                 api_client: Any = None) -> None:
        self._options = options
        self._publish = publish
        self._api = api_client if api_client is not None else _api_client(options)
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Obj]] = {"anchors": {}, "secrets": {}, "slices": {}, "tokens": {}}
        self._version = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.slice_version = ""

    def start(self) -> KubernetesDiscovery:
        from kubernetes import client

        core = client.CoreV1Api(self._api)
        custom = client.CustomObjectsApi(self._api)
        self.slice_version = self._served_slice_version(custom)
        ns = self._options.namespace
        sources: dict[str, Callable[..., Any]] = {
            "anchors": lambda **kw: core.list_namespaced_config_map(
                ns, label_selector=f"{_MANAGED},{_COMPONENT}=anchor", **kw),
            "secrets": lambda **kw: core.list_namespaced_secret(
                ns, label_selector=f"{_MANAGED},{_COMPONENT}=keys", **kw),
            "tokens": lambda **kw: core.list_namespaced_config_map(
                ns, label_selector=f"{_MANAGED},{_COMPONENT}=token-keys", **kw),
            "slices": lambda **kw: custom.list_namespaced_custom_object(
                "discovery.k8s.io", self.slice_version, ns, "endpointslices",
                label_selector=_SERVICE_NAME_LABEL, **kw),
        }
        for kind, lister in sources.items():
            self._relist(kind, lister)
        self._emit()
        for kind, lister in sources.items():
            thread = threading.Thread(target=self._watch, args=(kind, lister), daemon=True,
                                      name=f"k8s-discovery-{kind}")
            thread.start()
            self._threads.append(thread)
        log.info("discovering services in namespace %s (EndpointSlices %s)", ns, self.slice_version)
        return self

    def stop(self) -> None:
        self._stop.set()

    def table(self) -> RoutingTable:
        with self._lock:
            self._version += 1
            objects = {k: list(v.values()) for k, v in self._objects.items()}
            version = self._version
        return table_from_objects(objects["anchors"], objects["secrets"], objects["slices"], version,
                                  objects["tokens"])

    def _emit(self) -> None:
        self._publish(self.table())

    def _served_slice_version(self, custom: Any) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            custom.list_namespaced_custom_object(
                "discovery.k8s.io", "v1", self._options.namespace, "endpointslices", limit=1)
        except ApiException as exc:
            if exc.status == 404:  # Kubernetes < 1.21 serves only v1beta1
                return "v1beta1"
            raise
        return "v1"

    def _as_dict(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        converted: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return converted

    def _relist(self, kind: str, lister: Callable[..., Any]) -> str:
        answer = self._as_dict(lister())
        items = {self._key(o): o for o in answer.get("items") or []}
        with self._lock:
            self._objects[kind] = items
        return str((answer.get("metadata") or {}).get("resourceVersion") or "")

    @staticmethod
    def _key(obj: Obj) -> str:
        return str(obj.get("metadata", {}).get("name"))

    def _watch(self, kind: str, lister: Callable[..., Any]) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist(kind, lister)
                    self._emit()
                w = watch.Watch()  # type: ignore[no-untyped-call]
                events = w.stream(lister, resource_version=version, timeout_seconds=30)  # type: ignore[no-untyped-call]
                for event in events:
                    if self._stop.is_set():
                        w.stop()  # type: ignore[no-untyped-call]
                        return
                    obj = self._as_dict(event["object"])
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    with self._lock:
                        if event["type"] == "DELETED":
                            self._objects[kind].pop(self._key(obj), None)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self._objects[kind][self._key(obj)] = obj
                    self._emit()
            except ApiException as exc:
                if exc.status == 410:  # the resource version is too old: list again
                    version = ""
                    continue
                log.warning("discovery: watching %s failed (HTTP %s); retrying", kind, exc.status)
                version = ""
                self._stop.wait(1.0)
            except Exception as exc:  # a broken connection: list again after a pause
                log.warning("discovery: watching %s failed (%s); retrying", kind, type(exc).__name__)
                version = ""
                self._stop.wait(1.0)


def _api_client(options: DiscoveryOptions) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    if options.kubeconfig is None:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(options.kubeconfig), context=options.context, client_configuration=cfg,
            persist_config=False)
    return client.ApiClient(cfg)


async def _serve(config: Any, options: DiscoveryOptions) -> None:
    from modelhost.router.app import Router

    router = Router(config)
    await router.start()
    loop = asyncio.get_running_loop()

    def publish(table: RoutingTable) -> None:
        loop.call_soon_threadsafe(router.publish, table)

    discovery = await loop.run_in_executor(None, lambda: KubernetesDiscovery(options, publish).start())
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    discovery.stop()
    await router.stop()


def serve_with_discovery(config: Any, options: DiscoveryOptions) -> None:
    """Run the router (``RouterConfig``) with its table from the Kubernetes API until SIGTERM."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(config, options))
    else:
        uvloop.run(_serve(config, options))
