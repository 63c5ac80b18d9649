"""The smuggling and conformance corpus: what a client or a worker sends, and what must happen.

Each case names the rule it checks (RFC 9112 unless said otherwise) and its outcome: the final
statuses the client gets, in order; whether the connection is then closed (if not, the test
sends one more request on it, which must be answered as itself: the framing is still in
step); and exactly which requests reach the worker (method, target, body, each framed by one
``Content-Length`` or by ``chunked``). Response cases script the worker's raw answer to
``GET /r`` (the ``reply`` bytes); a bad response is the worker's fault, not the client's,
so the client gets a 502 on a connection that stays in step, and the worker's connection is
closed (the probe then reaches the worker on a new one). The cases draw on HAProxy's
``reg-tests/http-messaging`` and the published request-smuggling research (CL.TE, TE.CL,
TE.TE obfuscations).
"""

from __future__ import annotations

from dataclasses import dataclass

Forwarded = tuple[bytes, bytes, bytes]  # method, target, body as the worker must receive them


@dataclass(frozen=True)
class Case:
    name: str
    rule: str
    send: bytes
    statuses: tuple[int, ...]
    closed: bool
    forwarded: tuple[Forwarded, ...] = ()
    reply: bytes = b""  # the worker's raw answer to GET /r (response cases)
    worker_gets: tuple[bytes, ...] = ()  # header lines the first forwarded request carries
    client_gets: tuple[bytes, ...] = ()  # bytes the client's response must contain
    client_never: tuple[bytes, ...] = ()  # bytes that must not reach the client
    fresh: bool = False  # the LB closed the worker's connection: the probe goes on a new one


def get(target: bytes = b"/a", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (target, extra)


def post(extra: bytes, body: bytes = b"") -> bytes:
    return b"POST /a HTTP/1.1\r\nHost: h\r\n%s\r\n%s" % (extra, body)


GET_A: Forwarded = (b"GET", b"/a", b"")
HELLO: Forwarded = (b"POST", b"/a", b"hello")
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"
