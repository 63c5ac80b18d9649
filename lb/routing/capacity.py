"""Waiting for capacity: a bounded FIFO of requests that found every instance full.

A waiter is woken when an instance finishes a request or when the fleet changes; it then tries
to route again. While anyone waits, newcomers queue behind them, so a burst cannot starve the
requests that came first.
"""

from __future__ import annotations

import asyncio
from collections import deque


class QueueFull(Exception):
    """More requests are waiting than the queue holds."""


class CapacityQueue:
    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait(self, timeout_s: float) -> None:
        """Wait until woken or ``timeout_s`` passes (then TimeoutError)."""
        if len(self._waiters) >= self._max_size:
            raise QueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Woken and then cancelled or timed out in the same instant: hand the freed
                # slot to the next waiter rather than lose the wake-up.
                self.wake_one()
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            raise

    def wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wake_all(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
