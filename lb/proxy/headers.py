"""Header policy: what the proxy forwards, adds and strips — one pass over each head.

Request: hop-by-hop headers (RFC 9110 section 7.6.1) and the headers its ``Connection`` names
are dropped; ``X-Forwarded-For``, ``-Proto``, ``-Host``, ``X-Real-IP`` and ``X-Request-ID`` are
added (a client's own request id is kept); ``Expect`` is answered here, never forwarded.
Forwarding headers a client sent (``X-Forwarded-*``, ``Forwarded``, ``X-Real-IP``) are believed
only from a trusted proxy (:class:`TrustedProxies`): from anyone else they are replaced by the
LB's own values, so a client cannot make a worker see a false address, scheme or host. ``Host``
is forwarded once, whatever ``Connection`` names. The same pass
takes the routing facts: the affinity key (``X-Thread-ID``, else the thread or execution the
path names) and whether the request creates work, both as :mod:`common.contract` defines them.

Response: the same stripping; ``X-Fleet-Instance`` and ``X-Request-ID`` added; the body's
framing decided (passed on, re-chunked, or delimited by closing); the affinity keys a
``Location`` or ``Content-Location`` names noted for the caller to pin.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import secrets
from typing import Final

from common.contract import (
    RUNS_STARTED_HEADER,
    THREAD_HEADER,
    affinity_key,
    creates_work,
    starts_background_run,
)
from lb.http.exchange import Exchange
from lb.http.wire import CRLF, HOP_BY_HOP, Headers, connection_tokens, reason, without_named
from lb.routing.affinity import key_from_location
from lb.settings import parse_networks

_THREAD: Final = THREAD_HEADER.lower().encode()
# Never hop-by-hop, whatever a Connection header names (RFC 9110 section 7.6.1): the framing
# and Host belong to the message, and removing them would let its body become a request.
_NOT_NAMEABLE: Final = frozenset({b"content-length", b"transfer-encoding", b"host"})
# What a client says about where a request came from; believed only from a trusted proxy.
_FORWARDING: Final = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip"}
)


class TrustedProxies:
    """The networks (CIDR) whose forwarding headers are believed. Empty: nobody's.

    The answer for each client address is cached (bounded), so the hot path pays one dict
    lookup per request, and nothing at all when the list is empty.
    """

    def __init__(self, cidrs: str) -> None:
        self.networks = parse_networks(cidrs)
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, address: str) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


_NOBODY: Final = TrustedProxies("")


class RequestIds:
    """Request ids of 32 hex digits like a UUID's, unique across LB processes by the random
    prefix, at a fraction of ``uuid4()``'s cost on the hot path."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return "%s%016x" % (self._prefix, next(self._counter))  # noqa: UP031


class OutgoingRequest:
    """A request as it goes to a worker: the same head and body for every attempt."""

    __slots__ = (
        "abort_reason",
        "affinity_key",
        "body",
        "creates_work",
        "head",
        "replayable",
        "request_id",
        "starts_background",
    )

    def __init__(
        self,
        request_id: str,
        head: bytes,
        affinity_key: str | None,
        creates_work: bool,
        starts_background: bool = False,
    ) -> None:
        self.request_id = request_id
        self.head = head
        self.affinity_key = affinity_key
        self.creates_work = creates_work
        # A success leaves a run going on the worker after the answer (common.contract).
        self.starts_background = starts_background
        self.body: bytes | None = None  # read ahead when small enough to send again
        self.replayable = True  # False once a streamed body has gone out
        # Set when the worker broke off a response already under way (the client got a status
        # and part of a body): the request is counted and logged as aborted, with this reason.
        self.abort_reason: str | None = None


def outgoing_request(
    ex: Exchange, ids: RequestIds, trusted: TrustedProxies = _NOBODY
) -> OutgoingRequest:
    """The head to send to a worker and the routing facts, from one pass over the headers."""
    request_id = ""
    thread = b""
    upgrade = b""
    tokens: frozenset[bytes] = frozenset()
    kept: list[bytes] = []
    peer_text = ex.conn.peer
    believed: Headers | None = [] if trusted.networks and trusted.trusts(peer_text) else None
    for name, value in ex.headers:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            if lower == b"connection":
                tokens |= connection_tokens(value)
            elif lower == b"upgrade":
                upgrade = value
            continue
        if lower == b"x-request-id":
            request_id = value.decode("latin-1")
            continue
        if lower in _FORWARDING or lower == b"host":
            # Written below, after Connection's names are removed, so none of them can be
            # removed by a Connection token; a client's are kept only from a trusted proxy.
            if believed is not None and lower != b"host":
                believed.append((lower, value))
            continue
        if lower == b"expect":
            continue  # answered here (100 Continue) when the body is read
        if lower == b"content-length":
            continue  # the LB frames the body itself, below
        if lower == _THREAD:
            thread = value
        kept.append(name + b": " + value)
    if tokens:
        kept = without_named(kept, tokens - _NOT_NAMEABLE)  # named in Connection: hop-by-hop
    if not request_id:
        request_id = ids.next()
    peer = peer_text.encode()
    if ex.host:
        kept.append(b"Host: " + ex.host)
    if believed:
        _forwarded_by_proxy(kept, believed, peer, ex.host)
    else:
        kept.append(b"X-Forwarded-For: " + peer)
        kept.append(b"X-Forwarded-Proto: http")
        if ex.host:
            kept.append(b"X-Forwarded-Host: " + ex.host)
        kept.append(b"X-Real-IP: " + peer)
    kept.append(b"X-Request-ID: " + request_id.encode())
    # The framing llhttp parsed, written by the LB: the body it forwards is the one it framed.
    if ex.chunked:
        kept.append(b"Transfer-Encoding: chunked")
    elif ex.content_length is not None:
        kept.append(b"Content-Length: %d" % ex.content_length)
    if ex.upgrade and upgrade:
        kept.append(b"Connection: Upgrade")
        kept.append(b"Upgrade: " + upgrade)
    head = b"%s %s HTTP/1.1\r\n%s\r\n\r\n" % (ex.method.encode(), ex.target, CRLF.join(kept))
    method, path = ex.method, ex.path
    key = "thread:" + thread.decode("latin-1") if thread else affinity_key(path)
    work = creates_work(method, path)
    return OutgoingRequest(
        request_id, head, key, work, work and starts_background_run(method, path)
    )


