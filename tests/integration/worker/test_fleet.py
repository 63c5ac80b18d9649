"""Joining the fleet: register, heartbeat, drain and deregister against a fake LB admin API."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from langgraph_sdk.errors import ConflictError

from tests.integration.worker.conftest import FakeLbAdmin, WorkerFactory
from tests.support import eventually, free_port
from worker.app import drain

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


async def test_registers_and_heartbeats(make_worker: WorkerFactory, fake_lb: FakeLbAdmin) -> None:
    worker = await make_worker(
        lb_admin_url=fake_lb.url,
        lb_admin_token="s3cret",
        registration_interval_s=0.05,
        max_concurrency=4,
    )
    await eventually(lambda: len(fake_lb.paths("POST")) >= 3)
    method, path, body, auth = fake_lb.calls[0]
    assert (method, path) == ("POST", "/admin/instances")
    assert body == {"id": worker.settings.worker_id, "url": worker.url, "max_capacity": 4}
    assert auth == "Bearer s3cret"


async def test_drain_finishes_runs_then_deregisters(
    make_worker: WorkerFactory, fake_lb: FakeLbAdmin
) -> None:
    worker = await make_worker(lb_admin_url=fake_lb.url, registration_interval_s=0.05)
    await eventually(lambda: bool(fake_lb.paths("POST")))
    sdk = worker.client()
    async with aiohttp.ClientSession() as http:
        try:
            thread = await sdk.threads.create()
            run = await sdk.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 0.1})
            draining = asyncio.create_task(drain(worker.app))
            await eventually(lambda: worker.manager.draining)
            async with http.get(f"{worker.url}/health") as response:
                assert response.status == 503
                assert (await response.json())["status"] == "draining"
            async with http.post(
                f"{worker.url}/threads/{thread['thread_id']}/runs",
                json={"assistant_id": "pipeline", "input": {}},
            ) as response:
                assert response.status == 503
                assert (await response.json())["error"]["code"] == "at_capacity"
            assert await draining is True  # the running run finished within the timeout
            finished = await sdk.runs.get(thread["thread_id"], run["run_id"])
            assert finished["status"] == "success"
        finally:
            await sdk.aclose()
    heartbeats = len(fake_lb.paths("POST"))
    assert f"/admin/instances/{worker.settings.worker_id}/drain" in fake_lb.paths("POST")
    await worker.runner.cleanup()
    assert fake_lb.paths("DELETE") == [f"/admin/instances/{worker.settings.worker_id}"]
    # No heartbeat re-registered the worker once it was draining.
    assert len(fake_lb.paths("POST")) == heartbeats


async def test_unreachable_lb_is_not_fatal(make_worker: WorkerFactory) -> None:
    worker = await make_worker(
        lb_admin_url=f"http://127.0.0.1:{free_port()}", registration_interval_s=0.05
    )
    sdk = worker.client()
    try:
        assert (await sdk.runs.wait(None, "pipeline", input={}))["steps"][-1] == "load"
    finally:
        await sdk.aclose()


async def test_sigterm_drains_and_deregisters(tmp_path: Path, fake_lb: FakeLbAdmin) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WORKER_PORT": str(port),
        "WORKER_STORE": f"sqlite:///{tmp_path}/w.sqlite",
        "WORKER_LB_ADMIN_URL": fake_lb.url,
        "WORKER_LB_ADMIN_TOKEN": "t",
        "WORKER_REGISTRATION_INTERVAL_S": "0.1",
        "WORKER_LOG_LEVEL": "warning",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(lambda: bool(fake_lb.paths("POST")), timeout_s=20)
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert fake_lb.paths("DELETE") == [f"/admin/instances/worker-127-0-0-1-{port}"]


async def test_drain_timeout_releases_what_is_left_to_another_worker(
    make_worker: WorkerFactory,
) -> None:
    worker = await make_worker(shutdown_timeout_s=0.1)
    sdk = worker.client()
    try:
        thread = await sdk.threads.create()
        run = await sdk.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 0.3})
        await eventually(lambda: worker.manager.running == 1)
        assert await drain(worker.app) is False
    finally:
        await sdk.aclose()
    await worker.runner.cleanup()
    # Released, not failed: a worker on the same file claims the run and finishes it.
    again = await make_worker(store=worker.settings.store, sweep_interval_s=0.05)
    sdk = again.client()
    try:
        done = await sdk.runs.join(thread["thread_id"], run["run_id"])
        assert done["steps"] == ["extract", "transform", "load"]
        assert (await sdk.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"
    finally:
        await sdk.aclose()


async def test_two_workers_share_a_store_and_refuse_threads_held_elsewhere(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/shared.sqlite"
    a, b = await make_worker(store=store), await make_worker(store=store)
    sdk_a, sdk_b = a.client(), b.client()
    try:
        thread = await sdk_a.threads.create()
        run = await sdk_a.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 10})
        # B sees the thread and the run, but the thread is A's to run on.
        assert (await sdk_b.runs.get(thread["thread_id"], run["run_id"]))["run_id"] == run["run_id"]
        with pytest.raises(ConflictError, match="active run"):
            await sdk_b.runs.create(thread["thread_id"], "pipeline", input={})
        # A cancel through B reaches A (no Redis: B calls A at its recorded URL).
        await sdk_b.runs.cancel(thread["thread_id"], run["run_id"])
        await eventually(lambda: a.manager.load == 0, timeout_s=5)
        # Once A's run has ended, B may run on the thread.
        result = await sdk_b.runs.wait(thread["thread_id"], "pipeline", input={"delay_s": 0})
        assert result["steps"][-1] == "load"
    finally:
        await sdk_a.aclose()
        await sdk_b.aclose()
