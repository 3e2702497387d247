"""Composition of the router: configuration, state, the forwarding protocol and its own endpoints.

One listening port carries everything. Paths under ``/api/v1/service/`` take the forwarding path
(:mod:`modelhost.router.proxy`); the rest goes to a small Starlette app:

    GET  /-/health   200 {"status": "ok", "table_version": N, "services": N}
    GET  /-/load     {"services": {name: {"replicas", "busy", "queued", "in_flight"}}}  (autoscaler signal);
                     with ``?by_replica=1`` each also has ``"in_flight_by_replica": {id: n}``
    GET  /metrics    Prometheus text format
    GET  /-/table    the current table (admin token)
    PUT  /-/table    publish a new table (admin token); 400 names the invalid key
    GET  /-/tls      {"enabled", "fingerprint_sha256", "error"}; POST re-reads the files now (admin token)

TLS (:mod:`modelhost.router.front_door`): ``--certfile/--keyfile`` or ``--tls-dir`` (``cert.pem`` +
``key.pem``, absent = plain HTTP); the files are watched and a new certificate is served to new
connections without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelhost.errors import AuthenticationError, ModelhostError, NotFoundError, ValidationError
from modelhost.router.auth import check_admin_token
from modelhost.router.front_door import CertWatcher, FrontDoor
from modelhost.router.metrics import AccessLog, RouterMetrics
from modelhost.router.proxy import MAX_BODY_BYTES, ProxyContext
from modelhost.router.state import RouterState
from modelhost.router.table import (
    RoutingTable,
    ServiceLoad,
    TableFileWatcher,
    table_from_json,
    table_to_json,
)
from modelhost.router.telemetry_pipe import TelemetryPipe
from modelhost.settings import DEFAULT_ROUTER_PORT

__all__ = ["Router", "RouterConfig", "run"]

log = logging.getLogger("modelhost.router")


@dataclass(frozen=True)
class RouterConfig:
    """The router's configuration; each field maps onto one ``python -m modelhost.router`` flag."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_ROUTER_PORT
    table_path: Path | None = None
    admin_token: str | None = None
    access_log: str = "-"
    max_body_bytes: int = MAX_BODY_BYTES
    pool_idle_timeout_s: float = 4.0
    connect_timeout_s: float = 5.0
    table_poll_s: float = 0.5
    certfile: Path | None = None
    keyfile: Path | None = None
    tls_dir: Path | None = None  # cert.pem + key.pem, watched; absent files mean plain HTTP
    drain_s: float = 10.0
    # Request telemetry (docs/telemetry.md): OTLP/HTTP base URL (else OTEL_EXPORTER_OTLP_ENDPOINT),
    # else JSON lines in telemetry_dir; workspace_name fills the spans' "Workspace Name".
    otlp_endpoint: str | None = None
    telemetry_dir: Path | None = None
    workspace_name: str = ""


