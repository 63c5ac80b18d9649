"""One request and its response on a client connection, as the proxy sees it.

The exchange streams the request body in with back-pressure (the connection's reading pauses
while more than ``_HIGH_WATER`` bytes wait, resumes below ``_LOW_WATER``), answers
``Expect: 100-continue`` when the body is first read, and gives up on a client whose body
stalls for longer than the connection's ``body_timeout_s``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Final

from lb.http.peer import Peer
from lb.http.wire import Headers

_HIGH_WATER: Final = 256 * 1024  # request body bytes buffered before reading pauses
_LOW_WATER: Final = 64 * 1024
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class ClientPeer(Peer):
    """A client's connection as its exchanges see it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, body_timeout_s: float) -> None:
        super().__init__(loop)
        self.peer = ""  # the client's address
        # A client that stops sending its body mid-way would hold a worker connection and an
        # in-flight slot forever: this long without a byte of body, and it is given up.
        self.body_timeout_s = body_timeout_s


class Exchange:
    """One request and its response on a client connection.

    The engine knows what framing needs (length, chunking, ``Expect``, ``Host``); what the
    headers mean beyond that (routing, forwarding) is the proxy's business.
    """

    __slots__ = (
        "_body_waiter",
        "_buffered",
        "_chunks",
        "body_complete",
        "body_seen",
        "chunked",
        "conn",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "keep_alive",
        "method",
        "response_started",
        "target",
        "task",
        "upgrade",
        "upgrade_tail",
        "version",
    )

    def __init__(
        self,
        conn: ClientPeer,
        method: str,
        target: bytes,
        headers: Headers,
        version: str,
        keep_alive: bool,
        upgrade: bool,
        *,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
        host: bytes,
    ) -> None:
        self.conn = conn
        self.method = method
        self.target = target
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.upgrade_tail = b""
        self.response_started = False
        self.task: asyncio.Task[None] | None = None
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        self.host = host
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self.body_seen = 0
        self.body_complete = False
        self._body_waiter: asyncio.Future[None] | None = None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    @property
    def path(self) -> str:
        end = self.target.find(b"?")
        return (self.target if end < 0 else self.target[:end]).decode("latin-1")

    # -- request body (fed by the connection: feed_body, finish_body, wake) ------------------

    def feed_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.body_seen += len(data)
        if self._buffered > _HIGH_WATER:
            self.conn.pause_reading()
        self.wake()

    def finish_body(self) -> None:
        self.body_complete = True
        self.wake()

    def wake(self) -> None:
        """Wake the reader of the body: more came, it ended, or the connection closed."""
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_body(self) -> None:
        if self.conn.closed:
            raise ConnectionResetError("the client closed the connection")
        if self.expect_continue and not self.response_started:
            self.expect_continue = False
            self.conn.write(_CONTINUE)
        self._body_waiter = self.conn.loop.create_future()
        try:
            # A client that stops sending its body mid-way would hold a worker connection
            # and an in-flight slot forever.
            async with asyncio.timeout(self.conn.body_timeout_s):
                await self._body_waiter
        except TimeoutError:
            self.conn.close()
            raise ConnectionResetError("the client stopped sending its request body") from None
        finally:
            self._body_waiter = None

    async def read_body(self) -> bytes:
        """The whole body (callers use it only for bodies of a known, small length)."""
        while not self.body_complete:
            await self._wait_body()
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self.conn.resume_reading()
        return body

    async def iter_body(self) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives."""
        chunks = self._chunks
        while True:
            while chunks:
                data = chunks.popleft()
                self._buffered -= len(data)
                if self._buffered < _LOW_WATER:
                    self.conn.resume_reading()
                yield data
            if self.body_complete:
                return
            await self._wait_body()

    # -- response --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.response_started = True
        self.conn.write(data)
