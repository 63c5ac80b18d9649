"""Connections to workers: a keep-alive pool per instance and an llhttp response parser.

A response is delivered in two steps so the proxy can decide before anything reaches the
client: :meth:`UpstreamConnection.wait_head` returns once the status and headers are in (the
body bytes that came with them are kept), then the proxy either reads the rest
(:meth:`wait_done`, for a small body or an ``at_capacity`` check) or attaches a *sink* that
receives every further body piece straight from ``data_received`` — no queue, no task switch
per chunk — with back-pressure by pausing this connection's reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Final

import httptools
from httptools.parser.errors import HttpParserError, HttpParserUpgrade

from lb.http.peer import Peer
from lb.http.wire import Headers

_FINAL: Final = 200  # statuses below are interim (100 Continue, 103 Early Hints) and skipped
# A worker's response head larger than this, or with more fields, is refused (502) rather than
# held: nginx's proxy_buffer_size and HAProxy's tune.maxhdr play the same part.
MAX_RESPONSE_HEAD_BYTES: Final = 65536
MAX_RESPONSE_FIELDS: Final = 100


class _BadResponse(Exception):
    """The worker's response breaks a rule the proxy enforces (raised from llhttp callbacks)."""


_HEAD_TOO_LARGE: Final = "the worker's response head is too large"
_TOO_MANY_FIELDS: Final = "the worker's response has too many header fields"
_UNASKED_101: Final = "101 to a request that did not ask to upgrade"
_EXTRA_BYTES: Final = "bytes after a complete response"


class UpstreamError(Exception):
    """The worker failed the request. ``reached`` is False only when nothing was sent."""

    def __init__(self, message: str, *, reached: bool) -> None:
        super().__init__(message)
        self.reached = reached


