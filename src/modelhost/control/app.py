"""Composition root of the control plane: settings -> store, artifacts, builder, runtime, router,
routing-table publisher, autoscaler, services -> ASGI app.

At start the local runtime re-adopts the replicas a previous control plane left running (without
restarting them), the router is found or started (it outlives the control plane), the routing table
is published, and services the store records but the runtime lacks are deployed again. Handlers stay
in :mod:`.api`. The app answers every error with the JSON of :meth:`ModelhostError.to_payload`:
``ModelhostError`` with its own status, an unknown route or method as 404/405, anything else as a
500 whose details stay in the control plane's log.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhost import __version__
from modelhost.build.environment import EnvironmentBuilder
from modelhost.control import api
from modelhost.control.autoscaler import AutoscalerLoop, RouterLoadSource
from modelhost.control.cluster_images import TargetImages
from modelhost.control.cluster_routes import ClusterRouteSync, anchor_route
from modelhost.control.compute import ComputeService, read_or_create_fetch_token
from modelhost.control.data_upload import upload_allowed
from modelhost.control.deploy import Deployer
from modelhost.control.environments import EnvironmentService
from modelhost.control.in_cluster import InClusterConfig, register_in_cluster
from modelhost.control.models import ModelService
from modelhost.control.operations import Operations
from modelhost.control.pod_logs import PodLogMirror
from modelhost.control.router_process import router_healthy, stop_router
from modelhost.control.router_scaler import RouterScalePolicy, RouterScaler
from modelhost.control.routing import RoutePublisher
from modelhost.control.runtimes import RuntimeSet, kubernetes_factory
from modelhost.control.services import ServiceManager
from modelhost.control.signing_keys import SigningKeys
from modelhost.control.telemetry_logs import ReplicaTelemetry
from modelhost.control.tokens import TokenPolicy, TokenService
from modelhost.errors import AuthenticationError, ModelhostError
from modelhost.runtime.local import LocalRuntime
from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.database import mask_url
from modelhost.store.metadata import Store

__all__ = ["ControlContext", "create_app", "open_context"]

_log = logging.getLogger("modelhost.control")
GC_MIN_AGE_S = 3600.0
# A replica retired by a rolling update or a scale-down leaves the routing table this long before
# its SIGTERM (the publisher runs every 0.2 s), so no request is sent to a closing replica.
DRAIN_S = 1.0


@dataclass
class ControlContext:
    """Everything the handlers reach: built once at start, closed at stop."""

    settings: Settings
    token: str
    store: Store
    artifacts: ArtifactStore
    operations: Operations
    models: ModelService
    environments: EnvironmentService
    runtime: RuntimeSet
    services: ServiceManager
    publisher: RoutePublisher
    autoscaler: AutoscalerLoop
    load_source: RouterLoadSource
    tokens: TokenService | None = None
    compute: ComputeService | None = None
    fetch_token: str | None = None  # read-only token for GET /api/v1/blobs/* (pods' init container)
    url: str = field(default="")
    telemetry: ReplicaTelemetry | None = None  # replicas' print() output as log records (docs/telemetry.md)
    pod_logs: PodLogMirror | None = None  # Kubernetes replicas' output mirrored for the telemetry tailer
    cluster_routes: ClusterRouteSync | None = None  # routes/keys/token keys of in-cluster routers
    router_scaler: RouterScaler | None = None  # FastProd in-cluster routers scale by their load

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.settings.home.name,
            "home": str(self.settings.home),
            "url": self.url,
            "version": __version__,
            "database": mask_url(self.settings.database_url),
            "pid": os.getpid(),
        }

    def router_status(self) -> dict[str, Any]:
        """``GET /api/v1/router``: where the router listens, its pid, whether it answers."""
        info = self.publisher.router
        url = f"http://{self.settings.host}:{self.settings.router_port}"
        return {
            "url": info.url if info else url,
            "pid": info.pid if info else None,
            "healthy": info is not None and router_healthy(info),
            "error": self.publisher.router_error,
        }

    def close(self) -> None:
        """Stop the loops and the supervision; replicas (and, while services exist, the router)
        keep running for the next control plane to adopt."""
        self.autoscaler.stop()
        if self.cluster_routes is not None:
            self.cluster_routes.stop()
        if self.router_scaler is not None:
            self.router_scaler.stop()
        if self.pod_logs is not None:
            self.pod_logs.stop()
        if self.telemetry is not None:
            self.telemetry.close()
        self.load_source.close()
        self.publisher.stop()
        if not self.services.has_services():
            stop_router(self.settings)  # nothing to serve: no reason to outlive the control plane
        self.runtime.close()
        self.store.close()


def open_context(settings: Settings, token: str) -> ControlContext:
    """Open the store (``StoreUnavailableError`` when it cannot be reached), adopt the replicas,
    start the router, the routing-table publisher and the autoscaler, and wire the services."""
    for folder in (settings.home, settings.logs_dir, settings.blobs_dir, settings.envs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    store = Store.open(settings.database_url)
    try:
        artifacts = ArtifactStore(settings.blobs_dir)
        # blobs of deleted models and abandoned uploads; an hour's grace covers any upload in flight
        removed = artifacts.remove_unreferenced(store.referenced_blobs(), min_age_s=GC_MIN_AGE_S)
        if removed:
            _log.info("removed %d unreferenced blob(s)", len(removed))
        compute = ComputeService(settings.home)
        in_cluster = InClusterConfig.from_env(os.environ)  # installed in a cluster: its namespace
        if in_cluster is not None:                        # is a compute target (docs/kubernetes.md)
            register_in_cluster(compute, in_cluster)
        runtime = RuntimeSet(
            LocalRuntime(
                settings.home, artifacts=artifacts, drain_s=DRAIN_S, replica_user=settings.replica_user
            )
        )
        fetch_token = read_or_create_fetch_token(settings.home)
    except BaseException:
        store.close()
        raise
    adopted = runtime.adopt()
    if adopted:
        _log.info("adopted %d service(s) from the previous control plane", len(adopted))
    operations = Operations()
    builder = EnvironmentBuilder(settings)
    environments = EnvironmentService(store, builder, operations)
    deployer = Deployer(
        store, artifacts, builder, runtime, ensure_environment=environments.ensure_for_service,
        environment_image=runtime.prepare_image,
    )
    services = ServiceManager(settings, store, artifacts, runtime, operations, deployer)
    policy = TokenPolicy.from_env(os.environ)
    tokens = TokenService(SigningKeys.open(settings.home, ttl_s=policy.ttl_s, now=time.time()), policy,
                          lambda name: services.settings_of(store.get_service(name)).auth,
                          publish=lambda: publish_routes())
    publisher = RoutePublisher(settings, services.route_sources, tokens=tokens.table_keys)
    services.publisher = publisher
    runtime.target_of = services.compute_target_of
    compute.services_using = services.services_on
    services.compute_exists = compute.exists
    images = TargetImages(compute, control_url=f"http://{settings.host}:{settings.control_port}")
    runtime.images = images
    runtime.factory = kubernetes_factory(
        compute,
        artifacts,
        images=images,
        control_url=f"http://{settings.host}:{settings.control_port}",
        fetch_token=fetch_token,
        keys=services.keys_of,
        route=lambda name: anchor_route(services.route_source(name)),
        token_keys=tokens.table_keys,
    )

    def detached(name: str) -> None:
        runtime.close_target(name)
        images.forget(name)

    compute.on_detach = detached
    # in-cluster routers read routes, keys and token keys from their namespace: keep them current
    cluster_routes = ClusterRouteSync(services.cluster_route_sources, runtime.for_target, tokens.table_keys)
    services.on_routes_changed = cluster_routes.sync_now

    def publish_routes() -> None:  # a key rotation reaches the local router and every cluster's
        publisher.publish_now()
        cluster_routes.sync_now()

    if publisher.check_router_now() is None:
        _log.error("the router is not running: %s", publisher.router_error)
    publisher.publish_now()
    publisher.start()
    load_source = RouterLoadSource(f"http://{settings.host}:{settings.router_port}")
    autoscaler = AutoscalerLoop(
        runtime,
        load_source,
        publisher,
        services.autoscale_configs,
        drain_timeout_s=services.scoring_timeout_s,
    )

    def utilization(name: str) -> float | None:
        scaling = autoscaler.snapshot().get(name)  # type: ignore[call-overload]
        return scaling.utilization if scaling is not None else None

    services.utilization = utilization
    autoscaler.start()
    cluster_routes.start()
    router_scaler = RouterScaler(
        lambda: [(v["name"], v["namespace"]) for v in compute.list_views()
                 if v.get("clusterPurpose") == "FastProd"],
        compute.api_client, RouterScalePolicy.from_env(os.environ))
    router_scaler.start()
    services.restore()
    telemetry = ReplicaTelemetry(
        settings.home / "telemetry",
        settings.logs_dir / "replicas",
        lambda: [s.name for s in services.route_sources() if s.settings.enable_app_insights],
        workspace=settings.home.name,
        env=dict(os.environ),
    )
    telemetry.start()
    pod_logs = PodLogMirror(  # pods' output into the files the tailer reads (control/pod_logs.py)
        settings.logs_dir / "replicas",
        lambda: [s.name for s in services.route_sources() if s.settings.enable_app_insights],
        runtime.log_streams,
    )
    pod_logs.start()
    return ControlContext(
        settings=settings,
        token=token,
        store=store,
        artifacts=artifacts,
        operations=operations,
        models=ModelService(store, artifacts),
        environments=environments,
        runtime=runtime,
        services=services,
        publisher=publisher,
        autoscaler=autoscaler,
        load_source=load_source,
        tokens=tokens,
        compute=compute,
        fetch_token=fetch_token,
        url=f"http://{settings.host}:{settings.control_port}",
        telemetry=telemetry,
        pod_logs=pod_logs,
        cluster_routes=cluster_routes,
        router_scaler=router_scaler,
    )


class BearerAuth:
    """Refuse requests under ``prefix`` that lack ``Authorization: Bearer <token>`` (401, error JSON)."""

    def __init__(
        self, app: ASGIApp, token: str, prefix: str = "/api/", blob_token: str | None = None
    ) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._prefix = prefix
        # pods on an attached cluster fetch blobs with this token; it opens nothing else
        self._blob_read = f"Bearer {blob_token}".encode() if blob_token else None
        self._fetch = blob_token

    def _blob_read_allowed(self, scope: Scope, given: bytes) -> bool:
        return (
            self._blob_read is not None
            and scope.get("method") == "GET"
            and str(scope["path"]).startswith("/api/v1/blobs/")
            and hmac.compare_digest(given, self._blob_read)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(self._prefix):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if (
                not hmac.compare_digest(given, self._expected)
                and not self._blob_read_allowed(scope, given)
                # pods' uploader sidecars: PUT .../services/<name>/data/... with <name>'s upload token
                and not upload_allowed(str(scope.get("method")), str(scope["path"]), given, self._fetch)
            ):
                what = "a wrong token" if given else "no token"
                error = AuthenticationError(
                    f"The control plane refused the request to {scope['path']}: {what}"
                )
                response = JSONResponse(
                    error.to_payload(), status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class UnexpectedErrors:
    """Turn an unexpected exception into a 500 with the error JSON; the traceback goes to the log only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            _log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            error = ModelhostError(
                f"The control plane failed on {scope.get('method')} {scope.get('path')}: {type(exc).__name__}"
            )
            await JSONResponse(error.to_payload(), status_code=500)(scope, receive, send)


async def _modelhost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelhostError)
    return JSONResponse(exc.to_payload(), status_code=exc.status_code)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    payload = {
        "error": {
            "code": code,
            "message": f"{request.method} {request.url.path}: {exc.detail}",
            "hint": "See /openapi.json for the routes this control plane serves.",
            "details": [],
        }
    }
    return JSONResponse(payload, status_code=exc.status_code, headers=exc.headers)


def create_app(ctx: ControlContext) -> Starlette:
    """The control plane's ASGI app over an opened context."""
    app = Starlette(
        routes=api.routes(),
        middleware=[
            Middleware(UnexpectedErrors),
            Middleware(BearerAuth, token=ctx.token, blob_token=ctx.fetch_token),
        ],
        exception_handlers={ModelhostError: _modelhost_error, HTTPException: _http_error},
    )
    app.state.ctx = ctx
    return app
