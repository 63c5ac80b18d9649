"""A byte-logging worker and a strict HTTP/1.1 request parser of its own, for framing tests.

:class:`ByteWorker` is a real asyncio server on loopback. It answers the LB's health checks,
records every byte the LB sends on every other connection, parses those bytes with
:func:`parse_requests` — a small parser independent of llhttp that accepts only the canonical
framing a proxy must emit (RFC 9112 §2 to §7: one ``Content-Length`` of digits *or*
``Transfer-Encoding: chunked``, never both; no obs-fold, no bare CR or LF; ``HTTP/1.1`` only)
— and answers each request with scripted bytes. Tests then compare what the worker received
with what the clients were answered.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE: Final = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.1")
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_HEX: Final = re.compile(rb"[0-9a-fA-F]{1,16}")
_HEALTH: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
)


class Malformed(Exception):
    """The bytes are not a canonical HTTP/1.1 request stream."""


@dataclass
class Request:
    """One request as the worker received it."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunked: bool
    raw: bytes  # the exact bytes of this request on the wire
    connection: int = -1  # which of the worker's logged connections carried it
    position: int = 0  # its place on that connection (0: the first request)

    def header(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]

    @property
    def upgrade(self) -> bool:
        return any(b"upgrade" in v.lower() for v in self.header(b"connection"))


def _parse_head(head: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    if b"\r" in head.replace(b"\r\n", b"") or b"\n" in head.replace(b"\r\n", b""):
        raise Malformed("bare CR or LF in the head")  # RFC 9112 §2.2
    line, *lines = head.split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise Malformed(f"bad request line {line!r}")
    headers = []
    for raw in lines:
        name, sep, value = raw.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise Malformed(f"bad field line {raw!r}")  # also obs-fold, RFC 9112 §5.2
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise Malformed(f"bad field value {raw!r}")
        headers.append((name, value))
    return match[1], match[2], headers


def _body_framing(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    lengths = [v for n, v in headers if n.lower() == b"content-length"]
    codings = [v for n, v in headers if n.lower() == b"transfer-encoding"]
    if lengths and codings:
        raise Malformed("Content-Length and Transfer-Encoding together")  # RFC 9112 §6.3
    if len(lengths) > 1 or len(codings) > 1:
        raise Malformed("a framing header sent twice")
    if codings:
        if codings[0] != b"chunked":
            raise Malformed(f"Transfer-Encoding {codings[0]!r}")
        return None, True
    if lengths:
        if not lengths[0].isdigit():
            raise Malformed(f"Content-Length {lengths[0]!r}")
        return int(lengths[0]), False
    return 0, False


def _chunked_body(data: bytes, start: int) -> tuple[bytes, int] | None:
    """The decoded body and the offset after it, or None while incomplete (RFC 9112 §7.1)."""
    body = bytearray()
    at = start
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        size_hex = data[at:end]
        if not _HEX.fullmatch(size_hex):
            raise Malformed(f"chunk size {size_hex[:40]!r}")
        size = int(size_hex, 16)
        if len(data) < end + 2 + size + 2:
            return None
        if data[end + 2 + size : end + 4 + size] != b"\r\n":
            raise Malformed("chunk data not followed by CRLF")
        body += data[end + 2 : end + 2 + size]
        at = end + 4 + size
        if size == 0:
            return bytes(body), at  # no trailers: the proxy sends none


def parse_requests(data: bytes) -> tuple[list[Request], bytes]:
    """Every whole request in ``data`` and the incomplete rest; raises :class:`Malformed`."""
    requests = []
    at = 0
    while at < len(data):
        end = data.find(b"\r\n\r\n", at)
        if end < 0:
            break
        method, target, headers = _parse_head(data[at:end])
        length, chunked = _body_framing(headers)
        body_at = end + 4
        if chunked:
            parsed = _chunked_body(data, body_at)
            if parsed is None:
                break
            body, after = parsed
        else:
            assert length is not None
            if len(data) < body_at + length:
                break
            body, after = data[body_at : body_at + length], body_at + length
        requests.append(Request(method, target, headers, body, chunked, data[at:after]))
        at = after
        if any(b"upgrade" in v.lower() for n, v in headers if n.lower() == b"connection"):
            break  # what follows may be another protocol
    return requests, data[at:]


@dataclass
class Reply:
    """What the worker does with a request: write ``data`` (raw bytes, any framing, even none),
    then close the connection if ``close``; ``tunnel`` echoes every later byte back."""

    data: bytes
    close: bool = False
    tunnel: bool = False


def ok(request: Request) -> Reply:
    """The default answer: 200 with the request's target and body length as the body."""
    body = b"%s %d" % (request.target, len(request.body))
    return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


Script = Callable[[Request], Reply]


@dataclass
class ByteWorker:
    """A worker that logs bytes. ``connections`` holds what each proxied connection carried;
    ``requests`` every request parsed from them, in arrival order; ``errors`` the parse errors
    (a proxy that emits anything :func:`parse_requests` refuses has a framing bug)."""

    script: Script = ok
    connections: list[bytearray] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ByteWorker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def reset(self) -> None:
        self.connections.clear()
        self.requests.clear()
        self.errors.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log = bytearray()
        pending = b""
        logged = False
        served = 0
        index = -1
        try:
            while data := await reader.read(65536):
                if b"GET /health HTTP/1.1\r\n" in data and not logged:
                    body = b'{"status": "ok", "current_load": 0}'
                    writer.write(_HEALTH % (len(body), body))
                    continue
                if not logged:
                    self.connections.append(log)
                    index = len(self.connections) - 1
                    logged = True
                log += data
                pending += data
                try:
                    requests, pending = parse_requests(pending)
                except Malformed as exc:
                    self.errors.append(str(exc))
                    return
                for request in requests:
                    request.connection = index
                    request.position = served
                    served += 1
                    self.requests.append(request)
                    reply = self.script(request)
                    writer.write(reply.data)
                    if reply.close:
                        return
                    if reply.tunnel:
                        await self._echo(pending, reader, writer, log)
                        return
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _echo(
        first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray
    ) -> None:
        if first:
            writer.write(first)
        while data := await reader.read(65536):
            log += data
            writer.write(data)
