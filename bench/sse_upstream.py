"""An SSE upstream for the streaming scenario: every stream gets one event each interval.

    python bench/sse_upstream.py --port 9001 --interval-s 0.5

`GET /stream` answers `text/event-stream` (chunked) and sends event 0 at once, then one event
every ``interval_s`` until the client goes; each event is `id: N` and `data: N UNIX_TIME`, the
time it was written, so that the client can measure each event's delay end to end. `GET
/health` answers the JSON a graphfleet worker does, so that the LB routes to it.

A raw asyncio protocol on uvloop, and one ticker for all streams (streams are put in 10 ms
slots by the time they opened), so that 5,000 streams cost this process little next to the
proxies under test.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import cast

import uvloop

TICK_S = 0.01
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
HEALTH_BODY = b'{"status":"ok","timestamp":0,"current_load":0,"max_capacity":100000}'
HEALTH = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(HEALTH_BODY)).encode()
    + b"\r\n\r\n"
    + HEALTH_BODY
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def event_chunk(seq: int) -> bytes:
    """One SSE event as one HTTP/1.1 chunk (RFC 9112 section 7.1)."""
    payload = f"id: {seq}\ndata: {seq} {time.time():.6f}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Streams:
    """Open streams by 10 ms slot; the ticker writes to one slot's streams at a time."""

    def __init__(self, interval_s: float) -> None:
        self.slots: list[dict[asyncio.Transport, int]] = [
            {} for _ in range(max(1, round(interval_s / TICK_S)))
        ]

    def slot_of(self, at_s: float) -> int:
        return int(at_s / TICK_S) % len(self.slots)

    def add(self, transport: asyncio.Transport) -> int:
        slot = self.slot_of(time.monotonic())
        transport.write(event_chunk(0))
        self.slots[slot][transport] = 1
        return slot

    async def tick_forever(self) -> None:
        last = int(time.monotonic() / TICK_S)
        while True:
            await asyncio.sleep(TICK_S - time.monotonic() % TICK_S)
            now = int(time.monotonic() / TICK_S)
            # A late tick serves every slot it skipped: no stream misses an event.
            for tick in range(last + 1, now + 1):
                slot = self.slots[tick % len(self.slots)]
                for transport, seq in list(slot.items()):
                    transport.write(event_chunk(seq))
                    slot[transport] = seq + 1
            last = now


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.slot: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.slot is not None:
            return  # a stream's client sends nothing more that matters
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if path.startswith(b"/stream"):
                self.transport.write(STREAM_HEAD)
                self.slot = self.streams.add(self.transport)
                return
            self.transport.write(HEALTH if path.startswith(b"/health") else NOT_FOUND)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.slot is not None and self.transport is not None:
            self.streams.slots[self.slot].pop(self.transport, None)


async def serve(host: str, port: int, interval_s: float) -> None:
    streams = Streams(interval_s)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(streams), host, port, backlog=8192, reuse_address=True
    )
    async with server:
        await streams.tick_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval-s", type=float, default=0.5)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.interval_s))


if __name__ == "__main__":
    main()
