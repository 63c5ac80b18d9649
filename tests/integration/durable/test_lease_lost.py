"""Leases: a worker that stalled past its lease and finds its run taken stops it, writing
nothing; a run out of attempts fails with an error that says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually, free_port
from worker.keys import STORE

pytestmark = pytest.mark.integration


async def test_a_run_claimed_elsewhere_is_stopped_here_without_a_word(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    # A's sweeper is slow, so the stand-in worker "ghost" claims the run first.
    worker = await make_worker(
        store=f"sqlite:///{tmp_path}/w.sqlite", run_lease_s=0.3, sweep_interval_s=60
    )
    store = worker.app[STORE]
    sdk = worker.client()
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(thread_id, "pipeline", input={"delay_s": 10})
        await eventually(lambda: worker.manager.running == 1)

        # As if A had stalled past its lease and another worker had claimed the run.
        # (A's heartbeat may renew the lease between the two calls: then try again.)
        async def taken() -> bool:
            await store.release_runs(worker.settings.worker_id)
            claim = await store.claim_expired_runs("ghost", ["pipeline"], limit=1, max_attempts=3)
            return [r.run_id for r in claim.claimed] == [run["run_id"]]

        await eventually(taken)
        # A's next heartbeat finds the lease gone and stops its copy of the run.
        await eventually(lambda: worker.manager.load == 0)
        record = await store.get_run(run["run_id"])
        assert record is not None
        assert (record.status, record.worker_id, record.attempt) == ("running", "ghost", 2)
    finally:
        await sdk.aclose()


async def test_a_run_out_of_attempts_fails_saying_so_and_tells_the_hooks(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    received: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store_url = f"sqlite:///{tmp_path}/w.sqlite"
    first = await make_worker(store=store_url, sweep_interval_s=60, instance_id="first")
    sdk = first.client()
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(thread_id, "pipeline", input={"delay_s": 10})
        await eventually(lambda: first.manager.running == 1)
        await first.manager.release_all()  # as at a shutdown past its timeout
        # A worker allowing one execution finds the run spent: it fails it, and says why.
        second = await make_worker(
            store=store_url,
            run_max_attempts=1,
            sweep_interval_s=0.05,
            webhook_urls=[f"http://127.0.0.1:{port}/hook"],
        )
        # Delivered from the outbox by either worker: allow a busy machine its time.
        await eventually(lambda: bool(received), timeout_s=30)
        record = await second.app[STORE].get_run(run["run_id"])
        assert record is not None
        assert record.status == "error"
        assert record.error is not None
        assert record.error["error"] == "RunAbandoned"
        assert "after 1 attempts" in record.error["message"]
        assert received[0]["event_type"] == "graph.failed"
        assert received[0]["data"]["run_id"] == run["run_id"]
        assert (await sdk.threads.get(thread_id))["status"] == "error"
    finally:
        await sdk.aclose()
        await runner.cleanup()
