"""A TLS server transport on a non-blocking ``ssl.SSLSocket``: SSL_read/SSL_write on the socket.

uvloop's own TLS (``connect_accepted_socket(ssl=...)``) runs OpenSSL against memory BIOs: every
record is copied from libuv's read buffer into a BIO, decrypted, and every response is encrypted
into a second BIO, read back into a new ``bytes`` and handed to libuv, through a few Cython and
Python layers each way. Here OpenSSL reads and writes the socket itself, as in nginx: one
``recv``-and-decrypt per readable event into a reused buffer, one encrypt-and-``send`` per write.

:class:`TlsTransport` presents the part of the asyncio transport API that
:class:`~modelhost.router.proxy.ClientConnection` uses (write, close, abort, pause/resume reading,
write flow control, ``get_extra_info``). :func:`serve_tls` runs the handshake with a deadline and
creates the protocol only once it has succeeded, as ``connect_accepted_socket`` does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["TlsTransport", "serve_tls"]

log = logging.getLogger("modelhost.router")

_RECORD = 16 * 1024  # the largest TLS record payload: SSL_read returns at most this much
_READ_BUFFER = 4 * _RECORD
_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024
_LINGER_S = 2.0  # after close_notify, how long the client may take to close its side


class _SslConnection(Protocol):
    """The C-level connection object under ``SSLSocket`` (``_ssl._SSLSocket``)."""

    def read(self, size: int, buffer: memoryview) -> int: ...
    def write(self, data: bytes | bytearray | memoryview) -> int: ...
    def shutdown(self) -> object: ...


_thread = threading.local()


def _read_buffer() -> memoryview:
    """The decryption buffer of this thread's loop, shared by its connections.

    Reads happen only in reader callbacks, which never nest, and each read's bytes are copied out
    before the protocol sees them; one buffer per connection would cost 64 KiB each.
    """
    view: memoryview | None = getattr(_thread, "view", None)
    if view is None:
        view = _thread.view = memoryview(bytearray(_READ_BUFFER))
    return view


def serve_tls(loop: asyncio.AbstractEventLoop, sock: socket.socket, context: ssl.SSLContext,
              protocol_factory: Callable[[], asyncio.Protocol], handshake_timeout_s: float) -> None:
    """Handshake on the accepted, non-blocking ``sock``; then serve ``protocol_factory()`` over it.

    A handshake that fails or outlasts ``handshake_timeout_s`` closes the socket (logged at debug
    level: an old client or a port scanner is its own problem). ``sock`` is taken over either way.
    """
    try:
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except (OSError, ssl.SSLError) as exc:
        log.debug("TLS setup failed: %s: %s", type(exc).__name__, exc)
        sock.close()
        return
    _Handshake(loop, tls, protocol_factory, handshake_timeout_s).step()


class _Handshake:
    """Drives ``do_handshake`` from readiness callbacks until it succeeds, fails or times out."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tls: ssl.SSLSocket,
                 protocol_factory: Callable[[], asyncio.Protocol], timeout_s: float) -> None:
        self.loop = loop
        self.tls = tls
        self.fd = tls.fileno()
        self.protocol_factory = protocol_factory
        self.timer = loop.call_later(timeout_s, self.fail, TimeoutError("TLS handshake timed out"))
        self.waiting_write = False

    def step(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(write=False)
            return
        except ssl.SSLWantWriteError:
            self._wait(write=True)
            return
        except (OSError, ssl.SSLError) as exc:
            self.fail(exc)
            return
        self._stop()
        try:
            TlsTransport(self.loop, self.tls, self.protocol_factory())
        except Exception:  # a bug in the protocol's connection_made: this connection only
            log.exception("router bug while setting up a TLS connection")
            self.tls.close()

    def _wait(self, *, write: bool) -> None:
        if write and not self.waiting_write:
            self.loop.remove_reader(self.fd)
            self.loop.add_writer(self.fd, self.step)
        elif not write:
            if self.waiting_write:
                self.loop.remove_writer(self.fd)
            self.loop.add_reader(self.fd, self.step)
        self.waiting_write = write

    def _stop(self) -> None:
        self.timer.cancel()
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)

    def fail(self, exc: BaseException) -> None:
        log.debug("TLS handshake failed: %s: %s", type(exc).__name__, exc)
        self._stop()
        self.tls.close()


