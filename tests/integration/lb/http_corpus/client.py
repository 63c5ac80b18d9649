"""A client's side of the corpus and the fuzz test: raw sockets and a small response reader."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

_NO_BODY = (204, 304)


@dataclass
class Response:
    status: int
    head: bytes
    body: bytes
    raw: bytes

    def header(self, name: bytes) -> list[bytes]:
        values = []
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                values.append(value.strip())
        return values

    @property
    def closes(self) -> bool:
        return any(v.lower() == b"close" for v in self.header(b"connection"))


async def _chunked(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    body = bytearray()
    raw = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        raw += line
        size = int(line.split(b";", 1)[0], 16)
        data = await reader.readexactly(size + 2)
        raw += data
        body += data[:-2]
        if size == 0:
            raw += data[-2:] if data[-2:] != b"\r\n" else b""
            return bytes(body), bytes(raw)


async def read_response(reader: asyncio.StreamReader, head_request: bool = False) -> Response:
    """The next final response (interim 1xx ones are skipped). Raises IncompleteReadError at
    EOF."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status >= 200 or status == 101:
            break
    response = Response(status, head[:-4], b"", head)
    if head_request or status in _NO_BODY or status == 101:
        return response
    length = response.header(b"content-length")
    if response.header(b"transfer-encoding"):
        response.body, raw = await _chunked(reader)
    elif length:
        response.body = raw = await reader.readexactly(int(length[0]))
    else:
        response.body = raw = await reader.read()  # delimited by the connection closing
    response.raw += raw
    return response


async def is_closed(reader: asyncio.StreamReader, timeout_s: float = 3.0) -> bool:
    """True once the server closes the connection with nothing more sent; False if it sends
    more bytes or is still open after ``timeout_s`` (a bound for a failure, not a wait)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await reader.read(1) == b""
    except ConnectionError:
        return True  # reset: closed with unread bytes of ours
    except TimeoutError:
        return False
