"""A webhook receiver on loopback with scripted answers, and what webhook tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.integration.durable.conftest import pg_url, spawn_worker
from tests.integration.worker.conftest import make_worker
from tests.support import free_port

__all__ = ["make_worker", "pg_url", "spawn_worker"]

# Fast retries for tests: the behaviour is the same, only the delays are short.
FAST = {
    "webhook_poll_s": 0.1,
    "webhook_backoff_s": 0.05,
    "webhook_backoff_max_s": 0.2,
    "webhook_timeout_s": 2.0,
    "webhook_lease_s": 3.0,
}


@dataclass(frozen=True)
class Received:
    path: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Answers each request with the next scripted ``(status, headers)``, then 204; keeps
    the requests it answered 2xx in ``received`` and every request in ``seen``."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    seen: list[Received] = field(default_factory=list)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()

    async def handle(request: web.Request) -> web.Response:
        got = Received(request.path, await request.read(), dict(request.headers))
        recv.seen.append(got)
        status, headers = recv.script.pop(0) if recv.script else (204, {})
        if 200 <= status < 300:
            recv.received.append(got)
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    # As the worker fixture's: a teardown waits at most a second for a request in progress.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recv.url = f"http://127.0.0.1:{port}"
    yield recv
    await runner.cleanup()
