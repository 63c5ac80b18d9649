"""Webhooks: a run's own URL and registered graph.* hooks, signed and retried."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from langgraph_sdk.errors import UnprocessableEntityError

from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration


@dataclass
class Receiver:
    url: str = ""
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    failures_left: int = 0

    def bodies(self, path: str) -> list[bytes]:
        return [body for p, body, _ in self.received if p == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()

    async def handle(request: web.Request) -> web.Response:
        if recv.failures_left > 0:
            recv.failures_left -= 1
            return web.Response(status=500)
        recv.received.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recv.url = f"http://127.0.0.1:{port}"
    yield recv
    await runner.cleanup()


def _json(body: bytes) -> Any:
    import orjson

    return orjson.loads(body)


async def test_run_webhook_is_signed_and_retried(
    make_worker: WorkerFactory, receiver: Receiver
) -> None:
    receiver.failures_left = 1
    worker = await make_worker(
        webhook_secret="k",
        webhook_backoff_s=0.01,
        webhook_urls=[f"{receiver.url}/hooks"],
    )
    sdk = worker.client()
    try:
        thread = await sdk.threads.create()
        run = await sdk.runs.create(
            thread["thread_id"], "pipeline", input={}, webhook=f"{receiver.url}/run"
        )
        await eventually(lambda: bool(receiver.bodies("/run")))
        await eventually(lambda: len(receiver.bodies("/hooks")) == 2)
    finally:
        await sdk.aclose()
    _, body, headers = next(r for r in receiver.received if r[0] == "/run")
    doc = _json(body)
    assert doc["run_id"] == run["run_id"]
    assert doc["status"] == "success"
    assert doc["values"]["steps"] == ["extract", "transform", "load"]
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert headers["X-Graphfleet-Signature"] == f"sha256={expected}"
    events = [_json(b)["event"] for b in receiver.bodies("/hooks")]
    # Deliveries are independent (one was retried), so only the set is certain.
    assert sorted(events) == ["graph.completed", "graph.started"]


async def test_loopback_webhook_refused_by_default(make_worker: WorkerFactory) -> None:
    worker = await make_worker(webhook_allow_loopback=False)
    sdk = worker.client()
    try:
        thread = await sdk.threads.create()
        with pytest.raises(UnprocessableEntityError, match="loopback"):
            await sdk.runs.create(
                thread["thread_id"], "pipeline", input={}, webhook="http://127.0.0.1:1/x"
            )
        assert await sdk.runs.list(thread["thread_id"]) == []
    finally:
        await sdk.aclose()
