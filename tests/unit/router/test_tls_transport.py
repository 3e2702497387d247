"""TlsTransport over real sockets on 127.0.0.1, with asyncio's own TLS client as the other side.

The certificate comes from ``trustme`` (an independent CA). Each test runs on uvloop (the router's
loop) and on the stdlib loop, since the transport only uses the loop's reader/writer callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trustme
import uvloop

from modelhost.router.front_door import server_context
from modelhost.router.tls_transport import TlsTransport, serve_tls

Run = Callable[[Awaitable[Any]], Any]  # runs a scenario on the loop under test
Ctx = ssl.SSLContext


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    leaf.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    leaf.private_key_pem.write_to_path(folder / "key.pem")
    return server_context(folder / "cert.pem", folder / "key.pem")  # the router's own settings


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture(params=[uvloop.new_event_loop, asyncio.new_event_loop], ids=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    with asyncio.Runner(loop_factory=request.param) as runner:
        yield lambda coro: runner.run(asyncio.wait_for(coro, 30))


class Recorder(asyncio.Protocol):
    """Records what the transport reports; echoes data back when ``echo``."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.transport: TlsTransport | None = None
        self.data = bytearray()
        self.events: list[str] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TlsTransport)
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got_data.set()
        if self.echo:
            assert self.transport is not None
            self.transport.write(data)

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        return None

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class Server:
    """A listening socket whose accepted connections go to serve_tls, as the front door does."""

    def __init__(self, ctx: ssl.SSLContext, factory: Callable[[], asyncio.Protocol],
                 handshake_timeout_s: float = 10.0) -> None:
        self.ctx = ctx
        self.factory = factory
        self.timeout = handshake_timeout_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.task = asyncio.get_running_loop().create_task(self._accept())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.sock)
            conn.setblocking(False)
            serve_tls(loop, conn, self.ctx, self.factory, self.timeout)

    def close(self) -> None:
        self.task.cancel()
        self.sock.close()


async def served(ctx: ssl.SSLContext, **kwargs: Any) -> tuple[Server, list[Recorder]]:
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder(**kwargs))
        return made[-1]

    return Server(ctx, factory), made


async def wait_for(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


def test_echo_small_and_large_payloads(run: Run, server_ctx: ssl.SSLContext,
                                       client_ctx: ssl.SSLContext) -> None:
    async def scenario() -> None:
        server, made = await served(server_ctx)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ctx)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        big = bytes(range(256)) * 8192  # 2 MiB: many records each way, and a full socket buffer
        writer.write(big)
        assert await reader.readexactly(len(big)) == big
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() is None  # the client asked for none
        assert made[0].transport is not None
        assert made[0].transport.get_extra_info("peername") == writer.get_extra_info("sockname")
        assert made[0].transport.get_extra_info("ssl_object").version() in ("TLSv1.3", "TLSv1.2")
        writer.close()
        await made[0].lost
        assert made[0].events[0] == "made" and made[0].events[-1] == "lost"
        server.close()

    run(scenario())


def test_a_slow_reader_pauses_writing_and_gets_every_byte(
        run: Run, server_ctx: Ctx, client_ctx: Ctx) -> None:
    async def scenario() -> None:
        server, made = await served(server_ctx, echo=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ctx)
        writer.write(b"go")
        await wait_for(lambda: bool(made) and bool(made[0].data))
        transport = made[0].transport
        assert transport is not None
        chunk = b"x" * 65536
        for _ in range(64):  # 4 MiB while the client reads nothing: far beyond the socket buffers
            transport.write(chunk)
        assert "pause_writing" in made[0].events
        assert transport.get_write_buffer_size() > 0
        got = await reader.readexactly(64 * len(chunk))
        assert got == chunk * 64
        await wait_for(lambda: "resume_writing" in made[0].events)
        assert transport.get_write_buffer_size() == 0
        writer.close()
        server.close()

    run(scenario())


def test_pause_reading_holds_data_until_resumed(run: Run, server_ctx: Ctx, client_ctx: Ctx) -> None:
    async def scenario() -> None:
        server, made = await served(server_ctx, echo=False)
        _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ctx)
        await wait_for(lambda: bool(made) and made[0].transport is not None)
        transport = made[0].transport
        assert transport is not None
        transport.pause_reading()
        assert not transport.is_reading()
        writer.write(b"held")
        await writer.drain()
        await asyncio.sleep(0.2)
        assert made[0].data == b""
        transport.resume_reading()
        await asyncio.wait_for(made[0].got_data.wait(), 5)
        assert made[0].data == b"held"
        writer.close()
        server.close()

    run(scenario())


def test_close_sends_queued_data_then_close_notify(run: Run, server_ctx: Ctx, client_ctx: Ctx) -> None:
    async def scenario() -> None:
        server, made = await served(server_ctx, echo=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ctx)
        writer.write(b"go")
        await wait_for(lambda: bool(made) and bool(made[0].data))
        transport = made[0].transport
        assert transport is not None
        payload = b"y" * (3 * 1024 * 1024)  # more than the socket takes at once: close must wait for it
        transport.write(payload)
        transport.close()
        assert transport.is_closing()
        transport.write(b"dropped after close")
        assert await reader.read() == payload  # all of it, then a clean end of stream
        assert await made[0].lost is None
        writer.close()
        server.close()

    run(scenario())


def test_client_disconnect_reports_eof_and_loss(run: Run, server_ctx: Ctx, client_ctx: Ctx) -> None:
    async def scenario() -> None:
        server, made = await served(server_ctx)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ctx)
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        writer.transport.abort()  # no close_notify: a ragged end, as from a killed client
        await made[0].lost
        assert "eof" in made[0].events or made[0].events[-1] == "lost"
        server.close()

    run(scenario())


def test_a_client_that_stalls_in_the_handshake_is_dropped(run: Run,
                                                          server_ctx: ssl.SSLContext) -> None:
    async def scenario() -> None:
        made: list[Recorder] = []
        server = Server(server_ctx, lambda: made.append(Recorder()) or made[-1], handshake_timeout_s=0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x16\x03\x01")  # the start of a ClientHello, then silence
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        assert made == []  # no protocol for a connection that never finished its handshake
        writer.close()
        server.close()

    run(scenario())


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_1, None], ids=["tls1.1", "not-tls"])
def test_a_failed_handshake_closes_the_socket_only(run: Run, server_ctx: Ctx, client_ctx: Ctx,
                                                   version: ssl.TLSVersion | None) -> None:
    async def scenario() -> None:
        server, made = await served(server_ctx)
        if version is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)  # a record header, then nonsense
            with contextlib.suppress(ConnectionResetError):  # an alert at most, then the server closes
                await asyncio.wait_for(reader.read(), 5)
            writer.close()
        else:
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.check_hostname = False
            old.verify_mode = ssl.CERT_NONE
            old.minimum_version = old.maximum_version = version
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.open_connection("127.0.0.1", server.port, ssl=old)
        assert made == []
        # the server goes on serving others
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ctx)
        writer.write(b"ok")
        assert await reader.readexactly(2) == b"ok"
        writer.close()
        server.close()

    run(scenario())


def test_a_protocol_that_raises_loses_its_connection_only(run: Run,
                                                          server_ctx: ssl.SSLContext,
                                                          client_ctx: ssl.SSLContext) -> None:
    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("boom")

    async def scenario() -> None:
        made: list[Recorder] = []
        server = Server(server_ctx, lambda: made.append(Broken()) or made[-1])
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ctx)
        writer.write(b"x")
        await wait_for(lambda: bool(made))
        assert isinstance(await made[0].lost, RuntimeError)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        server.close()

    run(scenario())
