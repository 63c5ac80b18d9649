"""The proxy port's HTTP/1.1 handling, spoken byte by byte over raw sockets."""

from __future__ import annotations

import asyncio

import aiohttp

from lb.app import LoadBalancer
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url


async def _raw(balancer: LoadBalancer, data: bytes, until: bytes | None = None) -> bytes:
    """Send ``data``, read until the server closes (or ``until`` has been seen)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    writer.write(data)
    await writer.drain()
    received = b""
    try:
        async with asyncio.timeout(5):
            while True:
                piece = await reader.read(65536)
                if not piece:
                    break
                received += piece
                if until is not None and received.count(until) >= 1 and received.endswith(until):
                    break
    finally:
        writer.close()
    return received


async def test_pipelined_requests_are_answered_in_order(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    requests = (
        b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3))
        + b"GET /echo?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    received = await _raw(balancer, requests)
    assert received.count(b"HTTP/1.1 200 OK") == 4
    positions = [received.index(b'"/echo?n=%d"' % i) for i in range(4)]
    assert positions == sorted(positions)
    assert b"Connection: close" in received.rsplit(b"HTTP/1.1 200 OK", 1)[1]


async def test_http_10_client_gets_a_closed_connection(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    received = await _raw(balancer, b"GET /echo HTTP/1.0\r\nHost: x\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in received


async def test_chunked_response_is_passed_on_chunked(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    async with client.get(url(balancer, "/chunked")) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert await response.read() == b"alpha-beta-gamma"
    # And to an HTTP/1.0 client, which cannot read chunks, as a close-delimited body.
    received = await _raw(balancer, b"GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n")
    assert received.endswith(b"\r\n\r\nalpha-beta-gamma")


async def test_chunked_request_body_reaches_the_worker(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    received = await _raw(
        balancer,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert received.endswith(b'{"received": 11}')


async def test_head_request_gets_headers_only(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    async with client.head(url(balancer, "/echo")) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 0
        assert await response.read() == b""
    # The connection stays usable for the next request.
    async with client.get(url(balancer, "/echo")) as response:
        assert response.status == 200


async def test_expect_100_continue_is_answered_before_the_body(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    try:
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"data")
            final = await reader.read()
    finally:
        writer.close()
    assert final.startswith(b"HTTP/1.1 200 OK")
    assert final.endswith(b'{"received": 4}')


async def test_malformed_request_gets_a_400_json_and_a_close(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    received = await _raw(balancer, b"GET /echo HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 Bad Request")
    assert b'"code":"bad_request"' in received
    assert workers[0].seen["GET /echo"] == 0


async def test_conflicting_length_and_chunking_is_refused(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    """Content-Length with Transfer-Encoding is how requests are smuggled: refuse it."""
    balancer = await start_lb(workers[:1])
    received = await _raw(
        balancer,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert received.startswith(b"HTTP/1.1 400")
    assert workers[0].seen["POST /upload"] == 0
    assert workers[0].seen["GET /echo"] == 0


async def test_one_client_connection_serves_many_requests(
    start_lb: StartLB, workers: list[FakeWorker]
) -> None:
    balancer = await start_lb(workers[:1])
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(50):
            async with session.get(url(balancer, "/echo")) as response:
                assert response.status == 200
                await response.read()
    assert workers[0].seen["GET /echo"] == 50
