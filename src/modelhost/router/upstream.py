"""Keep-alive connections to one replica, and the pool that reuses them.

An :class:`UpstreamConnection` carries one exchange at a time. It parses the replica's response
with httptools only to find where the response ends (status line, keep-alive, end of message);
the bytes themselves go to the client as they arrive, untouched except for the status line of a
500, which the router answers as 502 (v1 azureml-fe does the same).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httptools

__all__ = ["Exchange", "UpstreamConnection", "UpstreamPool"]

_STATUS_500 = b" 500 "
_LINE_502 = b"HTTP/1.1 502 Bad Gateway\r\n"
_CLOSE = b"connection: close\r\n"


class Exchange(Protocol):
    """What an upstream connection reports to the request it carries."""

    def response_data(self, data: bytes) -> None: ...
    def response_complete(self, status: int, reusable: bool) -> None: ...
    def upstream_lost(self, got_response: bool) -> None: ...
    def upstream_pause(self, paused: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to a replica (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_complete",
        "_head_sent",
        "_headers_done",
        "_inject",
        "closed",
        "exchange",
        "idle_since",
        "keep_alive",
        "parser",
        "pool",
        "status",
        "transport",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.closed = False
        self.idle_since = 0.0
        self.status = 0
        self.keep_alive = True
        self._headers_done = False
        self._head_sent = False
        self._complete = False
        self._buffer = b""
        self._inject = b""

    # -- used by the exchange --------------------------------------------------------------------
    def start(self, exchange: Exchange, *, close_client: bool = False) -> None:
        """Carry ``exchange`` from now on; the caller writes the request with :meth:`write`.

        ``close_client`` adds ``connection: close`` to the response head for a client that asked
        to close, since the replica's connection itself stays open.
        """
        self.exchange = exchange
        self._headers_done = self._head_sent = self._complete = False
        self._buffer = b""
        self._inject = _CLOSE if close_client else b""

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def detach(self) -> None:
        self.exchange = None

    def close(self) -> None:
        self.exchange = None
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self, paused: bool) -> None:
        if self.transport is None or self.closed:
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # nothing asked: a replica talking out of turn is not reused
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()
            exchange.upstream_lost(self._head_sent)
            return
        if not self._head_sent:
            if not self._headers_done:
                self._buffer += data
                return
            if self._buffer:
                data, self._buffer = self._buffer + data, b""
            if self.status == 500:
                data = _LINE_502 + self._inject + data[data.index(b"\r\n") + 2:]
            elif self._inject and self.keep_alive:
                end = data.index(b"\r\n") + 2
                data = data[:end] + self._inject + data[end:]
            self._head_sent = True
        exchange.response_data(data)
        if self._complete:
            self.exchange = None
            exchange.response_complete(self.status, self.keep_alive)

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self._complete = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost(self._head_sent)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_pause(True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_pause(False)


class UpstreamPool:
    """Idle keep-alive connections to one replica address, most recently used first.

    Idle connections older than ``idle_timeout_s`` are closed rather than reused: the replica's
    server closes idle connections on its own timer (uvicorn: 5 s), and a connection closed by the
    replica just as a request is written could not be retried safely.
    """

    def __init__(self, host: str, port: int, *, idle_timeout_s: float = 4.0, max_idle: int = 256) -> None:
        self.host = host
        self.port = port
        self.host_header = f"host: {host}:{port}\r\n\r\n".encode()
        self.idle_timeout_s = idle_timeout_s
        self.max_idle = max_idle
        self.retired = False
        self._idle: list[UpstreamConnection] = []
        self._all: set[UpstreamConnection] = set()

    def take_idle(self, now: float) -> UpstreamConnection | None:
        """An idle connection known to be open, or None."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                conn.close()
                continue
            if now - conn.idle_since > self.idle_timeout_s:
                conn.close()
                continue
            return conn
        return None

    async def connect(self, timeout_s: float) -> UpstreamConnection:
        """A new connection; OSError (or TimeoutError) when the replica cannot be reached."""
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port), timeout_s
        )
        self._all.add(conn)
        return conn

    def put(self, conn: UpstreamConnection, now: float) -> None:
        """Return a connection after a complete exchange; closed instead when the pool is retired."""
        conn.detach()
        if self.retired or conn.closed or len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = now
        self._idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        self._all.discard(conn)

    def sweep(self, now: float) -> None:
        """Close idle connections past the idle timeout (called periodically)."""
        keep = []
        for conn in self._idle:
            if conn.closed or now - conn.idle_since > self.idle_timeout_s:
                conn.close()
            else:
                keep.append(conn)
        self._idle = keep

    def retire(self) -> None:
        """The replica left the table: close idle connections now, busy ones when they finish."""
        self.retired = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def close_all(self) -> None:
        self.retire()
        for conn in list(self._all):
            conn.close()

    @property
    def idle_count(self) -> int:
        return len(self._idle)
