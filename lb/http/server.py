"""The proxy port: an asyncio protocol per client connection, parsing with llhttp (httptools).

A connection turns each request into an :class:`~lb.http.exchange.Exchange` and hands it to
the proxy, one at a time (pipelined requests wait their turn). The exchange streams the
request body in with back-pressure (reading pauses while too much is buffered) and the
response out with back-pressure (``pause_writing`` tells whoever feeds the response to stop
reading).

A client that goes away cancels the task serving its exchange; that aborts the worker's
request with it. Shutdown stops listening, closes idle connections, lets exchanges in
progress finish up to a deadline (their connections close after the response), then cancels
what is left.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

import httptools
import structlog
from httptools.parser.errors import HttpParserError, HttpParserUpgrade

from lb.http.exchange import ClientPeer, Exchange, RequestBodyError
from lb.http.limits import ConnectionCap
from lb.http.rules import (
    TOO_MANY_HEADERS,
    TWO_HOSTS,
    Refused,
    body_framing_head,
    check_head,
    check_transfer_encoding,
)
from lb.http.shutdown import ShutdownState
from lb.http.wire import Headers, json_error

log = structlog.get_logger("lb.http.server")

_MAX_PIPELINED: Final = 16  # parsed requests waiting their turn before reading pauses
_FEED_SLICE: Final = 4096
_LINGER_S: Final = 5.0  # how long unread request bytes are discarded before closing


def _discard(data: bytes) -> None:
    pass


class _HeadersTooLarge(Exception):
    pass


Serve = Callable[[Exchange], Awaitable[None]]


class ClientConnection(ClientPeer):
    """One client's connection: parses its requests and serves them one at a time."""

    def __init__(self, server: ProxyServer) -> None:
        super().__init__(server.loop, server.body_timeout_s)
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.current: Exchange | None = None
        self.pending: collections.deque[Exchange] = collections.deque()
        self.last_active = 0.0
        self._in_trailers = False
        self._reading_head = False
        # When the head now awaited began (the connection's start for the first one, its first
        # byte for later ones); None while no head is awaited. The server's sweeper answers 408
        # when it is too old: bytes dribbled in do not move it.
        self._head_since: float | None = None
        self._head_fed = 0  # bytes received while a request head is incomplete
        self._refusal: tuple[int, str, str] | None = None  # sent once the current one is done
        self._failed = False  # a request body could not be parsed: read nothing more
        self._max_headers = server.max_headers
        self._upgrading: Exchange | None = None  # waits for the worker's answer to an upgrade
        self._resuming_body = False  # parsing the framing head put in front of a body
        self._held: list[bytes] = []  # received, not parsed yet: too many requests queued
        self._url: list[bytes] = []
        self._headers: Headers = []
        self._header_bytes = 0
        # The framing of the request being parsed, noted header by header as llhttp delivers
        # them so the head is never scanned again to find it.
        self._content_length: int | None = None
        self._chunked = False
        self._expect_continue = False
        self._host: bytes | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.server.cap.admit(len(self.server.connections)):
            # Over the connection cap: closed at once, before any parsing or bookkeeping.
            self.tunnel = _discard
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.last_active = self._head_since = self.loop.time()
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        if self.tunnel is not None:
            self.tunnel(data)
            return
        if self._upgrading is not None:
            self._upgrading.upgrade_tail += data  # the worker's answer decides what it is
            return
        if self._refusal is not None or self._failed:
            return  # a refusal waits for the request before it; read nothing more
        if self._held or len(self.pending) >= _MAX_PIPELINED:
            self._held.append(data)  # parsed when the requests before it are served
            self.pause_reading()
            return
        current = self.current
        if len(data) > _FEED_SLICE and (current is None or current.body_complete):
            # A large read outside a request body may hold many pipelined requests: parse it
            # a slice at a time so the queue of parsed requests stays bounded.
            for start in range(0, len(data), _FEED_SLICE):
                if len(self.pending) >= _MAX_PIPELINED:
                    self._held.append(data[start:])
                    self.pause_reading()
                    return
                self._feed(data[start : start + _FEED_SLICE])
                if self.closed or self._refusal is not None or self._failed:
                    return
                if self._upgrading is not None:
                    self._upgrading.upgrade_tail += data[start + _FEED_SLICE :]
                    return
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
            if self._reading_head:
                # llhttp keeps a header that has not ended in its own buffer: bound it here.
                self._head_fed += len(data)
                if self._head_fed > 2 * self.server.max_header_bytes:
                    raise _HeadersTooLarge
        except _HeadersTooLarge:
            self._refuse(431, "headers_too_large", "request headers are too large")
        except HttpParserUpgrade as upgrade:
            self._upgrade(data[upgrade.args[0] :])
        except HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, Refused):
                self._refuse(cause.status, cause.code, cause.message)
            elif isinstance(cause, _HeadersTooLarge):
                self._refuse(431, "headers_too_large", "request headers are too large")
            else:
                self._refuse(400, "bad_request", "malformed HTTP request")

    def _upgrade(self, tail: bytes) -> None:
        exchange = self.pending[-1] if self.pending else self.current
        if exchange is None:
            return
        if exchange.has_body:
            # RFC 9110 section 7.8 lets a server ignore Upgrade: a request with a body goes
            # on as an ordinary one (its task has not run yet), its body parsed as a body.
            exchange.upgrade = False
            exchange.body_complete = False  # llhttp ended the message at its head
            self._resuming_body = True
            self._feed(body_framing_head(exchange.chunked, exchange.content_length) + tail)
            return
        # What follows is the new protocol's if the worker switches, the next request's if not:
        # held until the worker has answered.
        exchange.upgrade_tail = tail
        self._upgrading = exchange
        self.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.connections.discard(self)
        for exchange in (self.current, *self.pending):
            if exchange is not None:
                exchange.wake()
        # The client is gone: stop serving it, which aborts the worker's request too.
        if self.current is not None and self.current.task is not None:
            self.current.task.cancel()
        self.pending.clear()
        self._upgrading = None  # an upgraded exchange refers back to this connection
        # The parser holds this connection's callbacks: a reference cycle. Without it the
        # connection is freed by reference counting once its exchange ends, not left for a
        # full garbage collection (see lb.gc_policy). Nothing parses after the connection is lost.
        del self.parser

    # -- llhttp callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._head_since is None:
            self._head_since = self.last_active
        self._in_trailers = False
        self._reading_head = True
        self._head_fed = 0
        self._url = []
        self._headers = []
        self._header_bytes = 0
        self._content_length = None
        self._chunked = False
        self._expect_continue = False
        self._host = None

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._header_bytes += len(url)
        if self._header_bytes > self.server.max_header_bytes:
            raise _HeadersTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.server.max_header_bytes:
            raise _HeadersTooLarge
        if not self._in_trailers:
            # llhttp reports a chunked body's trailers through here too: they count toward
            # the limit but never become headers of the request already on its way.
            headers = self._headers
            if len(headers) >= self._max_headers:
                raise Refused(*TOO_MANY_HEADERS)
            headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                self._content_length = int(value)  # llhttp has checked it is a number
            elif lower == b"transfer-encoding":
                check_transfer_encoding(value)
                self._chunked = True
            elif lower == b"expect":
                self._expect_continue = value.lower() == b"100-continue"
            elif lower == b"host":
                if self._host is not None:
                    raise Refused(*TWO_HOSTS)
                self._host = value

    def on_headers_complete(self) -> None:
        self._head_since = None
        self._in_trailers = True
        self._reading_head = False
        if self._resuming_body:
            self._resuming_body = False
            return  # the framing head in front of an Upgrade request's body
        if self._header_bytes > self.server.max_header_bytes:
            raise _HeadersTooLarge
        parser = self.parser
        version = parser.get_http_version()
        target = b"".join(self._url)
        method = parser.get_method().decode("ascii")
        check_head(version, method, target, self._host is not None, self._chunked)
        exchange = Exchange(
            self,
            method,
            target,
            self._headers,
            version,
            parser.should_keep_alive() and not self.server.shutdown_state.begun,
            parser.should_upgrade(),
            content_length=self._content_length,
            chunked=self._chunked,
            expect_continue=self._expect_continue,
            host=self._host or b"",
        )
        if self.current is None:
            self._start(exchange)
        else:
            self.pending.append(exchange)
            if len(self.pending) >= _MAX_PIPELINED:
                self.pause_reading()  # a client may not queue requests without limit

    def on_body(self, data: bytes) -> None:
        exchange = self.pending[-1] if self.pending else self.current
        if exchange is not None:
            exchange.feed_body(data)

    def on_message_complete(self) -> None:
        exchange = self.pending[-1] if self.pending else self.current
        if exchange is not None:
            exchange.finish_body()

    # -- serving -----------------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        self.current = exchange
        self.server.exchange_started()
        exchange.task = self.loop.create_task(self._serve(exchange), name="lb-exchange")

    async def _serve(self, exchange: Exchange) -> None:
        try:
            await self.server.serve(exchange)
        finally:
            self._done(exchange)

    def _done(self, exchange: Exchange) -> None:
        self.current = None
        # A finished task keeps its exception, whose traceback holds the frames that refer to
        # the exchange: forgetting the task leaves no cycle through it (see lb.gc_policy).
        exchange.task = None
        self.server.exchange_done()
        self.on_backpressure = None
        self.last_active = self.loop.time()
        if self._head_since is not None:
            self._head_since = self.last_active  # a head begun meanwhile: its time starts now
        if self.closed:
            return
        if self._refusal is not None and not self.pending:
            status, code, message = self._refusal
            self.write(json_error(status, code, message, request_id="-", keep_alive=False))
            self._linger()  # the client may still be sending what was refused
        elif not exchange.body_complete:
            # An unread request body would be parsed as the next request: close instead.
            self._linger()
        elif not exchange.keep_alive or self.server.shutdown_state.begun:
            self.close()
        elif self.pending:
            self._start(self.pending.popleft())
            if len(self.pending) < _MAX_PIPELINED and self._refusal is None:
                held, self._held = self._held, []
                for data in held:
                    self.data_received(data)
                if not self._held:
                    self.resume_reading()
        elif exchange.upgrade and self.tunnel is None:
            # The worker did not switch protocols: this connection speaks HTTP again.
            self._upgrading = None
            self.resume_reading()
            if exchange.upgrade_tail:
                self.data_received(exchange.upgrade_tail)

    def _linger(self) -> None:
        """Close after an answer given before the client finished sending (an early answer to
        an upload, a refusal). Closing at once with unread data would reset the connection and
        could destroy the answer on its way to the client, so: stop writing, discard what still
        comes, and close after a grace time."""
        transport = self.transport
        if transport is None or self.closed or not transport.can_write_eof():
            self.close()
            return
        transport.write_eof()
        self.tunnel = _discard
        self.resume_reading()
        self.loop.call_later(_LINGER_S, self.close)

    async def drain(self) -> None:
        await self.wait_writable()
        if self.closed:
            raise ConnectionResetError("the client closed the connection")

    def head_overdue(self, horizon: float) -> bool:
        """Whether the head awaited began before ``horizon`` with nothing being served."""
        since = self._head_since
        return since is not None and since < horizon and self.current is None

    def time_out_head(self) -> None:
        """Answer 408 to a head not complete in time (nginx's ``client_header_timeout``)."""
        self._head_since = None
        self.write(
            json_error(
                408,
                "request_timeout",
                "the request head was not received in time",
                request_id="-",
                keep_alive=False,
            )
        )
        # The client may still be sending: closing with its bytes unread would reset the
        # connection and could destroy the 408 on its way.
        self._linger()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer a request that cannot be parsed, then close. Requests received before it
        are answered first: the refusal waits its turn."""
        parsing = self.pending[-1] if self.pending else self.current
        if parsing is not None and not parsing.body_complete:
            # The fault is in the body of a request already handed over: that request fails
            # in its turn, answered, logged and counted by whoever serves it; the connection
            # closes after it.
            self._failed = True
            self.pause_reading()
            parsing.fail_body(RequestBodyError(status, code, message))
            return
        if self.current is not None:
            # The fault is in a later, pipelined request: finish the ones before it first.
            self._refusal = (status, code, message)
            self.pause_reading()
            return
        self.write(json_error(status, code, message, request_id="-", keep_alive=False))
        self._linger()  # the client may still be sending what was refused


class ProxyServer:
    """Listens, owns the client connections, and shuts them down in order."""

    def __init__(
        self,
        serve: Serve,
        *,
        max_header_bytes: int,
        keepalive_timeout_s: float,
        max_headers: int = 100,
        body_timeout_s: float = 60.0,
        header_timeout_s: float = 10.0,
        max_connections: int = 0,
        shutdown_state: ShutdownState | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.serve = serve
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.keepalive_timeout_s = keepalive_timeout_s
        self.body_timeout_s = body_timeout_s
        self.header_timeout_s = header_timeout_s
        self.cap = ConnectionCap(max_connections, self.loop.time)
        self.connections: set[ClientConnection] = set()
        # Shared with whoever else must know the process is stopping (the proxy, /ready).
        self.shutdown_state = shutdown_state or ShutdownState()
        self.active = 0  # exchanges being served
        self._all_done = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self), host, port, reuse_address=True, backlog=1024
        )
        self._sweeper = self.loop.create_task(self._sweep_idle(), name="lb-idle-sweeper")
        return int(self._server.sockets[0].getsockname()[1])

    def exchange_started(self) -> None:
        self.active += 1

    def exchange_done(self) -> None:
        self.active -= 1
        if self.active == 0 and self.shutdown_state.begun:
            self._all_done.set()

    async def _sweep_idle(self) -> None:
        # One timer for all connections instead of one per request: idle connections close,
        # heads not complete in time get a 408.
        interval = min(5.0, self.keepalive_timeout_s / 2, self.header_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = self.loop.time()
            horizon = now - self.keepalive_timeout_s
            head_horizon = now - self.header_timeout_s
            for conn in [c for c in self.connections if c.current is None]:
                if conn.tunnel is not None or conn.closed:
                    continue
                if conn.head_overdue(head_horizon):
                    conn.time_out_head()
                elif conn.last_active < horizon:
                    conn.close()

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, finish what is in progress up to ``timeout_s``, cancel the rest."""
        self.shutdown_state.begin()
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for conn in [c for c in self.connections if c.current is None]:
            conn.close()
        if self.active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_done.wait(), timeout_s)
        tasks = [c.current.task for c in self.connections if c.current and c.current.task]
        if tasks:
            log.warning("shutdown_cancelling", exchanges=len(tasks), timeout_s=timeout_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
