"""Moving bodies: the request body to the worker, the response to the client — in one write
when it is complete on arrival, otherwise piece by piece straight from the worker's socket to
the client's with back-pressure both ways, or as a raw tunnel after ``101 Switching
Protocols``. Also the answers the LB makes itself (JSON errors).
"""

from __future__ import annotations

import asyncio

from lb.http.exchange import Exchange
from lb.http.upstream import UpstreamConnection, UpstreamError
from lb.http.wire import LAST_CHUNK, chunk, json_error


class BodyTooLarge(Exception):
    """The request body passed the configured limit while it streamed."""


def write_error(
    ex: Exchange,
    status: int,
    code: str,
    message: str,
    request_id: str,
    retry_after_s: int | None = None,
) -> None:
    """Answer with ``{"error": {"code", "message"}}``; the connection stays open only when the
    request body has been read whole."""
    ex.write(
        json_error(
            status,
            code,
            message,
            request_id=request_id,
            keep_alive=ex.keep_alive and ex.body_complete,
            retry_after_s=retry_after_s,
            head_only=ex.method == "HEAD",
        )
    )


async def send_body(ex: Exchange, conn: UpstreamConnection, limit_bytes: int) -> None:
    """Stream the request body to the worker as it arrives (``limit_bytes`` 0: no limit)."""
    chunked = ex.chunked
    async for piece in ex.iter_body():
        if limit_bytes and ex.body_seen > limit_bytes:
            conn.close()
            raise BodyTooLarge
        conn.write(chunk(piece) if chunked else piece)
        await conn.drain()
        if conn.head_ready:
            # The worker answered before taking the whole body: pass the answer on and
            # send no more. Neither connection can carry another request after this.
            ex.keep_alive = False
            return
    if chunked:
        conn.write(LAST_CHUNK)


def write_whole(ex: Exchange, conn: UpstreamConnection, head: bytes, rechunk: bool) -> None:
    """The whole response is here: one write."""
    body = conn.take_body()
    if rechunk:
        body = (chunk(body) if body else b"") + LAST_CHUNK
    ex.write(head + body)


async def stream(ex: Exchange, conn: UpstreamConnection, head: bytes, rechunk: bool) -> str | None:
    """Send the head and what came with it, then the rest straight from the worker's socket to
    the client's. None when the body went out whole; the reason when the worker broke off
    mid-body (the client is cut off too: its status is already sent)."""
    client = ex.conn
    first = conn.take_body()
    ex.write(head + (chunk(first) if rechunk and first else first))
    conn.sink = (lambda data: client.write(chunk(data))) if rechunk else client.write
    client.feed_backpressure_to(conn)
    try:
        await conn.wait_done()
    except UpstreamError as exc:
        ex.keep_alive = False
        client.close()
        return f"upstream_broke_off: {exc}"
    finally:
        conn.sink = None
        client.on_backpressure = None
    if rechunk:
        client.write(LAST_CHUNK)
    return None


async def tunnel(ex: Exchange, conn: UpstreamConnection, head: bytes) -> None:
    """After a 101, pass bytes both ways untouched until either side closes."""
    ex.write(head)
    client = ex.conn
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def upstream_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    ex.keep_alive = False
    conn.on_close = upstream_closed
    conn.tunnel = client.write
    client.tunnel = conn.write
    client.feed_backpressure_to(conn)
    conn.feed_backpressure_to(client)
    if conn.upgrade_tail:
        client.write(conn.upgrade_tail)
    if ex.upgrade_tail:
        conn.write(ex.upgrade_tail)
    client.resume_reading()
    try:
        if not conn.closed:
            await closed
    finally:
        client.on_backpressure = None
        conn.on_backpressure = None
        conn.close()
        client.close()
