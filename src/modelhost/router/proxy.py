"""The forwarding path: an asyncio Protocol per client connection, parsing with httptools.

Per request: match ``/api/v1/service/<name>/<score|swagger.json|v2/...>``, check the method, the
key and the declared size, take a replica slot (at once when one is free, else through the
service's queue), write the rewritten request head plus the body bytes to a pooled keep-alive
connection, and pass the replica's response bytes back as they come. Everything else on the port
(``/metrics``, ``/-/...``) goes to the router's own small ASGI app (:mod:`modelhost.router.app`).

Statuses the router itself produces, with a ``{"message": ...}`` body:
404 unknown service or path, 405 method other than GET/POST, 401 key or token refused, 413 body over the
limit (declared or counted while streaming), 503 overloaded / no ready replica, 504 scoring
timeout, 502 replica answered 500 (its body kept), closed the connection before replying, or could
not be reached at all. A request moves to another replica only when its connection failed before
any byte of it was written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httptools

from modelhost.router.admission import Rejected, Rejection
from modelhost.router.auth import Verdict, check_key
from modelhost.router.metrics import AccessLog, RouterMetrics
from modelhost.router.state import RouterState, Service
from modelhost.router.table import Replica
from modelhost.router.telemetry import Capture, RequestRecord
from modelhost.router.telemetry_pipe import TelemetryPipe
from modelhost.router.tokens import TokenVerdict
from modelhost.router.upstream import UpstreamConnection, UpstreamPool

__all__ = ["MAX_BODY_BYTES", "ClientConnection", "ProxyContext"]

log = logging.getLogger("modelhost.router")

MAX_BODY_BYTES = 100 * 1024 * 1024
_PREFIX = b"/api/v1/service/"
_PREFIX_LEN = len(_PREFIX)
_HIGH_WATER = 256 * 1024
_LOCAL_BODY_LIMIT = 16 * 1024 * 1024
# Headers that belong to one hop, or that the router answers itself; never forwarded.
_HOP = frozenset({b"host", b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"expect",
                  b"trailer", b"proxy-authorization"})
_SPECIAL = _HOP | {b"authorization", b"content-length", b"transfer-encoding", b"x-request-id",
                   b"x-ms-request-id", b"x-ms-client-request-id"}

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


@dataclass
class ProxyContext:
    """Everything a client connection needs, shared by all of them."""

    state: RouterState
    metrics: RouterMetrics
    access_log: AccessLog
    local_app: ASGIApp
    max_body_bytes: int = MAX_BODY_BYTES
    connect_timeout_s: float = 5.0
    telemetry: TelemetryPipe | None = None  # request spans for services with telemetry on
    # Exchanges waiting on a replica, checked against their deadline by expire(): one periodic
    # scan is cheaper than a timer armed and cancelled per request.
    waiting: set[_Exchange] = field(default_factory=set)

    def expire(self, now: float) -> None:
        """Answer 504 for every exchange whose scoring deadline has passed (called every few ms)."""
        for exchange in [e for e in self.waiting if e.deadline <= now]:
            exchange.expire()


def error_response(status: int, message: str, *, keep_alive: bool,
                   ids: tuple[bytes | None, ...] = (), head_only: bool = False) -> bytes:
    """A complete ``{"message": ...}`` response, with request-id headers as the replica would set them."""
    body = json.dumps({"message": message}).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode(),
             b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
    if ids:
        rid, ms_rid, client_rid = ids
        rid = rid or uuid.uuid4().hex.encode()
        lines += [b"x-request-id: ", rid, b"\r\nx-ms-request-id: ", ms_rid or client_rid or rid, b"\r\n"]
        if client_rid:
            lines += [b"x-ms-client-request-id: ", client_rid, b"\r\n"]
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines += [b"\r\n", b"" if head_only else body]
    return b"".join(lines)


class ClientConnection(asyncio.Protocol):
    """One client connection; one request at a time (a pipelined request closes the connection)."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.exchange: _Exchange | _LocalExchange | None = None
        self.closed = False
        self.keep_alive = True
        self.reading_paused = False
        self.lingering = False  # answered and closing: what still arrives is dropped unparsed
        self.feeding = False  # inside data_received: writes to the replica are collected, then flushed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._ignore = False  # the current message is not served (pipelined, or after a fatal error)

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self.feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject_malformed("Upgrade is not supported")
        except httptools.HttpParserCallbackError:
            log.exception("router bug while handling a request")
            self._reject_malformed("Invalid HTTP request")
        except httptools.HttpParserError:
            self._reject_malformed("Invalid HTTP request")
        finally:
            self.feeding = False
        # What the parser produced for the replica goes out in one write (head and body together).
        exchange = self.exchange
        if exchange is not None and exchange.out is not None:
            exchange.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.abort()

    def pause_writing(self) -> None:
        if isinstance(self.exchange, _Exchange) and self.exchange.upstream is not None:
            self.exchange.upstream.pause_reading(True)

    def resume_writing(self) -> None:
        if isinstance(self.exchange, _Exchange) and self.exchange.upstream is not None:
            self.exchange.upstream.pause_reading(False)

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.lingering:
            self._ignore = True
            return
        if self.exchange is not None:  # pipelining: finish the current exchange, then close
            self._ignore = True
            self.keep_alive = False
            self.exchange.keep_alive = False
            return
        self._ignore = False
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._ignore:
            return
        self.keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method()
        path, _, query = self._url.partition(b"?")
        if not path.startswith(_PREFIX):
            self.exchange = _LocalExchange(self, method, path, query, self._headers)
            return
        exchange = self.exchange = _Exchange(self, method, path)
        exchange.begin(path[_PREFIX_LEN:], query, self._headers)

    def on_body(self, body: bytes) -> None:
        if not self._ignore and self.exchange is not None:
            self.exchange.body(body)

    def on_message_complete(self) -> None:
        if not self._ignore and self.exchange is not None:
            self.exchange.body_done()

    # -- used by exchanges ---------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def pause_reading(self, paused: bool) -> None:
        if self.closed or paused == self.reading_paused:
            return
        self.reading_paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def finished(self, exchange: _Exchange | _LocalExchange) -> None:
        """An exchange is over (request read and response written)."""
        if self.exchange is exchange:
            self.exchange = None
        if self.lingering:
            return
        if not (self.keep_alive and exchange.keep_alive):
            self.close()
        else:
            self.pause_reading(False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def linger_close(self, seconds: float = 2.0) -> None:
        """Close after the response, reading and dropping what the client still sends for a moment,
        so that it sees our answer instead of a reset."""
        self.lingering = True
        self._ignore = True
        self.pause_reading(False)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(seconds, self.close)

    def _reject_malformed(self, message: str) -> None:
        if self.exchange is not None:
            self.exchange.abort()
            self.exchange = None
        if not self.closed:
            self.transport.write(error_response(400, message, keep_alive=False))
            self.close()


class _Exchange:
    """One forwarded request: admission, upstream connection, deadline, accounting."""

    __slots__ = ("_ids", "_pending", "_pending_size", "bytes_in", "bytes_out", "capture", "chunked", "conn",
                 "deadline",
                 "done", "head", "keep_alive", "method", "out", "path", "replica", "replica_id", "req_done",
                 "resp_done", "resp_started", "service", "service_name", "started", "status", "task", "tried",
                 "upstream")

    def __init__(self, conn: ClientConnection, method: bytes, path: bytes) -> None:
        self.conn = conn
        self.method = method
        self.path = path
        self.keep_alive = conn.keep_alive
        self.started = time.perf_counter()
        self.service: Service | None = None
        self.service_name = ""
        self.head = b""
        self.chunked = False
        self.replica: Replica | None = None  # set while this exchange holds a slot on it
        self.replica_id = ""
        self.upstream: UpstreamConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.deadline = 0.0
        self.tried: list[str] = []
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.out: list[bytes] | None = None  # writes to the replica held until data_received ends
        self._ids: tuple[bytes | None, ...] = ()
        self.bytes_in = self.bytes_out = 0
        self.status = 0
        self.req_done = self.resp_done = self.resp_started = self.done = False
        self.capture: Capture | None = None  # set only for a service with telemetry on

    # -- request -------------------------------------------------------------------------------
    def begin(self, rest: bytes, query: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """Route, check and admit the request whose headers just arrived."""
        name_b, _, sub = rest.partition(b"/")
        name = name_b.decode("latin-1")
        service = self.conn.ctx.state.services.get(name)
        if sub == b"score":
            target = b"/score"
        elif sub == b"swagger.json":
            target = b"/swagger.json"
        elif sub == b"v2" or sub.startswith(b"v2/"):
            target = b"/" + sub
        else:
            target = b""
        if query:
            target += b"?" + query
        lines = [self.method, b" ", target, b" HTTP/1.1\r\n"]
        authorization = length = rid = ms_rid = client_rid = None
        expect = False
        strip_auth = service is None or service.route.auth_enabled
        for name_raw, value in headers:
            lname = name_raw.lower()
            if lname in _SPECIAL:
                if lname == b"authorization":
                    authorization = value
                    if strip_auth:
                        continue
                elif lname == b"content-length":
                    length = value
                elif lname == b"transfer-encoding":
                    self.chunked = b"chunked" in value.lower()
                elif lname == b"x-request-id":
                    rid = value
                elif lname == b"x-ms-request-id":
                    ms_rid = value
                elif lname == b"x-ms-client-request-id":
                    client_rid = value
                elif lname == b"expect":
                    expect = value.lower() == b"100-continue"
                    continue
                else:
                    continue
            lines += (name_raw, b": ", value, b"\r\n")
        self._ids = (rid, ms_rid, client_rid)
        if service is None:
            self.fail(404, f"Service {name} not found")
            return
        self.service = service
        self.service_name = name
        if service.route.telemetry and self.conn.ctx.telemetry is not None:
            self.capture = Capture(next((v for k, v in headers if k.lower() == b"host"), b""), query)
        if not target or target[0] == 63:  # b"?": nothing routable after the service name
            self.fail(404, f"Path /{sub.decode('latin-1')} is not served for service {name}")
            return
        if self.method != b"GET" and self.method != b"POST":
            self.fail(405, f"Method {self.method.decode('latin-1')} is not allowed; use GET or POST")
            return
        if service.route.auth_mode == "token":
            tokens = self.conn.ctx.state.tokens
            verdict: Verdict | TokenVerdict = tokens.check(authorization, name, time.time())
        else:
            verdict = check_key(authorization, service.keys, enabled=service.route.auth_enabled,
                                bearers=service.bearers)
        if not verdict.allowed:
            self.fail(401, verdict.message)
            return
        if length is not None and int(length) > self.conn.ctx.max_body_bytes:
            self._too_large()
            return
        self.head = b"".join(lines)
        if expect:
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._admit()

    def body(self, data: bytes) -> None:
        if self.resp_done:
            return  # answered already (error, or an early reply): drop the rest
        self.bytes_in += len(data)
        if self.chunked:
            if self.bytes_in > self.conn.ctx.max_body_bytes:
                self._too_large()
                return
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self._send_body(data)

    def body_done(self) -> None:
        self.req_done = True
        if self.resp_done:
            self._end()
        elif self.chunked:
            self._send_body(b"0\r\n\r\n")

    def _send_body(self, data: bytes) -> None:
        if self.upstream is not None:
            if self.out is not None:
                self.out.append(data)
            else:
                self.upstream.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _HIGH_WATER:
            self.conn.pause_reading(True)

    # -- admission and connection --------------------------------------------------------------
    def _admit(self) -> None:
        assert self.service is not None
        admission = self.service.admission
        replica = admission.try_acquire(self.conn.loop.time(), self.tried)
        if replica is not None:
            self._forward(replica)
        elif self.tried and not admission.has_ready(self.tried):
            self.fail(502, f"Could not connect to any replica of service {self.service_name}")
        elif not admission.can_wait(self.tried):  # can_wait: at scale to zero, wait for a cold start
            self.fail(503, f"No ready replicas for service {self.service_name}")
        else:
            self.task = self.conn.loop.create_task(self._queue())

    async def _queue(self) -> None:
        assert self.service is not None
        try:
            replica = await self.service.admission.acquire(self.conn.loop.time(), self.tried)
        except Rejected as exc:
            if exc.reason is Rejection.OVERLOADED:
                self.fail(503, f"Too many requests for service {self.service_name} (overloaded)")
            elif self.tried:
                self.fail(502, f"Could not connect to any replica of service {self.service_name}")
            else:
                self.fail(503, f"No ready replicas for service {self.service_name}")
            return
        self._forward(replica)

    def _forward(self, replica: Replica) -> None:
        self.replica = replica
        self.replica_id = replica.id
        pool = self.conn.ctx.state.pool(replica)
        upstream = pool.take_idle(self.conn.loop.time())
        if upstream is not None:
            self._attach(upstream)
        else:
            self.task = self.conn.loop.create_task(self._connect(pool))

    async def _connect(self, pool: UpstreamPool) -> None:
        try:
            upstream = await pool.connect(self.conn.ctx.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            log.warning("replica %s of %s unreachable (%s); trying another", self.replica_id,
                        self.service_name, exc)
            self._connect_failed()
            return
        if self.done:
            pool.put(upstream, self.conn.loop.time())
            return
        self._attach(upstream)

    def _connect_failed(self) -> None:
        assert self.service is not None and self.replica is not None
        now = self.conn.loop.time()
        self.tried.append(self.replica.id)
        self.service.admission.eject(self.replica.id, now)
        self._release()
        self._admit()

    def _attach(self, upstream: UpstreamConnection) -> None:
        assert self.service is not None
        self.upstream = upstream
        data = self.head + upstream.pool.host_header
        if self._pending:
            data += b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
            self.conn.pause_reading(False)
        upstream.start(self, close_client=not self.keep_alive)
        if self.conn.feeding:
            self.out = [data]
        else:
            upstream.write(data)
        self.deadline = self.conn.loop.time() + self.service.timeout_s
        self.conn.ctx.waiting.add(self)

    def flush(self) -> None:
        out, self.out = self.out, None
        if out and self.upstream is not None:
            self.upstream.write(out[0] if len(out) == 1 else b"".join(out))

    def _release(self) -> None:
        if self.replica is not None and self.service is not None:
            self.service.admission.release(self.replica.id, self.conn.loop.time())
        self.replica = None

    # -- response (called by the upstream connection) -------------------------------------------
    def response_data(self, data: bytes) -> None:
        self.resp_started = True
        self.bytes_out += len(data)
        if self.capture is not None:
            self.capture.add(data)
        self.conn.write(data)

    def response_complete(self, status: int, reusable: bool) -> None:
        self.status = 502 if status == 500 else status
        self._clear_deadline()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if reusable and self.req_done:
                upstream.pool.put(upstream, self.conn.loop.time())
            else:
                upstream.close()
        self._release()
        self.resp_done = True
        if self.req_done:
            self._end()

    def upstream_lost(self, got_response: bool) -> None:
        if self.done:
            return
        self.upstream = None
        self._clear_deadline()
        self._release()
        if got_response:  # the head is already with the client: all we can do is cut it short
            self.keep_alive = False
            self.status = self.status or 502
            if self.capture is not None:
                self.capture.error = "Replica closed connection in the middle of its response"
            self.resp_done = True
            self._end()
        else:
            self.fail(502, "Replica closed connection before replying")

    def upstream_pause(self, paused: bool) -> None:
        self.conn.pause_reading(paused)

    def expire(self) -> None:
        """The scoring timeout passed: 504, or a cut-short response if it had started."""
        self._clear_deadline()
        if self.done or self.resp_done:
            return
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        self._release()
        assert self.service is not None
        if self.resp_started:
            self.keep_alive = False
            self.status = 504
            self.resp_done = True
            if self.capture is not None:
                self.capture.error = f"Response of {self.service_name} cut short at the scoring timeout"
            self._end()
        else:
            self.fail(504, f"Request to service {self.service_name} timed out after "
                           f"{self.service.route.scoring_timeout_ms} ms")

    def _clear_deadline(self) -> None:
        self.conn.ctx.waiting.discard(self)

    # -- endings -------------------------------------------------------------------------------
    def fail(self, status: int, message: str) -> None:
        """Answer with the router's own error; the rest of the request body is dropped."""
        if self.resp_done or self.done:
            return
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        self._clear_deadline()
        self._release()
        self._pending = []
        self.conn.pause_reading(False)
        self.status = status
        self.resp_done = True
        if self.resp_started:
            self.keep_alive = False
        else:
            self.resp_started = True
            response = error_response(status, message, keep_alive=self.keep_alive and self.conn.keep_alive,
                                      ids=self._ids, head_only=self.method == b"HEAD")
            self.bytes_out += len(response)
            if self.capture is not None:
                self.capture.error = message
                self.capture.add(response)
            self.conn.write(response)
        if self.req_done or not self.keep_alive:
            self._end()

    def _too_large(self) -> None:
        limit_mb = self.conn.ctx.max_body_bytes // (1024 * 1024)
        self.keep_alive = False
        self.conn.lingering = True
        self.fail(413, f"Request body is larger than the {limit_mb} MB limit")
        self.conn.linger_close()

    def abort(self) -> None:
        """The client went away: free everything this exchange holds."""
        if self.done:
            return
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        self._clear_deadline()
        self._release()
        if not self.resp_done:
            self.status = 499
        self.keep_alive = False
        self._end()

    def _end(self) -> None:
        if self.done:
            return
        self.done = True
        ctx = self.conn.ctx
        seconds = time.perf_counter() - self.started
        ctx.metrics.observe(self.service_name, self.status, seconds)
        if self.capture is not None and ctx.telemetry is not None:
            ctx.telemetry.record(self._telemetry_record(seconds))
        if ctx.access_log.enabled:
            ctx.access_log.write(self.service_name, self.method.decode("latin-1"),
                                 self.path.decode("latin-1"), self.status, seconds, self.replica_id,
                                 self.bytes_in, self.bytes_out)
        self.conn.finished(self)


    def _telemetry_record(self, seconds: float) -> RequestRecord:
        assert self.capture is not None and self.service is not None
        ids = tuple((v or b"").decode("latin-1") for v in self._ids)
        return RequestRecord(
            service=self.service_name, method=self.method.decode("latin-1"), path=self.path.decode("latin-1"),
            status=self.status, duration_s=seconds, end_ns=time.time_ns(), replica=self.replica_id,
            request_ids=(ids[0], ids[1], ids[2]), host=self.capture.host.decode("latin-1"),
            query=self.capture.query.decode("latin-1"), response=self.capture.data, error=self.capture.error,
            log_response=self.service.route.log_response,
        )


class _LocalExchange:
    """A request for the router's own endpoints, served by its small ASGI app."""

    def __init__(self, conn: ClientConnection, method: bytes, path: bytes, query: bytes,
                 headers: list[tuple[bytes, bytes]]) -> None:
        self.conn = conn
        self.keep_alive = conn.keep_alive
        self.started = conn.loop.time()
        self.method = method.decode("latin-1")
        self.path = path.decode("latin-1")
        self.query = query
        self.headers = [(name.lower(), value) for name, value in headers]
        self.body_parts: list[bytes] = []
        self.out: list[bytes] | None = None  # never set: nothing to flush for the local app
        self.size = 0
        self.status = 0
        self.task: asyncio.Task[None] | None = None
        self.done = False

    def body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > _LOCAL_BODY_LIMIT:
            self.conn.write(error_response(413, "Request body too large", keep_alive=False))
            self.status = 413
            self.keep_alive = False
            self._end()
            return
        self.body_parts.append(data)

    def body_done(self) -> None:
        if not self.done:
            self.task = self.conn.loop.create_task(self._run())

    async def _run(self) -> None:
        body = b"".join(self.body_parts)
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": self.method, "scheme": "http", "path": self.path, "raw_path": self.path.encode(),
            "query_string": self.query, "root_path": "", "headers": self.headers,
            "client": None, "server": None,
        }
        sent = False
        status = 500
        out_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # no disconnect signalled: these endpoints are short
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers.extend(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.conn.ctx.local_app(scope, receive, send)
        except Exception:
            log.exception("router endpoint %s %s failed", self.method, self.path)
            self.status = 500
            self.conn.write(error_response(500, "Internal router error", keep_alive=self.keep_alive))
            self._end()
            return
        payload = b"".join(chunks)
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        for name, value in out_headers:
            if name.lower() not in (b"content-length", b"transfer-encoding", b"connection"):
                head += (name, b": ", value, b"\r\n")
        head += (b"content-length: ", str(len(payload)).encode(), b"\r\n")
        if not (self.keep_alive and self.conn.keep_alive):
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self.status = status
        self.conn.write(b"".join(head) + payload)
        self._end()

    def flush(self) -> None:
        pass

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.status = self.status or 499
        self.keep_alive = False
        self._end()

    def _end(self) -> None:
        if self.done:
            return
        self.done = True
        self.conn.finished(self)
