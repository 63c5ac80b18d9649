"""A keep-alive connection pool per instance, created on first use and closed when it leaves."""

from __future__ import annotations

import asyncio
import ssl

from yarl import URL

from lb.fleet.registry import Instance
from lb.http.upstream import UpstreamPool


class Upstreams:
    """A connection pool per instance URL. Pools of instances that leave are retired: their
    idle connections close at once, busy ones when their exchange ends."""

    def __init__(self, connect_timeout_s: float) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._pools: dict[str, UpstreamPool] = {}

    def pool(self, instance: Instance) -> UpstreamPool:
        pool = self._pools.get(instance.url)
        if pool is None:
            url = URL(instance.url)
            context = ssl.create_default_context() if url.scheme == "https" else None
            pool = UpstreamPool(
                url.host or "127.0.0.1",
                url.port or (443 if context else 80),
                self._connect_timeout_s,
                asyncio.get_running_loop(),
                ssl_context=context,
            )
            self._pools[instance.url] = pool
        return pool

    @property
    def pools(self) -> tuple[UpstreamPool, ...]:
        """The live pools (a read-only view, for metrics and tests)."""
        return tuple(self._pools.values())

    def retain(self, urls: set[str]) -> None:
        """Drop the pools of instances that left; their busy connections close when done."""
        for url in [u for u in self._pools if u not in urls]:
            pool = self._pools.pop(url)
            pool.retired = True
            pool.close_idle(float("inf"))

    def close_idle(self, older_than: float) -> None:
        for pool in self._pools.values():
            pool.close_idle(older_than)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