class TlsTransport(asyncio.Transport):
    """An established TLS connection (see the module docstring). Created by :func:`serve_tls`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tls: ssl.SSLSocket,
                 protocol: asyncio.Protocol) -> None:
        super().__init__()
        self._loop = loop
        self._tls = tls
        # SSLSocket.recv_into/send are Python wrappers over this object; calling it directly saves
        # two Python frames per call on the hot path.
        self._ssl: _SslConnection = tls._sslobj  # type: ignore[attr-defined]
        self._fd = tls.fileno()
        self._protocol = protocol
        self._view = _read_buffer()
        self._out: list[bytes] = []  # out[0] is in flight once a write wanted the socket writable
        self._out_size = 0
        self._closing = False
        self._lost = False
        self._reading = True
        self._writing_paused = False
        self._high_water = _HIGH_WATER
        self._low_water = _LOW_WATER
        self._extra: dict[str, Any] = {"socket": tls, "sslcontext": tls.context, "ssl_object": tls}
        protocol.connection_made(self)
        if self._reading and not self._closing:
            loop.add_reader(self._fd, self._read_ready)
            # the client's first request may already be here, decrypted or not: look now
            self._read_ready()

    # -- reading -------------------------------------------------------------------------------
    def _read_ready(self) -> None:
        view, got = self._view, 0
        try:
            # One SSL_read yields one record; go on while records come full (a large upload),
            # so a small request costs exactly one call and no SSLWantReadError.
            while True:
                n = self._ssl.read(_RECORD, view[got:] if got else view)
                if n == 0:
                    break
                got += n
                if n < _RECORD or got + _RECORD > _READ_BUFFER:
                    break
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            n = -1
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            n = 0
        except (OSError, ssl.SSLError) as exc:
            self._fatal(exc)
            return
        if got:
            try:
                self._protocol.data_received(bytes(view[:got]))
            except Exception as exc:  # a bug in the protocol: drop this connection, keep the router
                log.exception("router bug in a TLS connection callback")
                self._fatal(exc)
                return
        if n == 0 and not self._closing:  # the client closed (with close_notify or without)
            keep_open = self._call(self._protocol.eof_received)
            if not keep_open:
                self.close()

    def pause_reading(self) -> None:
        if self._reading and not self._closing:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    # -- writing -------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        if self._out:  # waiting for the socket: queue behind what is in flight
            self._out.append(bytes(data))
            self._out_size += len(data)
            self._check_high_water()
            return
        try:
            self._ssl.write(data)  # no partial writes: all of it, or an SSLWantWriteError
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            # OpenSSL wants this very buffer again once the socket drains
            self._out.append(bytes(data))
            self._out_size = len(data)
            self._loop.add_writer(self._fd, self._write_ready)
            self._check_high_water()
        except (OSError, ssl.SSLError) as exc:
            self._fatal(exc)

    def _write_ready(self) -> None:
        out = self._out
        try:
            while out:
                self._ssl.write(out[0])
                self._out_size -= len(out.pop(0))
                if len(out) > 1:  # join what queued up behind it: one record, one send
                    out[:] = [b"".join(out)]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            self._check_low_water()
            return
        except (OSError, ssl.SSLError) as exc:
            self._fatal(exc)
            return
        self._loop.remove_writer(self._fd)
        self._check_low_water()
        if self._closing:
            self._shutdown()

    def _check_high_water(self) -> None:
        if not self._writing_paused and self._out_size > self._high_water:
            self._writing_paused = True
            self._call(self._protocol.pause_writing)

    def _check_low_water(self) -> None:
        if self._writing_paused and self._out_size <= self._low_water:
            self._writing_paused = False
            self._call(self._protocol.resume_writing)

    def get_write_buffer_size(self) -> int:
        return self._out_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water = _HIGH_WATER if high is None else high
        self._low_water = self._high_water // 4 if low is None else low

    def can_write_eof(self) -> bool:
        return False  # TLS has no half close (close_notify ends both directions)

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections cannot half-close")

    # -- closing -------------------------------------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is queued, then close_notify, then close the socket."""
        if self._closing:
            return
        self._closing = True
        if self._reading:
            self._loop.remove_reader(self._fd)
        if not self._out:
            self._shutdown()

    def abort(self) -> None:
        self._closing = True
        self._out.clear()
        self._out_size = 0
        self._finish(None)

    def _shutdown(self) -> None:
        try:
            self._ssl.shutdown()  # sends close_notify
        except ssl.SSLWantReadError:
            pass  # the client's close_notify is not here yet: expected
        except (OSError, ssl.SSLError):
            self._finish(None)
            return
        # Closing the socket now could cut the response short: a client that has not read it all
        # yet may drop what it holds on a TCP FIN or RST. Wait for the client to close, a while.
        timer = self._loop.call_later(_LINGER_S, self._finish, None)
        self._loop.add_reader(self._fd, self._drain, timer)

    def _drain(self, timer: asyncio.TimerHandle) -> None:
        try:
            more = os.read(self._fd, _READ_BUFFER)  # raw bytes: a late request or close_notify
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            more = b""
        if not more:
            timer.cancel()
            self._finish(None)

    def _fatal(self, exc: BaseException) -> None:
        log.debug("TLS connection failed: %s: %s", type(exc).__name__, exc)
        self._closing = True
        self._out.clear()
        self._out_size = 0
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._loop.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc if isinstance(exc, Exception) else None)
        finally:
            self._tls.close()

    # -- the rest of the transport API ---------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        if name == "peername" or name == "sockname":
            try:
                self._extra[name] = self._tls.getpeername() if name == "peername" else self._tls.getsockname()
            except OSError:
                return default
            return self._extra[name]
        if name == "cipher":
            return self._tls.cipher()
        if name == "peercert":
            return self._tls.getpeercert()
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def _call(self, callback: Callable[..., Any], *args: Any) -> Any:
        try:
            return callback(*args)
        except Exception as exc:  # a bug in the protocol: drop this connection, keep the router
            log.exception("router bug in a TLS connection callback")
            self._fatal(exc)
            return None
