"""The outbox survives its workers: a delivery whose worker is killed with -9 mid-attempt is
sent by another worker process, and a worker restarted with deliveries pending sends them,
on a shared SQLite file and on Postgres."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.integration.durable.conftest import ProcessFactory, WorkerProcess
from tests.integration.webhooks.conftest import Received
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration

FAST_ENV = {
    "webhook_allow_networks": "loopback",
    "webhook_poll_s": "0.1",
    "webhook_backoff_s": "0.2",
    "webhook_backoff_max_s": "0.5",
    "webhook_timeout_s": "2",
    "webhook_lease_s": "3",
}


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.sqlite"
    url: str = request.getfixturevalue("pg_url")
    return url


async def _serve(
    port: int, received: list[Received], hang_first: asyncio.Event | None
) -> web.AppRunner:
    """A receiver on ``port``; with ``hang_first``, the first request waits for that event."""

    async def handle(request: web.Request) -> web.StreamResponse:
        got = Received(request.path, await request.read(), dict(request.headers))
        if hang_first is not None and not received:
            received.append(got)
            await hang_first.wait()
            return web.Response(status=204)
        received.append(got)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def release() -> AsyncIterator[asyncio.Event]:
    event = asyncio.Event()
    yield event
    event.set()


async def _register(http: aiohttp.ClientSession, worker: WorkerProcess, url: str) -> str:
    body = {"url": url, "events": ["graph.completed"]}
    async with http.post(f"{worker.url}/webhooks", json=body) as response:
        assert response.status == 201, await response.text()
        hook_id: str = (await response.json())["webhook_id"]
        return hook_id


async def _run(http: aiohttp.ClientSession, worker: WorkerProcess, log: Path) -> None:
    body = {"assistant_id": "counting", "input": {"log": str(log)}}
    async with http.post(f"{worker.url}/runs/wait", json=body) as response:
        assert response.status == 200, await response.text()


# Two worker processes start one after the other (B must not exist before A holds the
# delivery, or B might claim it first): on a loaded machine that alone can take a minute.
@pytest.mark.timeout(120)
async def test_kill_9_mid_delivery_and_the_other_worker_delivers(
    spawn_worker: ProcessFactory, tmp_path: Path, release: asyncio.Event
) -> None:
    shared_store = f"sqlite:///{tmp_path}/shared.sqlite"
    received: list[Received] = []
    port = free_port()
    runner = await _serve(port, received, hang_first=release)
    try:
        a = await spawn_worker(shared_store, "worker-a", **FAST_ENV)
        async with aiohttp.ClientSession() as http:
            hook_id = await _register(http, a, f"http://127.0.0.1:{port}/hook")
            await _run(http, a, tmp_path / "steps.log")
            # A is mid-attempt (the receiver holds its request): kill it there.
            await eventually(lambda: len(received) == 1)
            a.kill()
            await a.proc.wait()
            b = await spawn_worker(shared_store, "worker-b", **FAST_ENV)
            await eventually(lambda: len(received) == 2, timeout_s=20)
            async with http.get(f"{b.url}/webhooks/{hook_id}/deliveries") as response:
                attempts = await response.json()
    finally:
        release.set()
        await runner.cleanup()
    first, again = received
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    # The killed attempt never finished: the record is B's, the second claim.
    assert [(x["attempt"], x["status"]) for x in attempts] == [(2, "delivered")]


@pytest.mark.timeout(120)  # a worker process started twice, one after the other
async def test_a_worker_restarted_with_pending_deliveries_sends_them(
    shared_store: str, spawn_worker: ProcessFactory, tmp_path: Path
) -> None:
    received: list[Received] = []
    port = free_port()  # nothing listens yet: every attempt fails to connect
    env = FAST_ENV | {"webhook_backoff_s": "1", "webhook_backoff_max_s": "1"}
    a = await spawn_worker(shared_store, "worker-a", **env)
    async with aiohttp.ClientSession() as http:
        hook_id = await _register(http, a, f"http://127.0.0.1:{port}/hook")
        await _run(http, a, tmp_path / "steps.log")

        async def failed_once() -> bool:
            async with http.get(f"{a.url}/webhooks/{hook_id}/deliveries") as response:
                return len(await response.json()) >= 1

        await eventually(failed_once)
        a.proc.send_signal(signal.SIGTERM)
        assert await a.proc.wait() == 0
        runner = await _serve(port, received, hang_first=None)
        try:
            again = await spawn_worker(shared_store, "worker-a", **env)
            await eventually(lambda: bool(received), timeout_s=20)
            async with http.get(f"{again.url}/webhooks/{hook_id}/deliveries") as response:
                attempts = await response.json()
        finally:
            await runner.cleanup()
    assert received[0].json()["event_type"] == "graph.completed"
    assert attempts[0]["status"] == "delivered"
    assert attempts[-1]["status"] == "pending"
    assert "cannot connect" in attempts[-1]["error"]
