"""Differential fuzzing of the proxy's framing (hypothesis).

Generated request sequences — valid heads and bodies mixed with broken ones — are sent by
concurrent clients through a real LB to a byte-logging worker, split into packets at random
points. The model is simple: a client's requests are answered in order up to the first broken
one, which gets an LB-made 4xx/5xx and a closed connection. The invariant compares the model
with what happened on both sides:

- every client gets one response per answered request, in order, and only its own;
- the worker, whose bytes are parsed by an independent strict parser, received exactly the
  requests that got a worker's response — same method, target and body — and nothing it
  could not parse;
- afterwards no exchange and no instance slot is left counted.

``make test`` runs a few dozen examples within a wall-clock budget; set ``FUZZ_EXAMPLES``
(e.g. ``FUZZ_EXAMPLES=5000``) for a long, randomised run.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.integration.lb.byte_worker import ByteWorker
from tests.integration.lb.http_corpus.client import Response, is_closed, read_response
from tests.support import eventually

_LONG_RUN = "FUZZ_EXAMPLES" in os.environ
_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
_BUDGET_S = float(os.environ.get("FUZZ_BUDGET_S", "3600" if _LONG_RUN else "12"))

pytestmark = pytest.mark.timeout(int(_BUDGET_S) + 45)


@dataclass(frozen=True)
class Spec:
    """One request a client sends; ``broken`` ones must be refused by the LB."""

    wire: bytes
    method: bytes = b""
    target: bytes = b""
    body: bytes = b""
    broken: bool = False


_BODY_BYTES = st.binary(max_size=120) | st.sampled_from(
    [b"", b"0\r\n\r\n", b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n", b"\r\n\r\n"]
)
_EXTRA = st.sampled_from(
    [
        b"",
        b"Connection: keep-alive, Content-Length\r\n",
        b"Connection: Transfer-Encoding, Host\r\n",
        b"Connection: Upgrade\r\nUpgrade: websocket\r\n",
        b"Expect: 100-continue\r\n",
        b"X-Thread-ID: t\r\n",
    ]
)
_CHUNKED_POST = b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
_BROKEN = st.sampled_from(
    [
        b"GET /b HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        _CHUNKED_POST + b"zz\r\nhello\r\n0\r\n\r\n",
        _CHUNKED_POST + b"5\r\nhelloXX0\r\n\r\n",
        b"GET /b HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n",
        b"GET /b HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n",
        b"GET /b HTTP/2.0\r\nHost: h\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
        b"GET /b HTTP/1.1\r\n\r\n",
    ]
)


@st.composite
def _request(draw: st.DrawFn, target: bytes) -> Spec:
    if draw(st.integers(0, 9)) == 0:
        return Spec(draw(_BROKEN), broken=True)
    extra = draw(_EXTRA)
    kind = draw(st.sampled_from(["get", "length", "chunked"]))
    if kind == "get":
        wire = b"GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (target, extra)
        return Spec(wire, b"GET", target)
    body = draw(_BODY_BYTES)
    if kind == "length":
        head = b"Content-Length: %d\r\n" % len(body)
        encoded = body
    else:
        head = b"Transfer-Encoding: chunked\r\n"
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        ext = draw(st.sampled_from([b"", b";x=1", b';q="a;b"']))
        encoded = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces if p)
        encoded += b"0\r\n\r\n"
    wire = b"POST %s HTTP/1.1\r\nHost: h\r\n%s%s\r\n%s" % (target, extra, head, encoded)
    return Spec(wire, b"POST", target, body)


@st.composite
def _client(draw: st.DrawFn, client: int) -> tuple[list[Spec], list[int]]:
    count = draw(st.integers(1, 5))
    specs = [draw(_request(b"/f/%d/%d" % (client, i))) for i in range(count)]
    size = sum(len(s.wire) for s in specs)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, size - 1)), max_size=6))))
    return specs, cuts


async def _run_client(port: int, specs: list[Spec], cuts: list[int]) -> tuple[list[Response], bool]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"".join(s.wire for s in specs)
    responses: list[Response] = []
    try:
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            writer.write(data[start:end])
            await writer.drain()
            await asyncio.sleep(0)  # let the LB see this packet on its own
        expected = len(specs)
        while len(responses) < expected:
            try:
                responses.append(await asyncio.wait_for(read_response(reader), 5.0))
            except asyncio.IncompleteReadError:
                break
            if responses[-1].closes:
                break
        closed = await is_closed(reader) if any(s.broken for s in specs) else True
    finally:
        writer.close()
    return responses, closed


def _check_client(client: int, specs: list[Spec], responses: list[Response], closed: bool,
                  worker: ByteWorker) -> None:  # fmt: skip
    model = []
    for spec in specs:
        if spec.broken:
            break
        model.append(spec)
    answered = [r for r in responses if r.header(b"x-fleet-instance")]
    refusals = responses[len(answered) :]
    assert [r.body for r in answered] == [b"%s %d" % (s.target, len(s.body)) for s in model]
    assert all(r.status == 200 for r in answered)
    if len(model) < len(specs):
        assert len(refusals) == 1, refusals
        assert refusals[0].status in (400, 501, 505), refusals
        assert closed, "the connection stayed open after a refused request"
    else:
        assert refusals == []
    prefix = b"/f/%d/" % client
    received = [
        (r.method, r.target, r.body) for r in worker.requests if r.target.startswith(prefix)
    ]
    assert received == [(s.method, s.target, s.body) for s in model]


async def _idle(balancer: LoadBalancer) -> bool:
    assert balancer.components is not None
    instances = balancer.components.registry.snapshot.instances
    server = balancer.server
    assert server is not None
    return server.active == 0 and all(i.load.inflight == 0 for i in instances)


def test_the_worker_sees_exactly_the_requests_the_lb_answered(tmp_path: Path) -> None:
    # One thread only: hypothesis runs here and each example drives this test's own loop to
    # completion. (Hypothesis parses modules with ``ast`` while it generates; in CPython 3.11
    # that must never overlap another thread compiling code, or the interpreter's AST state
    # is corrupted for the rest of the session.)
    loop = asyncio.new_event_loop()
    worker = loop.run_until_complete(ByteWorker().start())
    balancer = LoadBalancer(
        LBSettings(
            host="127.0.0.1",
            port=0,
            admin_port=0,
            instances=worker.url,
            health_interval_s=0.1,
            health_timeout_s=0.5,
            access_log=False,
            shutdown_timeout_s=1.0,
            data_dir=tmp_path / "lb",
        )
    )
    try:
        loop.run_until_complete(balancer.start())
        assert balancer.components is not None
        registry = balancer.components.registry
        loop.run_until_complete(eventually(lambda: len(registry.snapshot.routable) == 1))
        deadline = time.monotonic() + _BUDGET_S

        async def example(clients: list[tuple[list[Spec], list[int]]]) -> None:
            worker.reset()
            results = await asyncio.gather(
                *(_run_client(balancer.proxy_port, specs, cuts) for specs, cuts in clients)
            )
            await eventually(lambda: _idle(balancer), 5.0)
            assert worker.errors == []
            assert not [r for r in worker.requests if r.target == b"/b"], "a refused request"
            for client, ((specs, _), (responses, closed)) in enumerate(
                zip(clients, results, strict=True)
            ):
                _check_client(client, specs, responses, closed, worker)

        @settings(
            max_examples=_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=not _LONG_RUN,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(st.integers(0, 2), min_size=1, max_size=3).flatmap(
            lambda ids: st.tuples(*(_client(i) for i in range(len(ids))))
        ))  # fmt: skip
        def check(clients: tuple[tuple[list[Spec], list[int]], ...]) -> None:
            if time.monotonic() > deadline:
                return  # over the wall-clock budget: the remaining examples pass unrun
            loop.run_until_complete(example(list(clients)))

        check()
    finally:
        loop.run_until_complete(balancer.stop())
        loop.run_until_complete(worker.stop())
        loop.close()