class Router:
    """The running router: holds the state, serves the port, adopts tables."""

    def __init__(self, config: RouterConfig, table: RoutingTable | None = None) -> None:
        self.config = config
        self.state = RouterState(pool_idle_timeout_s=config.pool_idle_timeout_s)
        self.metrics = RouterMetrics(
            self.state.loads,
            lambda: {name: r.desired_replicas for name, r in self.state.table.services.items()},
        )
        self.access_log = AccessLog.open(config.access_log)
        self.telemetry = TelemetryPipe(
            otlp_endpoint=config.otlp_endpoint, telemetry_dir=config.telemetry_dir,
            workspace=config.workspace_name,
            scheme="https" if config.certfile or config.tls_dir else "http",
        )
        self.ctx = ProxyContext(self.state, self.metrics, self.access_log, _admin_app(self),
                                max_body_bytes=config.max_body_bytes,
                                connect_timeout_s=config.connect_timeout_s, telemetry=self.telemetry)
        self.tls = _cert_watcher(config)
        self._server: FrontDoor | None = None
        self._watcher: TableFileWatcher | None = None
        self._ticker: asyncio.Task[None] | None = None
        if table is not None:
            self.publish(table)

    @property
    def table(self) -> RoutingTable:
        return self.state.table

    def publish(self, table: RoutingTable) -> None:
        """Swap in a new table; requests in flight finish on the replicas they hold."""
        self.state.swap(table)

    def load(self) -> dict[str, ServiceLoad]:
        """Per service (replicas, busy replica-equivalents, queued, in flight), sampled now."""
        return self.state.loads()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.tls is not None:
            self.tls.check(strict=self.tls.required)  # a bad --certfile at start is an error
            self.tls.start()
        self._server = FrontDoor(self.ctx, lambda: self.tls.context if self.tls is not None else None)
        await self._server.start(self.config.host, self.config.port, backlog=2048)
        if self.config.table_path is not None:
            self._watcher = TableFileWatcher(self.config.table_path, self.publish, self.config.table_poll_s)
            self._watcher.check(strict=True)  # an invalid file at start is an error, not a warning
            self._watcher.start()
        self._ticker = loop.create_task(self._tick())
        self.telemetry.start()
        log.info("router listening on %s:%d", self.config.host, self.port)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to ``drain_s``), then close."""
        if self._server is not None:
            self._server.close()
        if self._watcher is not None:
            self._watcher.stop()
        if self.tls is not None:
            self.tls.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_s
        while loop.time() < deadline and any(s.in_flight or s.queued for s in self.load().values()):
            await asyncio.sleep(0.05)
        if self._ticker is not None:
            self._ticker.cancel()
        self.state.close()
        self.access_log.close()
        await asyncio.to_thread(self.telemetry.close)  # exports what is pending: off the loop

    async def _tick(self) -> None:
        """Scoring deadlines every 20 ms, the access log every 0.2 s, idle upstreams every second."""
        loop = asyncio.get_running_loop()
        n = 0
        while True:
            await asyncio.sleep(0.02)
            self.ctx.expire(loop.time())
            n += 1
            if n % 10 == 0:
                self.access_log.flush()
            if n % 50 == 0:
                self.state.sweep(loop.time())


def _cert_watcher(config: RouterConfig) -> CertWatcher | None:
    if config.certfile is not None:
        return CertWatcher(config.certfile, config.keyfile, required=True, poll_s=config.table_poll_s)
    if config.tls_dir is not None:
        return CertWatcher(config.tls_dir / "cert.pem", config.tls_dir / "key.pem", required=False,
                           poll_s=config.table_poll_s)
    return None


def _admin_app(router: Router) -> Starlette:
    def require_admin(request: Request) -> None:
        token = router.config.admin_token
        if not token:
            raise NotFoundError("The table endpoint is disabled",
                                hint="Start the router with --admin-token to publish tables over HTTP.")
        header = request.headers.get("authorization")
        if not check_admin_token(header.encode() if header else None, token.encode()):
            raise AuthenticationError(
                "Admin token missing or wrong",
                hint="Send 'Authorization: Bearer <admin token>' with the token the router was started with.")

    async def health(request: Request) -> Response:
        table = router.table
        return JSONResponse({"status": "ok", "table_version": table.version, "services": len(table.services)})

    async def load(request: Request) -> Response:
        # ?by_replica=1 adds per-replica in-flight counts: the autoscaler's drain signal
        by_replica = request.query_params.get("by_replica") in ("1", "true")
        services = {}
        for name, s in router.load().items():
            entry: dict[str, object] = {"replicas": s.replicas, "busy": s.busy, "queued": s.queued,
                                        "in_flight": s.in_flight}
            if by_replica:
                entry["in_flight_by_replica"] = dict(s.in_flight_by_replica)
            services[name] = entry
        return JSONResponse({"services": services})

    async def metrics(request: Request) -> Response:
        return Response(router.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def get_table(request: Request) -> Response:
        require_admin(request)
        return JSONResponse(table_to_json(router.table))

    async def put_table(request: Request) -> Response:
        require_admin(request)
        try:
            raw = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"The table is not valid JSON: {exc}",
                                  hint="Send the table as a JSON object (see docs/router.md).") from exc
        table = table_from_json(raw)
        router.publish(table)
        return JSONResponse({"version": table.version, "services": len(table.services)})

    async def tls(request: Request) -> Response:
        if request.method == "POST":  # the control plane changed the files: serve them now
            require_admin(request)
        state = router.tls.check() if router.tls is not None else None
        return JSONResponse({"enabled": bool(state and state.enabled),
                             "fingerprint_sha256": state.fingerprint_sha256 if state else None,
                             "error": state.error if state else None})

    async def modelhost_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ModelhostError)
        return JSONResponse(exc.to_payload(), status_code=exc.status_code)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"message": exc.detail}, status_code=exc.status_code)

    return Starlette(
        routes=[
            Route("/-/health", health),
            Route("/-/load", load),
            Route("/metrics", metrics),
            Route("/-/table", get_table, methods=["GET"]),
            Route("/-/table", put_table, methods=["PUT"]),
            Route("/-/tls", tls, methods=["GET", "POST"]),
        ],
        exception_handlers={ModelhostError: modelhost_error, HTTPException: http_error},
    )


async def _serve(config: RouterConfig) -> None:
    router = Router(config)
    await router.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("router stopping: draining requests in flight")
    await router.stop()


def run(config: RouterConfig) -> None:
    """Serve until SIGINT/SIGTERM, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a base dependency off Windows
        asyncio.run(_serve(config))
    else:
        uvloop.run(_serve(config))
