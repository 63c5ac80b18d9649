"""Review of the proxy port's HTTP/1.1 engine: framing, reuse, cancellation, back-pressure.

Each test marked ``xfail(strict=True)`` proves a bug that is still open: it fails today and will
turn the suite red (XPASS) once the bug is fixed, so the mark must then be removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from lb.app import LoadBalancer
from lb.http.server import ClientConnection
from lb.http.upstream import UpstreamConnection
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB
from tests.support import eventually

pytestmark = pytest.mark.timeout(20)

# -- helpers ---------------------------------------------------------------------------------


async def _open(
    balancer: LoadBalancer, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if rcvbuf is None:
        return await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", balancer.proxy_port))
    # A small limit too: the StreamReader stops reading the socket past twice this many bytes.
    return await asyncio.open_connection(sock=sock, limit=2048)


async def _read_response(reader: asyncio.StreamReader, timeout_s: float = 1.5) -> bytes:
    """One response with a Content-Length body (head and body)."""
    async with asyncio.timeout(timeout_s):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head + await reader.readexactly(length)


def _client_connection(balancer: LoadBalancer) -> ClientConnection:
    assert balancer.server is not None
    (conn,) = balancer.server.connections
    return conn


def _upstream_connections(balancer: LoadBalancer) -> list[UpstreamConnection]:
    assert balancer.components is not None
    return [c for pool in balancer.components.upstreams.pools for c in pool.connections]


def _idle_upstream_connections(balancer: LoadBalancer) -> list[UpstreamConnection]:
    assert balancer.components is not None
    return [c for pool in balancer.components.upstreams.pools for c in pool.idle_connections]


Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawWorker:
    """A worker spoken to byte by byte: ``/health`` is answered, anything else goes to ``handler``.

    The handler gets the request head and the connection, and owns the connection from then on.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.port = 0
        self.heads: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RawWorker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /health "):
                    body = b'{"status": "ok", "current_load": 0}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    continue
                self.heads.append(head)
                await self.handler(head, reader, writer)
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_worker(handler: Handler) -> AsyncIterator[RawWorker]:
    worker = await RawWorker(handler).start()
    try:
        yield worker
    finally:
        await worker.stop()


# -- request framing ---------------------------------------------------------------------------


async def test_request_trailers_never_become_headers_for_the_worker(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    reader, writer = await _open(balancer)
    try:
        # One write, so the trailers are parsed before the exchange's task builds the head.
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Smuggled: yes\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
        )
        response = await _read_response(reader)
    finally:
        writer.close()
    # Trailers arrive after any check of the head was made: promoted to header fields, they
    # could smuggle anything (an X-Forwarded-For from a trailer would replace the client's).
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert b'"body_length": 5' in response
    assert b"X-Smuggled" not in response, response
    assert b"6.6.6.6" not in response, response


# -- upgrades the worker does not accept -------------------------------------------------------


