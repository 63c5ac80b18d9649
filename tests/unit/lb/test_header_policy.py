"""The proxy's header policy over hostile header lists: what is stripped, added and learned."""

from __future__ import annotations

import asyncio
import random

import pytest

from lb.http.exchange import ClientPeer, Exchange
from lb.http.wire import HOP_BY_HOP, Headers
from lb.proxy.headers import RequestIds, ResponseHead, TrustedProxies, outgoing_request


def exchange(
    headers: Headers,
    *,
    method: str = "GET",
    target: bytes = b"/",
    version: str = "1.1",
    host: bytes = b"lb.test",
) -> Exchange:
    conn = ClientPeer(asyncio.get_running_loop(), body_timeout_s=1.0)
    conn.peer = "10.0.0.7"
    return Exchange(
        conn,
        method,
        target,
        headers,
        version,
        True,
        False,
        content_length=None,
        chunked=False,
        expect_continue=False,
        host=host,
    )


def header_lines(head: bytes) -> list[tuple[bytes, bytes]]:
    """The ``(lower-cased name, value)`` pairs of a head, status or request line left out."""
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    pairs = [line.split(b": ", 1) for line in lines]
    return [(name.lower(), value) for name, value in pairs]


async def test_a_request_loses_its_hop_by_hop_headers_and_gains_forwarding_ones() -> None:
    ex = exchange(
        [
            (b"Host", b"lb.test"),
            (b"Connection", b"keep-alive, X-Secret"),
            (b"X-Secret", b"drop me"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"Expect", b"100-continue"),
            (b"X-Forwarded-For", b"192.0.2.1"),
            (b"X-Request-ID", b"client-id"),
            (b"Accept", b"*/*"),
        ]
    )
    request = outgoing_request(ex, RequestIds())
    headers = header_lines(request.head)
    names = [name for name, _ in headers]
    assert request.request_id == "client-id"
    assert names.count(b"x-request-id") == 1
    # Not from a trusted proxy: the client's X-Forwarded-For is replaced, not extended.
    assert (b"x-forwarded-for", b"10.0.0.7") in headers
    assert (b"x-forwarded-host", b"lb.test") in headers
    assert (b"accept", b"*/*") in headers
    for gone in (b"connection", b"x-secret", b"keep-alive", b"te", b"expect"):
        assert gone not in names
    assert request.head.startswith(b"GET / HTTP/1.1\r\n")


_CLAIMS: Headers = [
    (b"Host", b"lb.test"),
    (b"X-Forwarded-For", b"192.0.2.1"),
    (b"x-forwarded-for", b"192.0.2.2"),
    (b"X-Forwarded-Proto", b"https"),
    (b"X-Forwarded-Host", b"public.example"),
    (b"Forwarded", b"for=192.0.2.1"),
    (b"X-Real-IP", b"192.0.2.1"),
]


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        (
            "",
            {
                b"x-forwarded-for": [b"10.0.0.7"],
                b"x-forwarded-proto": [b"http"],
                b"x-forwarded-host": [b"lb.test"],
                b"x-real-ip": [b"10.0.0.7"],
                b"forwarded": [],
            },
        ),
        (
            "192.168.0.0/16",  # someone else is trusted, not this client
            {b"x-forwarded-for": [b"10.0.0.7"], b"forwarded": []},
        ),
        (
            "10.0.0.0/8",
            {
                b"x-forwarded-for": [b"192.0.2.1, 192.0.2.2, 10.0.0.7"],
                b"x-forwarded-proto": [b"https"],
                b"x-forwarded-host": [b"public.example"],
                b"x-real-ip": [b"192.0.2.1"],
                b"forwarded": [b"for=192.0.2.1"],
            },
        ),
    ],
)
async def test_forwarding_headers_are_believed_only_from_trusted_proxies(
    trusted: str, expected: dict[bytes, list[bytes]]
) -> None:
    request = outgoing_request(exchange(_CLAIMS), RequestIds(), TrustedProxies(trusted))
    headers = header_lines(request.head)
    for name, values in expected.items():
        assert [v for n, v in headers if n == name] == values, name
    assert [v for n, v in headers if n == b"host"] == [b"lb.test"]


async def test_connection_cannot_remove_host_or_forwarding_headers() -> None:
    ex = exchange([(b"Host", b"lb.test"), (b"Connection", b"Host, X-Forwarded-For, X-Real-IP")])
    headers = dict(header_lines(outgoing_request(ex, RequestIds()).head))
    assert headers[b"host"] == b"lb.test"
    assert headers[b"x-forwarded-for"] == b"10.0.0.7"
    assert headers[b"x-real-ip"] == b"10.0.0.7"


def test_a_bad_trusted_proxies_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        TrustedProxies("10.0.0.0/8, not-a-network")