def _forwarded_by_proxy(kept: list[bytes], believed: Headers, peer: bytes, host: bytes) -> None:
    """A trusted proxy's forwarding headers: kept as it sent them, the LB's hop appended to
    ``X-Forwarded-For``; what the proxy did not say, the LB says."""
    seen: dict[bytes, bytes] = {}
    for lower, value in believed:
        # Repeated headers are one list (RFC 9110 section 5.3).
        seen[lower] = seen[lower] + b", " + value if lower in seen else value
    chain = seen.get(b"x-forwarded-for")
    kept.append(b"X-Forwarded-For: " + (chain + b", " + peer if chain else peer))
    kept.append(b"X-Forwarded-Proto: " + seen.get(b"x-forwarded-proto", b"http"))
    forwarded_host = seen.get(b"x-forwarded-host", host)
    if forwarded_host:
        kept.append(b"X-Forwarded-Host: " + forwarded_host)
    kept.append(b"X-Real-IP: " + seen.get(b"x-real-ip", peer))
    if b"forwarded" in seen:
        kept.append(b"Forwarded: " + seen[b"forwarded"])


_RUNS_STARTED: Final = RUNS_STARTED_HEADER.lower().encode()


class ResponseHead:
    """A worker's response head read in one pass: the lines to pass on, and what framing,
    the ``at_capacity`` check and affinity need from it."""

    __slots__ = (
        "chunked",
        "codings",
        "content_length",
        "fault",
        "framed",
        "learned",
        "lines",
        "rechunk",
        "runs_started",
        "upgrade",
    )

    def __init__(self, headers: Headers) -> None:
        tokens: frozenset[bytes] = frozenset()
        kept: list[bytes] = []
        self.framed = False
        self.content_length: int | None = None
        self.chunked = False
        self.upgrade = b""
        self.learned: list[str] | None = None  # affinity keys named by Location headers
        self.runs_started = 1  # background runs the answer left going (a batch says how many)
        self.rechunk = False  # decided by for_client: the body goes out re-chunked
        self.codings = b""  # transfer codings other than chunked, passed on (RFC 9112 6.1)
        self.fault: str | None = None  # why the response cannot be passed on (then 502)
        transfer_codings: list[bytes] | None = None
        for name, value in headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                if lower == b"connection":
                    tokens |= connection_tokens(value)
                elif lower == b"transfer-encoding":
                    self.chunked = True
                    if transfer_codings is None:
                        transfer_codings = []
                    transfer_codings += (c.strip().lower() for c in value.split(b","))
                elif lower == b"upgrade":
                    self.upgrade = value
                continue
            if lower == b"content-length":
                self.framed = True
                # llhttp has checked the framing; the length is only read for small bodies.
                self.content_length = int(value) if value.isdigit() and len(value) < 19 else None
            elif lower == b"location" or lower == b"content-location":
                learned = key_from_location(value.decode("latin-1"))
                if learned is not None:
                    self.learned = [*(self.learned or ()), learned]
            elif lower == b"x-request-id":
                continue  # ours is added (the worker echoes the same one)
            elif lower == _RUNS_STARTED:
                if value.isdigit() and len(value) < 7:
                    self.runs_started = int(value)
                continue  # between the worker and the LB
            kept.append(name + b": " + value)
        self.lines = without_named(kept, tokens - _NOT_NAMEABLE) if tokens else kept
        if transfer_codings is not None and transfer_codings != [b"chunked"]:
            self._codings(transfer_codings)

    def _codings(self, codings: list[bytes]) -> None:
        # RFC 9112 section 6.3: chunked must be the final coding, applied once; llhttp would
        # read a body whose chunked is not final up to the connection's close.
        if codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
            self.fault = "chunked is not the final transfer coding"
        else:
            self.codings = b", ".join(codings[:-1])

    def for_client(
        self,
        ex: Exchange,
        status: int,
        reason_phrase: bytes,
        instance_id: str,
        request_id: str,
        closing: bool,
    ) -> bytes:
        """The head for the client. Decides whether the body must be re-chunked
        (:attr:`rechunk`) and whether the client connection stays open (``ex.keep_alive``)."""
        kept = self.lines
        kept.append(b"X-Fleet-Instance: " + instance_id.encode())
        kept.append(b"X-Request-ID: " + request_id.encode())
        no_body = ex.method == "HEAD" or status in (204, 304) or status < 200
        if status == 101:
            kept.append(b"Connection: Upgrade")
            kept.append(b"Upgrade: " + self.upgrade)
        elif not self.framed and not no_body:
            if self.chunked and ex.version == "1.1":
                codings = self.codings
                kept.append(
                    b"Transfer-Encoding: " + (codings + b", chunked" if codings else b"chunked")
                )
                self.rechunk = True
            else:
                ex.keep_alive = False  # the body ends when the connection closes
        if not ex.keep_alive or closing:
            ex.keep_alive = False
            kept.append(b"Connection: close")
        elif ex.version == "1.0":
            kept.append(b"Connection: keep-alive")  # a 1.0 client closes unless told
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase or reason(status))
        return status_line + CRLF.join(kept) + b"\r\n\r\n"
