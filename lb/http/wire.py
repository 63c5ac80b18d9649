"""HTTP/1.1 wire helpers shared by the client and worker sides of the proxy.

Headers travel as ``(name, value)`` byte pairs exactly as llhttp delivered them; names are
compared lower-cased. Heads are built as one ``bytes`` so each is a single transport write.
"""

from __future__ import annotations

import http
from typing import Final

import orjson

Headers = list[tuple[bytes, bytes]]

# RFC 9110 section 7.6.1, plus the de-facto Proxy-Connection and Keep-Alive.
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
CRLF: Final = b"\r\n"
_REASONS: Final = {s.value: s.phrase.encode() for s in http.HTTPStatus}


def reason(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """Lower-cased tokens of a Connection header: names of more hop-by-hop headers."""
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


def without_named(lines: list[bytes], names: frozenset[bytes]) -> list[bytes]:
    """``Name: value`` lines whose name is not in ``names`` (RFC 9110 section 7.6.1)."""
    return [line for line in lines if line.split(b":", 1)[0].lower() not in names]


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str,
    keep_alive: bool,
    retry_after_s: int | None = None,
    head_only: bool = False,
) -> bytes:
    """A whole LB-made response: ``{"error": {"code", "message"}}`` with the given status."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    lines = [
        b"HTTP/1.1 %d %s" % (status, reason(status)),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        b"X-Request-ID: " + request_id.encode(),
    ]
    if retry_after_s is not None:
        lines.append(b"Retry-After: %d" % retry_after_s)
    if not keep_alive:
        lines.append(b"Connection: close")
    head = CRLF.join(lines) + CRLF + CRLF
    return head if head_only else head + body


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK: Final = b"0\r\n\r\n"