@pytest.mark.parametrize(
    ("method", "target", "headers", "key", "creates_work", "background"),
    [
        ("POST", b"/threads/t1/runs", [], "thread:t1", True, True),
        ("GET", b"/threads/t1/runs/r1?x=1", [], "thread:t1", False, False),
        ("POST", b"/graphs/execute", [], None, True, True),
        ("GET", b"/executions/e9", [], "execution:e9", False, False),
        ("POST", b"/runs/wait", [(b"x-thread-id", b"t7")], "thread:t7", True, False),
        ("POST", b"/runs/stream", [], None, True, False),
        ("POST", b"/runs", [], None, True, True),
        ("POST", b"/runs/batch?x=1", [], None, True, True),
        ("GET", b"/runs", [], None, False, False),
        ("GET", b"/threads/t1", [(b"X-Thread-ID", b"t2")], "thread:t2", False, False),
        ("GET", b"/threads/search", [], None, False, False),
    ],
)
async def test_the_routing_facts_come_from_the_same_pass(
    method: str,
    target: bytes,
    headers: Headers,
    key: str | None,
    creates_work: bool,
    background: bool,
) -> None:
    request = outgoing_request(exchange(headers, method=method, target=target), RequestIds())
    assert request.affinity_key == key
    assert request.creates_work is creates_work
    assert request.starts_background is background


async def test_request_ids_are_unique_and_uuid_sized() -> None:
    ids = RequestIds()
    made = {ids.next() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)


@pytest.mark.parametrize(
    ("value", "length"),
    [(b"12", 12), (b"0", 0), (b"", None), (b"-1", None), (b"1e3", None), (b"9" * 40, None)],
)
def test_a_response_length_that_is_not_plain_digits_is_not_trusted(
    value: bytes, length: int | None
) -> None:
    assert ResponseHead([(b"Content-Length", value)]).content_length == length


async def test_a_response_is_stripped_tagged_and_its_locations_learned() -> None:
    response = ResponseHead(
        [
            (b"Connection", b"close, X-Internal"),
            (b"X-Internal", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Location", b"http://worker:8000/threads/t5/runs/r1?x=1"),
            (b"Content-Location", b"/executions/e3#frag"),
            (b"X-Request-ID", b"worker-echo"),
            (b"Content-Type", b"text/plain"),
        ]
    )
    assert response.learned == ["thread:t5", "execution:e3"]
    ex = exchange([])
    head = response.for_client(ex, 200, b"OK", "w-1", "rid", closing=False)
    headers = header_lines(head)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.rechunk
    assert ex.keep_alive
    assert (b"x-fleet-instance", b"w-1") in headers
    assert [v for n, v in headers if n == b"x-request-id"] == [b"rid"]
    assert (b"transfer-encoding", b"chunked") in headers
    assert b"x-internal" not in [n for n, _ in headers]
    assert b"connection" not in [n for n, _ in headers]


@pytest.mark.parametrize(
    ("version", "closing", "framed", "keep_alive", "connection"),
    [
        ("1.1", False, True, True, None),
        ("1.1", True, True, False, b"close"),
        ("1.0", False, True, True, b"keep-alive"),
        ("1.0", False, False, False, b"close"),  # a body delimited by closing
    ],
)
async def test_the_client_connection_stays_open_only_when_it_can(
    version: str, closing: bool, framed: bool, keep_alive: bool, connection: bytes | None
) -> None:
    headers: Headers = [(b"Content-Length", b"2")] if framed else []
    ex = exchange([], version=version)
    head = ResponseHead(headers).for_client(ex, 200, b"", "w", "r", closing=closing)
    assert ex.keep_alive is keep_alive
    assert [v for n, v in header_lines(head) if n == b"connection"] == (
        [connection] if connection else []
    )


_NAMES = [
    *HOP_BY_HOP,
    b"Connection",
    b"CONNECTION",
    b"Upgrade",
    b"x-request-id",
    b"X-Forwarded-For",
    b"x-thread-id",
    b"Expect",
    b"Content-Length",
    b"Location",
    b"X-Custom",
    b"x-other",
]
_VALUES = [
    b"",
    b"1",
    b"x-custom",
    b"X-Other, te",
    b"/threads/a/runs",
    b"http://h/executions/e",
    b"7",
]


@pytest.mark.parametrize("seed", range(300))
async def test_no_hop_by_hop_header_crosses_in_either_direction(seed: int) -> None:
    """Property, over seeded random header lists: whatever arrives, what is forwarded carries
    no hop-by-hop header and none the Connection header names (apart from the framing the
    proxy writes itself), exactly one request id, and the policy never raises."""
    rng = random.Random(seed)
    headers = [(rng.choice(_NAMES), rng.choice(_VALUES)) for _ in range(rng.randint(0, 12))]
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    own = {b"x-request-id", b"x-forwarded-for", b"x-fleet-instance", b"x-forwarded-host"}

    request = outgoing_request(exchange(headers), RequestIds())
    sent = [name for name, _ in header_lines(request.head)]
    assert sent.count(b"x-request-id") == 1
    assert not (set(sent) & HOP_BY_HOP)
    assert not (set(sent) & (named - own))

    ex = exchange([])
    response = ResponseHead(headers)
    back = header_lines(response.for_client(ex, 200, b"", "w", "r", closing=False))
    names = [name for name, _ in back]
    assert names.count(b"x-request-id") == 1
    assert set(names) & HOP_BY_HOP <= {b"connection", b"transfer-encoding"}
    assert (b"transfer-encoding" in names) is response.rechunk
    assert not (set(names) & (named - own - {b"connection", b"transfer-encoding"}))