async def test_a_refused_upgrade_leaves_the_connection_usable(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    reader, writer = await _open(balancer)
    try:
        # What `curl --http2` sends over cleartext, to a worker that speaks HTTP/1.1 only.
        writer.write(
            b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        first = await _read_response(reader)
        assert first.startswith(b"HTTP/1.1 200")
        writer.write(b"GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        second = await _read_response(reader, timeout_s=1.0)
    finally:
        writer.close()
    assert second.startswith(b"HTTP/1.1 200")
    assert b'"/echo?n=2"' in second


@pytest.mark.xfail(
    strict=True,
    reason="the body of an Upgrade request is never sent to the worker (llhttp hands it over "
    "as the upgrade tail): a worker that does not switch protocols waits for it forever",
)
async def test_the_body_of_an_upgrade_request_reaches_a_worker_that_does_not_switch(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1], first_byte_timeout_s=1.0)
    reader, writer = await _open(balancer)
    try:
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        response = await _read_response(reader, timeout_s=1.8)
    finally:
        writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]  # today: 504 after the timeout
    assert b'"body_length": 5' in response


# -- a worker that answers before it has read the whole request body -------------------------


async def test_an_early_response_to_an_upload_reaches_the_client(start_lb: StartLB) -> None:
    async def refuse(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        body = b'{"error": "too big"}'
        writer.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        await asyncio.sleep(30)  # and reads nothing more (nginx's and many apps' behaviour)

    async with raw_worker(refuse) as worker:
        balancer = await start_lb([worker], shutdown_timeout_s=0.5)
        reader, writer = await _open(balancer)
        size = 64 << 20

        async def upload() -> None:
            writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            piece = b"u" * (1 << 20)
            for _ in range(size // len(piece)):
                writer.write(piece)
                await writer.drain()

        uploading = asyncio.create_task(upload())
        try:
            response = await _read_response(reader, timeout_s=1.5)
        finally:
            uploading.cancel()
            writer.close()
    assert response.startswith(b"HTTP/1.1 413")


async def test_a_half_sent_upload_never_returns_its_worker_connection_to_the_pool(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1], first_byte_timeout_s=0.5)
    reader, writer = await _open(balancer)
    # Over the replay buffer, so the body streams; the worker answers without reading it.
    writer.write(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    writer.write(b"e" * 100_000)
    await writer.drain()
    await eventually(lambda: any(c.complete for c in _upstream_connections(balancer)), 2.0)
    writer.close()  # the client hangs up with 900 kB of the body unsent
    assert balancer.components is not None
    instance = balancer.components.registry.snapshot.instances[0]
    await eventually(lambda: instance.load.inflight == 0, 2.0)
    # The next request goes out on that connection: the worker takes it for the rest of the
    # upload, never answers, and the client gets a 504.
    reader, writer = await _open(balancer)
    try:
        writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await _read_response(reader)
    finally:
        writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]


# -- limits on what a client may make the proxy hold ------------------------------------------


async def test_pipelined_requests_are_not_queued_without_limit(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    _reader, writer = await _open(balancer)
    try:
        writer.write(b"GET /slow?s=3 HTTP/1.1\r\nHost: x\r\n\r\n" * 20_000)  # 0.7 MB
        await eventually(lambda: workers[0].started == 1, 2.0)
        conn = _client_connection(balancer)
        deadline = time.monotonic() + 0.5
        most = 0
        while time.monotonic() < deadline:
            most = max(most, len(conn.pending))
            await asyncio.sleep(0.02)
    finally:
        writer.close()
    assert most <= 1000, f"{most} pipelined requests held for one connection"


async def test_an_endless_request_line_is_refused(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1], max_header_bytes=16384)
    reader, writer = await _open(balancer)
    try:
        writer.write(b"GET /" + b"a" * (4 << 20))  # 4 MiB of URL and no end of line
        async with asyncio.timeout(1.0):
            status_line = await reader.readline()
    except TimeoutError:
        status_line = b"(nothing: the proxy is still buffering the URL)"
    finally:
        writer.close()
    assert status_line.startswith((b"HTTP/1.1 414", b"HTTP/1.1 431", b"HTTP/1.1 400")), status_line


async def _ok(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()


async def test_a_long_url_without_headers_is_refused(start_lb: StartLB) -> None:
    async with raw_worker(_ok) as worker:
        balancer = await start_lb([worker])
        reader, writer = await _open(balancer)
        try:
            # HTTP/1.0 needs no Host: a request line alone is a whole request.
            writer.write(b"GET /echo?" + b"q" * 20_000 + b" HTTP/1.0\r\n\r\n")
            async with asyncio.timeout(1.5):
                status_line = await reader.readline()
        finally:
            writer.close()
    assert worker.heads == [], f"the worker got a {len(worker.heads[0])}-byte head"
    assert status_line.startswith((b"HTTP/1.1 414", b"HTTP/1.1 431")), status_line


async def test_an_http_10_request_without_host_is_served(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    reader, writer = await _open(balancer)
    try:
        writer.write(b"GET /echo HTTP/1.0\r\n\r\n")
        response = await _read_response(reader)
    finally:
        writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:300]


# -- back-pressure -----------------------------------------------------------------------------


async def test_a_tunnel_to_a_slow_worker_holds_bounded_memory(start_lb: StartLB) -> None:
    async def switch_then_stall(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(30)  # a worker that is busy and reads nothing for a while

    async with raw_worker(switch_then_stall) as worker:
        balancer = await start_lb([worker])
        reader, writer = await _open(balancer)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        async with asyncio.timeout(2):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")

        async def flood() -> None:
            piece = b"w" * (1 << 20)
            for _ in range(64):
                writer.write(piece)
                await writer.drain()

        flooding = asyncio.create_task(flood())
        (upstream,) = _upstream_connections(balancer)
        assert upstream.transport is not None
        most = 0
        deadline = time.monotonic() + 1.5
        try:
            while time.monotonic() < deadline and not flooding.done():
                most = max(most, upstream.transport.get_write_buffer_size())
                await asyncio.sleep(0.01)
            most = max(most, upstream.transport.get_write_buffer_size())
        finally:
            flooding.cancel()
            writer.close()
    assert most < 8 << 20, f"{most >> 20} MiB buffered for a worker that reads nothing"


async def _fill_until_buffered(
    balancer: LoadBalancer, fake: FakeWorker, low: int, high: int
) -> ClientConnection:
    """Feed /gated 2 kB at a time until the client's kernel buffers are full and the proxy's
    write buffer for it holds between ``low`` and ``high`` bytes (not yet paused)."""
    await eventually(lambda: fake.seen["GET /gated"] == 1, 2.0)
    conn = _client_connection(balancer)
    assert conn.transport is not None
    transport = conn.transport
    deadline = time.monotonic() + 5.0
    while (buffered := transport.get_write_buffer_size()) < low:
        assert time.monotonic() < deadline, "the client's buffers never filled"
        # Big pieces while the kernel still takes everything, small ones once it is full.
        fake.gate.put_nowait((b"g" * (32768 if buffered == 0 else 2048), False))
        with contextlib.suppress(AssertionError):
            await eventually(
                lambda b=buffered: transport.get_write_buffer_size() != b,  # type: ignore[misc]
                0.005 if buffered == 0 else 0.05,
                0.001,
            )
    assert transport.get_write_buffer_size() < high
    assert not conn.writing_paused, "already paused"
    return conn


async def test_a_worker_connection_paused_for_a_slow_client_is_not_pooled_paused(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    fake = workers[0]
    balancer = await start_lb([fake], first_byte_timeout_s=0.5)
    reader, writer = await _open(balancer, rcvbuf=4096)
    try:
        writer.write(b"GET /gated HTTP/1.1\r\nHost: x\r\n\r\n")  # and reads nothing yet
        await _fill_until_buffered(balancer, fake, 40_000, 60_000)
        # The last piece and the end of the body in one read: it pushes the client's buffer
        # over the high-water mark, which pauses the worker connection, then completes it.
        fake.gate.put_nowait((b"g" * 30_000, True))
        await eventually(lambda: len(_idle_upstream_connections(balancer)) == 1, 2.0)
        (pooled,) = _idle_upstream_connections(balancer)
        # The client reads it all (the proxy's buffer drains, nothing resumes that connection).
        async with asyncio.timeout(2):
            while not (await reader.read(1 << 16)).endswith(b"0\r\n\r\n"):
                pass
        writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await _read_response(reader)
    finally:
        writer.close()
    assert response.startswith(b"HTTP/1.1 200"), (response[:120], pooled.reading_paused)


async def test_a_slow_client_already_behind_still_pauses_a_download(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    _reader, writer = await _open(balancer, rcvbuf=4096)
    try:
        # Pipelined: small whole responses until the client (reading nothing) is behind, then a
        # 256 MiB download, which must wait for the client.
        writer.write(
            b"GET /blob?bytes=100000 HTTP/1.1\r\nHost: x\r\n\r\n" * 40
            + b"GET /download?bytes=268435456 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await eventually(lambda: workers[0].seen["GET /download"] == 1, 3.0)
        conn = _client_connection(balancer)
        assert conn.transport is not None
        most = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and most < 64 << 20:
            most = max(most, conn.transport.get_write_buffer_size())
            await asyncio.sleep(0.01)
    finally:
        writer.close()
    assert most < 8 << 20, f"{most >> 20} MiB buffered for a client that reads nothing"


# -- connection reuse and client connection handling -------------------------------------------


async def test_a_get_on_a_stale_pooled_connection_is_retried_on_a_fresh_one(
    start_lb: StartLB,
) -> None:
    async def answer_then_close_idle(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # Its keep-alive timer fires just as the LB sends the next request on this connection.
        await reader.readuntil(b"\r\n\r\n")

    async with raw_worker(answer_then_close_idle) as worker:
        balancer = await start_lb([worker])
        statuses = []
        for _ in range(2):
            reader, writer = await _open(balancer)
            try:
                writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
                statuses.append((await _read_response(reader)).split(b"\r\n", 1)[0])
            finally:
                writer.close()
    assert statuses == [b"HTTP/1.1 200 OK"] * 2


async def test_an_http_10_keep_alive_client_is_told_or_closed(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    reader, writer = await _open(balancer)
    try:
        writer.write(b"GET /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        response = await _read_response(reader)
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        closed = False
        if b"connection: keep-alive" not in head:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    closed = await reader.read(1) == b""
    finally:
        writer.close()
    assert b"connection: keep-alive" in head or closed, head


async def test_a_malformed_pipelined_request_does_not_abort_the_one_before_it(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1], shutdown_timeout_s=0.5)
    reader, writer = await _open(balancer)
    try:
        writer.write(
            b"GET /slow?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /echo HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
        )
        first = await _read_response(reader)
    finally:
        writer.close()
    assert first.startswith(b"HTTP/1.1 200"), first[:120]
    assert workers[0].cancelled == 0


async def test_a_client_stalled_mid_upload_is_eventually_cut_off(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1], client_body_timeout_s=0.2)
    assert balancer.components is not None
    instance = balancer.components.registry.snapshot.instances[0]
    reader, writer = await _open(balancer)
    try:
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        writer.write(b"s" * 1000)  # then nothing, ever
        await eventually(lambda: instance.load.inflight == 1, 2.0)
        closed = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):  # over 7 times the body timeout
                closed = await reader.read() is not None
    finally:
        writer.close()
    assert closed
    assert instance.load.inflight == 0
