"""Every case of the corpus, sent in one write through a real LB to a byte-logging worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.integration.lb.byte_worker import ByteWorker, Reply, Request, ok
from tests.integration.lb.conftest import StartLB
from tests.integration.lb.http_corpus.cases import Case
from tests.integration.lb.http_corpus.client import is_closed, read_response
from tests.integration.lb.http_corpus.framing_cases import FRAMING
from tests.integration.lb.http_corpus.head_cases import HEADS
from tests.integration.lb.http_corpus.response_cases import RESPONSES

pytestmark = pytest.mark.timeout(20)

_PROBE = b"GET /probe HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.fixture
async def worker() -> AsyncIterator[ByteWorker]:
    worker = await ByteWorker().start()
    yield worker
    await worker.stop()


def _forwarded(request: Request) -> tuple[bytes, bytes, bytes]:
    return request.method, request.target, request.body


@pytest.mark.parametrize("case", FRAMING + HEADS + RESPONSES, ids=lambda c: c.name)
async def test_case(case: Case, start_lb: StartLB, worker: ByteWorker) -> None:
    def script(request: Request) -> Reply:
        return Reply(case.reply) if request.target == b"/r" and case.reply else ok(request)

    worker.script = script
    balancer = await start_lb([worker])
    reader, writer = await asyncio.open_connection("127.0.0.1", balancer.proxy_port)
    received = b""
    try:
        writer.write(case.send)
        statuses = []
        for _ in case.statuses:
            response = await asyncio.wait_for(read_response(reader), 5.0)
            statuses.append(response.status)
            received += response.raw
        assert tuple(statuses) == case.statuses, f"{case.rule}: {received[:600]!r}"
        if case.closed:
            assert await is_closed(reader), f"{case.rule}: the connection stayed open"
        else:
            # The framing is still in step: one more request is answered as itself.
            writer.write(_PROBE)
            probe = await asyncio.wait_for(read_response(reader), 5.0)
            assert (probe.status, probe.body) == (200, b"/probe 0"), f"{case.rule}: {probe.raw!r}"
            assert worker.requests[-1].target == b"/probe"
            if case.fresh:
                assert worker.connections[-1].startswith(b"GET /probe "), case.rule
            worker.requests.pop()
    finally:
        writer.close()
    assert worker.errors == [], f"{case.rule}: the worker got a malformed stream"
    assert [_forwarded(r) for r in worker.requests] == list(case.forwarded), case.rule
    for line in case.worker_gets:
        name, _, value = line.partition(b": ")
        assert worker.requests[0].header(name.lower()) == [value], case.rule
    for expected in case.client_gets:
        assert expected in received, f"{case.rule}: {received[:600]!r}"
    for unexpected in case.client_never:
        assert unexpected not in received, f"{case.rule}: {received[:600]!r}"
