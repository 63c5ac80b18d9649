"""What both ends of a proxied exchange share: the transport, write back-pressure, raw tunnels.

asyncio calls ``pause_writing`` when a transport's write buffer passes its high-water mark and
``resume_writing`` when it drains; :meth:`Peer.wait_writable` turns that into something a
coroutine can wait on, the way asyncio's own streams do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast


class Peer(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # After an upgrade (101), every byte received goes here untouched.
        self.tunnel: Callable[[bytes], None] | None = None
        # Called with True when the far end stops reading our writes, False when it resumes:
        # whoever feeds this peer pauses and resumes its own source with it.
        self.on_backpressure: Callable[[bool], None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()  # nobody may wait for a buffer that will never drain
        # Both refer to the far end's peer, which refers back here: dropped, a closed pair is
        # freed by reference counting (lb.gc_policy). No byte arrives after this.
        self.tunnel = None
        self.on_backpressure = None

    @property
    def writing_paused(self) -> bool:
        """The far end has stopped reading: writes only fill our buffer."""
        return self._writable is not None

    @property
    def reading_paused(self) -> bool:
        """We have stopped reading from the far end (back-pressure)."""
        return self._reading_paused

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()
        if self.on_backpressure is not None:
            self.on_backpressure(True)

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None
        if self.on_backpressure is not None:
            self.on_backpressure(False)

    def feed_backpressure_to(self, source: Peer) -> None:
        """Pause ``source``'s reading whenever this peer cannot write, starting now if it
        already cannot (the state change may have happened before anyone listened)."""
        self.on_backpressure = lambda paused: (
            source.pause_reading() if paused else source.resume_reading()
        )
        if self.writing_paused:
            source.pause_reading()

    async def wait_writable(self) -> None:
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