class UpstreamConnection(Peer):
    """One connection to a worker, serving one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        super().__init__(pool.loop)
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.on_close: Callable[[], None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self.in_use = False  # between begin() and the pool's release()
        self.eof = False  # the worker closed its side
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: Headers = []
        self.keep_alive = False
        self.head_ready = False
        self.complete = False
        self.received_any = False
        self.head_only = False
        self.request_sent = False  # the whole request went out (else the framing is unknown)
        self.body: list[bytes] = []
        self.sink: Callable[[bytes], None] | None = None
        self.upgrade_tail = b""
        self.upgrade_requested = False  # never pooled: the worker may have switched protocols
        self._in_trailers = False
        self._head_bytes = 0  # size of the head's fields so far
        self._fed_bytes = 0  # bytes received before the head was whole
        self._head_waiter: asyncio.Future[None] | None = None
        self._done_waiter: asyncio.Future[None] | None = None
        self.error: UpstreamError | None = None

    # -- the proxy's side ----------------------------------------------------------------------

    def begin(self, head_only: bool, upgrade: bool = False) -> None:
        """Start a new exchange on this (idle) connection."""
        self._reset()
        self.head_only = head_only
        self.upgrade_requested = upgrade
        self.in_use = True

    async def drain(self) -> None:
        """Wait while the worker is slower to read than we are to send (request bodies), or
        until it answers: a worker may answer (413, say) without reading the rest."""
        if self.writing_paused and not self.head_ready:
            waiter = self._drainer = self.loop.create_future()
            try:
                await waiter
            finally:
                self._drainer = None
                del waiter  # see wait_head
        if self.closed and not self.head_ready:
            raise self.error or UpstreamError("connection closed", reached=True)

    async def wait_head(self, timeout_s: float) -> None:
        if self.head_ready:
            return
        if self.error is not None:
            raise self.error
        waiter = self._head_waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._head_waiter = None
            # The waiter holds the error raised here, whose traceback holds this frame: a
            # reference cycle unless the frame lets go of the waiter (lb.gc_policy).
            del waiter, timer

    async def wait_done(self) -> None:
        if self.complete:
            return
        if self.error is not None:
            raise self.error
        waiter = self._done_waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self._done_waiter = None
            del waiter  # see wait_head

    def take_body(self) -> bytes:
        body = b"".join(self.body)
        self.body.clear()
        return body

    @property
    def reusable(self) -> bool:
        return (
            self.request_sent
            and self.complete
            and self.keep_alive
            and not self.closed
            and not self.head_only
            and not self.upgrade_requested
            and not self.eof
        )

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self.tunnel is not None:
            self.tunnel(data)
            return
        if not self.in_use:
            self.close()  # bytes on an idle connection answer nothing we sent
            return
        try:
            self.parser.feed_data(data)
            if not self.head_ready:
                # llhttp keeps a header that has not ended in its own buffer: bound it here.
                self._fed_bytes += len(data)
                if self._fed_bytes > 2 * MAX_RESPONSE_HEAD_BYTES:
                    raise _BadResponse(_HEAD_TOO_LARGE)
        except HttpParserUpgrade as upgrade:
            # 101 Switching Protocols: what follows the head is the tunnel's first bytes.
            self.upgrade_tail = data[upgrade.args[0] :]
            self.complete = True
            self._wake_done()
        except (HttpParserError, _BadResponse) as exc:
            if self.complete:
                # RFC 9112 section 6.3: bytes after a whole response belong to no request of
                # ours. The response stands; the connection is not trusted with another.
                self.close()
                return
            cause = exc if isinstance(exc, _BadResponse) else exc.__context__
            message = str(cause) if isinstance(cause, _BadResponse) else f"invalid response: {exc}"
            self._fail(UpstreamError(message, reached=True))
            self.close()

    def eof_received(self) -> bool | None:
        self.eof = True  # noted at once: the pool must not hand this connection out again
        return None

    def resume_writing(self) -> None:
        super().resume_writing()
        self._wake_drainer()

    def _wake_drainer(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The parser holds this connection's callbacks (a reference cycle) and nothing parses
        # after the connection is lost: dropped, so reference counting frees the connection.
        del self.parser
        self.pool.discard(self)
        if not self.complete:
            if self.head_ready and not self.keep_alive and self._no_length():
                # A body delimited by the connection closing: this is its end.
                self.complete = True
                self._wake_done()
            else:
                self._fail(UpstreamError("the worker closed the connection", reached=True))
        if self.on_close is not None:
            self.on_close()
            self.on_close = None

    # -- llhttp callbacks ----------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_message_begin(self) -> None:
        if self.complete:
            raise _BadResponse(_EXTRA_BYTES)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
            raise _BadResponse(_HEAD_TOO_LARGE)
        if self._in_trailers:
            return  # trailers are dropped (RFC 9112 section 7.1.2): never header fields
        headers = self.headers
        if len(headers) >= MAX_RESPONSE_FIELDS:
            raise _BadResponse(_TOO_MANY_FIELDS)
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < _FINAL and status != 101:
            self.headers = []  # an interim response: wait for the real one
            self.reason = b""
            self._head_bytes = 0
            return
        if status == 101 and not self.upgrade_requested:
            # RFC 9110 section 15.2.2: a 101 answers only a request to upgrade.
            raise _BadResponse(_UNASKED_101)
        self._in_trailers = True
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.head_ready = True
        self._wake_drainer()
        if self.head_only:
            self.complete = True
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, data: bytes) -> None:
        if self.head_only:
            return
        sink = self.sink
        if sink is None:
            self.body.append(data)
        else:
            sink(data)

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # the end of an interim response
        self.complete = True
        self._wake_done()

    # -- internals -----------------------------------------------------------------------------

    def _no_length(self) -> bool:
        for name, _ in self.headers:
            lower = name.lower()
            if lower in (b"content-length", b"transfer-encoding"):
                return False
        return True

    def _wake_done(self) -> None:
        waiter = self._done_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        self.error = error
        for waiter in (self._head_waiter, self._done_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class UpstreamPool:
    """Idle keep-alive connections to one worker, most recently used first."""

    def __init__(
        self,
        host: str,
        port: int,
        connect_timeout_s: float,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self._ssl = ssl_context
        self.port = port
        self.loop = loop
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[UpstreamConnection] = []
        self._all: set[UpstreamConnection] = set()
        self.retired = False  # the instance left: connections close when released

    @property
    def connections(self) -> frozenset[UpstreamConnection]:
        """Every open connection of this pool, busy or idle (a read-only view)."""
        return frozenset(self._all)

    @property
    def idle_connections(self) -> tuple[UpstreamConnection, ...]:
        """The kept-alive connections waiting for a request, least recently used first."""
        return tuple(self._idle)

    async def acquire(self) -> tuple[UpstreamConnection, bool]:
        """A connection and whether it was reused; raises UpstreamError(reached=False)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.eof:
                return conn, True
        return await self.connect(), False

    async def connect(self) -> UpstreamConnection:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, protocol = await self.loop.create_connection(
                    lambda: UpstreamConnection(self), self.host, self.port, ssl=self._ssl
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(
                f"cannot connect to {self.host}:{self.port}: {exc!r}", reached=False
            ) from exc
        assert isinstance(protocol, UpstreamConnection)
        self._all.add(protocol)
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        conn.in_use = False
        # A raised error's traceback holds frames that refer to the connection: forgotten, no
        # reference cycle is left for the garbage collector (lb.gc_policy).
        conn.error = None
        if conn.reusable and not self.retired:
            conn.idle_since = self.loop.time()
            conn.sink = None
            conn.on_backpressure = None
            # Paused for a slow client by the last read of its response: the next request
            # must find it reading.
            conn.resume_reading()
            self._idle.append(conn)
        else:
            conn.close()

    def discard(self, conn: UpstreamConnection) -> None:
        self._all.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)

    def close_idle(self, older_than: float) -> None:
        for conn in [c for c in self._idle if c.idle_since <= older_than]:
            self._idle.remove(conn)
            conn.close()

    def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._idle.clear()
