"""The router's listening port: plain HTTP, or TLS with a certificate that can change while it serves.

One port carries both. Each accepted connection is peeked at (``MSG_PEEK``, nothing consumed):

* a TLS ClientHello (first byte 0x16) while a certificate is configured: handshake with the
  :class:`CertWatcher`'s *current* context, so a replaced certificate is served to new connections
  at once while connections already open finish on the old one;
* anything else while a certificate is configured: plain HTTP for the router's own endpoints
  (``/-/table``, ``/-/load``, ``/-/health``, ``/metrics``) from this machine only; a scoring request
  or a remote peer gets 400 "use https" (as nginx answers plain HTTP on an HTTPS port). This keeps the
  control plane's calls to the router working with no certificate to trust (see docs/tls.md);
* without a certificate: plain HTTP, as before.

:class:`CertWatcher` re-reads the certificate and key files when they change (polled, like the
table file) or when asked (``POST /-/tls``). A pair that fails to load is logged and the previous
context stays, so a half-written pair or a bad file never takes the front door down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelhost.router.proxy import ClientConnection, ProxyContext, error_response
from modelhost.router.tls_transport import serve_tls

__all__ = ["CertWatcher", "FrontDoor", "PlainAdminConnection", "server_context"]

log = logging.getLogger("modelhost.router")

_TLS_HANDSHAKE = 0x16
_SERVICE_PREFIX = b"/api/v1/service/"
SNIFF_TIMEOUT_S = 10.0
HANDSHAKE_TIMEOUT_S = 10.0


def server_context(certfile: Path, keyfile: Path | None) -> ssl.SSLContext:
    """A server context for the pair: TLS 1.2 minimum (1.3 preferred), HTTP/1.1 over ALPN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # no renegotiation (as nginx): a TLS 1.2 client could otherwise make a read want a write
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    return ctx


def leaf_fingerprint(certfile: Path) -> str:
    """SHA-256 of the first certificate in the file, ``AB:CD:...``."""
    text = certfile.read_text(encoding="ascii", errors="replace")
    start = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[start:end])).digest()
    return ":".join(f"{b:02X}" for b in digest)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class TlsState:
    enabled: bool
    fingerprint_sha256: str | None
    error: str | None  # why the files on disk are not served (the previous context stays)


class CertWatcher:
    """The current server context for ``certfile``/``keyfile``; None while TLS is off.

    ``required``: the files were given on the command line, so their absence is an error at start;
    otherwise (``--tls-dir``) absent files mean plain HTTP and appear or disappear at run time.
    """

    def __init__(self, certfile: Path, keyfile: Path | None, *, required: bool, poll_s: float = 0.5) -> None:
        self.certfile = certfile
        self.keyfile = keyfile
        self.required = required
        self.poll_s = poll_s
        self.context: ssl.SSLContext | None = None
        self.fingerprint: str | None = None
        self.error: str | None = None
        self._seen: object = None
        self._task: asyncio.Task[None] | None = None

    def _files(self) -> tuple[Path, ...]:
        return (self.certfile,) if self.keyfile is None else (self.certfile, self.keyfile)

    def check(self, *, strict: bool = False) -> TlsState:
        """Load the pair if the files changed since the last look; keep the old context on failure."""
        seen = tuple(_signature(p) for p in self._files())
        if seen != self._seen:
            self._seen = seen
            self._load(seen, strict=strict)
        return TlsState(self.context is not None, self.fingerprint, self.error)

    def _load(self, seen: tuple[tuple[int, int, int] | None, ...], *, strict: bool) -> None:
        if all(s is None for s in seen) and not self.required:
            if self.context is not None:
                log.info("TLS turned off: %s is gone; serving plain HTTP", self.certfile)
            self.context, self.fingerprint, self.error = None, None, None
            return
        try:
            context = server_context(self.certfile, self.keyfile)
            fingerprint = leaf_fingerprint(self.certfile)
        except (OSError, ssl.SSLError, ValueError) as exc:
            # the message names the file and OpenSSL's reason, never key material
            self.error = f"cannot load the TLS certificate {self.certfile}: {type(exc).__name__}: {exc}"
            if strict:
                raise
            log.warning("%s; still serving %s", self.error,
                        f"certificate {self.fingerprint}" if self.fingerprint else "plain HTTP")
            self._seen = None  # retry at the next look: the pair may have been half written
            return
        if fingerprint != self.fingerprint:
            log.info("TLS certificate %s now served to new connections", fingerprint)
        self.context, self.fingerprint, self.error = context, fingerprint, None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            self.check()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _is_local(sock: socket.socket) -> bool:
    """The peer is this machine: a loopback address, or the very address it connected to."""
    try:
        peer = sock.getpeername()[0]
        own = sock.getsockname()[0]
    except OSError:
        return False
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(peer).is_loopback:
            return True
    return bool(peer == own)


