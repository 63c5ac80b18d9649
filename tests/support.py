"""Helpers every test folder uses: free loopback ports and polling with a deadline."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS may hand it out again later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0, interval_s: float = 0.02
) -> None:
    """Poll ``check`` until it is true, failing after ``timeout_s``: tests wait for a
    condition, never for a fixed time."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)
