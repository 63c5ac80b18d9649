"""Regression tests of the proxy's framing, each spoken byte by byte to a byte-logging worker.

The corpus (``http_corpus/``) covers one exchange at a time; these cover what takes more than
one: a second client, a pooled worker connection, shutdown, metrics and the affinity table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lb.app import LoadBalancer
from tests.integration.lb.byte_worker import ByteWorker, Reply, Request, ok
from tests.integration.lb.conftest import StartLB
from tests.integration.lb.http_corpus.client import Response, is_closed, read_response
from tests.support import eventually

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def worker() -> AsyncIterator[ByteWorker]:
    worker = await ByteWorker().start()
    yield worker
    await worker.stop()


async def _exchange(balancer: LoadBalancer, data: bytes, responses: int = 1) -> list[Response]:
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    try:
        writer.write(data)
        return [await asyncio.wait_for(read_response(reader), 5.0) for _ in range(responses)]
    finally:
        writer.close()


async def test_a_connection_token_cannot_smuggle_a_request_into_another_clients(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    balancer = await start_lb([worker])
    # The body, unframed, would be a request of its own that swallows the next client's.
    capture = b"POST /capture HTTP/1.1\r\nHost: h\r\nContent-Length: 300\r\n\r\n"
    (first,) = await _exchange(
        balancer,
        b"POST /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Content-Length\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(capture), capture),
    )
    (second,) = await _exchange(
        balancer, b"GET /b HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer secret\r\n\r\n"
    )
    assert (first.status, second.status) == (200, 200)
    assert worker.errors == []
    assert [(r.method, r.target, r.body) for r in worker.requests] == [
        (b"POST", b"/a", capture),
        (b"GET", b"/b", b""),
    ]
    assert worker.requests[1].header(b"authorization") == [b"Bearer secret"]


async def test_an_upgrade_attempt_never_returns_its_worker_connection_to_the_pool(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    balancer = await start_lb([worker])
    responses = await _exchange(
        balancer,
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n",
        responses=2,
    )
    assert [r.status for r in responses] == [200, 200]
    assert [(r.target, r.position) for r in worker.requests] == [(b"/ws", 0), (b"/next", 0)]


async def test_an_upgrade_is_tunnelled_after_a_101_only(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    def switch(request: Request) -> Reply:
        head = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        return Reply(head, tunnel=True)

    worker.script = switch
    balancer = await start_lb([worker])
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    try:
        writer.write(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        response = await asyncio.wait_for(read_response(reader), 5.0)
        writer.write(b"ping over the tunnel")
        echoed = await asyncio.wait_for(reader.readexactly(20), 5.0)
    finally:
        writer.close()
    assert response.status == 101
    assert echoed == b"ping over the tunnel"


def _answer_once_then_hang_up(request: Request) -> Reply:
    # The worker's keep-alive timer fires as the second request arrives: it closes unanswered.
    return ok(request) if request.position == 0 else Reply(b"", close=True)


async def test_a_post_is_never_sent_twice(start_lb: StartLB, worker: ByteWorker) -> None:
    worker.script = _answer_once_then_hang_up
    balancer = await start_lb([worker])
    post = b"POST /p%d HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
    (first,) = await _exchange(balancer, post % 1)
    (second,) = await _exchange(balancer, post % 2)
    assert (first.status, second.status) == (200, 502)
    assert [r.target for r in worker.requests] == [b"/p1", b"/p2"]


async def test_a_get_on_a_connection_closed_unanswered_is_sent_again(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    worker.script = _answer_once_then_hang_up
    balancer = await start_lb([worker])
    (first,) = await _exchange(balancer, b"GET /g1 HTTP/1.1\r\nHost: h\r\n\r\n")
    (second,) = await _exchange(balancer, b"GET /g2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (first.status, second.status) == (200, 200)
    assert [(r.target, r.position) for r in worker.requests] == [
        (b"/g1", 0),
        (b"/g2", 1),
        (b"/g2", 0),
    ]


async def test_a_worker_connection_closed_while_idle_is_not_reused(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    worker.script = lambda request: Reply(ok(request).data, close=True)  # no Connection: close
    balancer = await start_lb([worker])
    post = b"POST /p%d HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
    for n in (1, 2, 3):
        (response,) = await _exchange(balancer, post % n)
        assert response.status == 200, response.raw
    assert [(r.target, r.position) for r in worker.requests] == [
        (b"/p1", 0),
        (b"/p2", 0),
        (b"/p3", 0),
    ]


async def test_response_trailers_never_pin_affinity(start_lb: StartLB, worker: ByteWorker) -> None:
    worker.script = lambda request: Reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\nLocation: /threads/t1/runs/r1\r\n\r\n"
    )
    balancer = await start_lb([worker])
    (response,) = await _exchange(balancer, b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == 200
    assert response.body == b"ok"
    assert balancer.components is not None
    assert balancer.components.affinity.get("thread:t1") is None


async def _requests_counted(balancer: LoadBalancer, status_class: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{balancer.admin_port}/metrics") as response,
    ):
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "graphfleet_lb_requests_total"
        and sample.labels["status_class"] == status_class
    )


async def test_a_malformed_chunked_body_in_the_heads_packet_leaves_nothing_counted(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    balancer = await start_lb([worker])
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    try:
        writer.write(
            b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"
        )
        response = await asyncio.wait_for(read_response(reader), 5.0)
        assert await is_closed(reader)
    finally:
        writer.close()
    assert response.status == 400
    # Counted as served, then released: shutdown has nothing to wait for.
    server = balancer.server
    assert server is not None
    await eventually(lambda: server.active == 0, 5.0)
    assert await _requests_counted(balancer, "4xx") == 1
    assert [r.target for r in worker.requests] == []


async def test_the_number_of_request_headers_is_limited(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    balancer = await start_lb([worker], max_headers=20)
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(19))
    (fits,) = await _exchange(balancer, b"GET /a HTTP/1.1\r\nHost: h\r\n%s\r\n" % fields)
    (over,) = await _exchange(balancer, b"GET /b HTTP/1.1\r\nHost: h\r\nX: 1\r\n%s\r\n" % fields)
    assert (fits.status, over.status) == (200, 431)
    assert [r.target for r in worker.requests] == [b"/a"]


async def test_six_thousand_empty_headers_are_refused(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    balancer = await start_lb([worker])  # the default limit
    (response,) = await _exchange(
        balancer, b"GET /a HTTP/1.1\r\nHost: h\r\n%s\r\n" % (b"X:\r\n" * 6000)
    )
    assert response.status == 431
    assert worker.requests == []


async def test_the_body_of_an_upgrade_request_is_forwarded_whole_across_packets(
    start_lb: StartLB, worker: ByteWorker
) -> None:
    balancer = await start_lb([worker])
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    try:
        writer.write(
            b"POST /u HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Content-Length: 11\r\n\r\nhel"
        )
        await eventually(lambda: balancer.server is not None and balancer.server.active == 1)
        writer.write(b"lo worldGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        responses = [await asyncio.wait_for(read_response(reader), 5.0) for _ in range(2)]
    finally:
        writer.close()
    assert [r.status for r in responses] == [200, 200]
    assert [(r.target, r.body) for r in worker.requests] == [
        (b"/u", b"hello world"),
        (b"/next", b""),
    ]
