"""WebSocket proxying: both directions pumped until either side closes, close codes passed on."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSMsgType, hdrs, web
from multidict import CIMultiDict

from lb.errors import error_response
from lb.registry import Instance

# Handshake headers belong to each hop's own handshake; the client library makes its own.
_HANDSHAKE = frozenset(
    h.lower()
    for h in (
        hdrs.SEC_WEBSOCKET_KEY,
        hdrs.SEC_WEBSOCKET_VERSION,
        hdrs.SEC_WEBSOCKET_EXTENSIONS,
        hdrs.SEC_WEBSOCKET_PROTOCOL,
        hdrs.SEC_WEBSOCKET_ACCEPT,
    )
)


async def proxy_websocket(
    request: web.Request,
    session: aiohttp.ClientSession,
    instance: Instance,
    forward_headers: CIMultiDict[str],
) -> web.StreamResponse:
    """Open the worker's socket first (so a failure is still an HTTP error), then accept."""
    headers = CIMultiDict((k, v) for k, v in forward_headers.items() if k.lower() not in _HANDSHAKE)
    protocols = [
        p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",") if p
    ]
    try:
        upstream = await session.ws_connect(
            instance.url + request.raw_path,
            headers=headers,
            protocols=protocols,
            autoping=False,
            autoclose=False,
            max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
        )
    except aiohttp.WSServerHandshakeError as exc:
        return error_response(
            exc.status if 400 <= exc.status < 600 else 502,
            "websocket_refused",
            f"instance {instance.id} refused the WebSocket: {exc.message}",
        )
    except (aiohttp.ClientError, TimeoutError, OSError):
        return error_response(502, "upstream_unreachable", f"instance {instance.id} is unreachable")

    client = web.WebSocketResponse(
        protocols=[upstream.protocol] if upstream.protocol else (),
        autoping=False,
        autoclose=False,
        max_msg_size=0,
    )
    try:
        await client.prepare(request)
        await _pump_both(client, upstream)
    finally:
        await upstream.close()
    return client


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump_both(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    # Each direction runs until its source closes; the side that sees a close frame performs
    # the closing handshake for both. aiohttp lets close() run while the other pump waits in
    # receive(): that pump is woken with CLOSING and simply ends.
    pumps = (
        asyncio.create_task(_pump(client, upstream)),
        asyncio.create_task(_pump(upstream, client)),
    )
    try:
        await asyncio.gather(*pumps)
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(source: Socket, sink: Socket) -> None:
    while True:
        message = await source.receive()
        kind = message.type
        if kind is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif kind is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif kind is WSMsgType.PING:
            await sink.ping(message.data)
        elif kind is WSMsgType.PONG:
            await sink.pong(message.data)
        elif kind is WSMsgType.CLOSE:
            # Pass the close on with its code and reason, wait for the far end's answer, and
            # give that answer back: both ends see the code the other end chose.
            if not sink.closed:
                await sink.close(code=message.data, message=(message.extra or "").encode())
            await source.close(code=sink.close_code or message.data)
            return
        elif kind is WSMsgType.CLOSING:
            return  # the other pump is closing this socket
        else:  # CLOSED or ERROR: the source is gone without a close frame
            known = source.close_code
            # 1005 and 1006 are for reporting only and may not be sent in a close frame.
            sendable = known is not None and known not in (1005, 1006)
            if not sink.closed:
                await sink.close(
                    code=known if sendable and known else aiohttp.WSCloseCode.INTERNAL_ERROR
                )
            return