class PlainAdminConnection(ClientConnection):
    """Plain HTTP on a port that serves TLS: the router's own endpoints for local callers only."""

    def __init__(self, ctx: ProxyContext, local: bool) -> None:
        super().__init__(ctx)
        self.local = local

    def on_headers_complete(self) -> None:
        if not self._ignore and (not self.local or self._url.startswith(_SERVICE_PREFIX)):
            self._ignore = True
            self.write(error_response(400, "The plain HTTP request was sent to an HTTPS port: use https://",
                                      keep_alive=False))
            self.close()
            return
        super().on_headers_complete()


class FrontDoor:
    """Accept connections on ``host:port`` and hand each to the plain or the TLS protocol."""

    def __init__(self, ctx: ProxyContext, tls: Callable[[], ssl.SSLContext | None]) -> None:
        self.ctx = ctx
        self.tls = tls
        self.sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[object]] = set()

    async def start(self, host: str, port: int, backlog: int = 2048) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop(sock))

    @property
    def port(self) -> int:
        assert self.sock is not None
        return int(self.sock.getsockname()[1])

    def close(self) -> None:
        """Stop accepting; connections already open go on until they finish."""
        if self._accepting is not None:
            self._accepting.cancel()
        if self.sock is not None:
            self.sock.close()

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:  # e.g. EMFILE: keep serving the connections we have
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls() is None:
                self._serve(conn, tls=False)
            else:
                self._sniff(conn)

    def _sniff(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        fd = conn.fileno()

        def give_up() -> None:
            loop.remove_reader(fd)
            conn.close()

        timer = loop.call_later(SNIFF_TIMEOUT_S, give_up)

        def readable() -> None:
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                first = b""
            loop.remove_reader(fd)
            timer.cancel()
            if not first:
                conn.close()
            else:
                self._serve(conn, tls=first[0] == _TLS_HANDSHAKE)

        loop.add_reader(fd, readable)

    def _serve(self, conn: socket.socket, *, tls: bool) -> None:
        loop = asyncio.get_running_loop()
        context = self.tls() if tls else None
        if context is not None:
            # our own transport, not connect_accepted_socket(ssl=...): see tls_transport.py
            serve_tls(loop, conn, context, lambda: ClientConnection(self.ctx), HANDSHAKE_TIMEOUT_S)
            return
        factory: Callable[[], ClientConnection]
        if self.tls() is not None:  # plain HTTP while TLS is on: the admin endpoints, locally
            local = _is_local(conn)
            factory = lambda: PlainAdminConnection(self.ctx, local)  # noqa: E731
        else:
            factory = lambda: ClientConnection(self.ctx)  # noqa: E731
        coro = loop.connect_accepted_socket(factory, conn)
        task: asyncio.Task[object] = loop.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(lambda t: self._connected(t, conn))

    def _connected(self, task: asyncio.Task[object], conn: socket.socket) -> None:
        self._pending.discard(task)
        if task.cancelled():
            conn.close()
            return
        exc = task.exception()
        if exc is not None:  # a failed handshake (old TLS version, client gave up, ...): its own problem
            log.debug("connection setup failed: %s: %s", type(exc).__name__, exc)
            conn.close()
