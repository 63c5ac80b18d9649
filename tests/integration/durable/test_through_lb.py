"""The real LB in front of two ``python -m worker`` processes sharing Postgres and Redis:
the worker executing a run is killed (-9); the SDK, through the LB, still joins the run,
which the other worker resumes from its last checkpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from langgraph_sdk import get_client

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.integration.durable.conftest import ProcessFactory, WorkerProcess, read_steps
from tests.support import eventually

pytestmark = pytest.mark.integration
STEPS = ["first", "second", "third"]


@pytest.fixture
async def balancer_for(tmp_path: Path) -> AsyncIterator[list[LoadBalancer]]:
    started: list[LoadBalancer] = []
    yield started
    for balancer in started:
        await balancer.stop()


async def _running(worker: WorkerProcess) -> int:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/health") as response:
            return int((await response.json())["running"])
    except aiohttp.ClientError:
        return 0


@pytest.mark.timeout(60)
async def test_sdk_through_the_lb_joins_a_run_whose_worker_was_killed(
    spawn_worker: ProcessFactory,
    pg_url: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    balancer_for: list[LoadBalancer],
) -> None:
    workers = await asyncio.gather(
        *(
            spawn_worker(pg_url, f"worker-{name}", redis_url=redis_url, redis_prefix=redis_prefix)
            for name in ("a", "b")
        )
    )
    balancer = LoadBalancer(
        LBSettings(
            port=0,
            admin_port=0,
            instances=",".join(w.url for w in workers),
            data_dir=tmp_path / "lb",
            health_interval_s=0.1,
            access_log=False,
        )
    )
    await balancer.start()
    balancer_for.append(balancer)
    assert balancer.components is not None
    registry = balancer.components.registry
    await eventually(lambda: len(registry.snapshot.routable) == 2, timeout_s=10)
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    sdk = get_client(url=f"http://127.0.0.1:{balancer.proxy_port}", api_key=None)
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(
            thread_id, "counting", input={"log": str(log), "gate": str(gate)}
        )
        await eventually(lambda: read_steps(log) == ["first"], timeout_s=10)

        async def checkpointed() -> bool:
            return bool((await sdk.threads.get_state(thread_id))["next"] == ["second"])

        await eventually(checkpointed, timeout_s=10)
        running = [await _running(w) for w in workers]
        holder = workers[running.index(1)]
        holder.kill()
        await holder.proc.wait()
        gate.touch()
        # The LB sends the join elsewhere; that worker claims the run and finishes it.
        values = await sdk.runs.join(thread_id, run["run_id"])
        assert isinstance(values, dict)
        assert values["steps"] == STEPS
        assert read_steps(log) == STEPS
        assert (await sdk.runs.get(thread_id, run["run_id"]))["status"] == "success"
        assert (await sdk.threads.get_state(thread_id))["values"]["steps"] == STEPS
    finally:
        await sdk.aclose()


@pytest.mark.timeout(60)
async def test_a_stream_on_the_other_worker_carries_on_when_the_runs_worker_is_killed(
    spawn_worker: ProcessFactory, pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """B streams A's run through the relay; A dies mid-run; B takes the run over (at its
    lease's end) and relays it itself: the stream goes on to the run's end."""
    common = {"redis_url": redis_url, "redis_prefix": redis_prefix, "keepalive_interval_s": 0.3}
    a = await spawn_worker(pg_url, "worker-a", **common)
    b = await spawn_worker(pg_url, "worker-b", **common)
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    sdk_a = get_client(url=a.url, api_key=None)
    sdk_b = get_client(url=b.url, api_key=None)
    try:
        thread_id = (await sdk_a.threads.create())["thread_id"]
        run = await sdk_a.runs.create(
            thread_id, "counting", input={"log": str(log), "gate": str(gate)}
        )
        await eventually(lambda: read_steps(log) == ["first"], timeout_s=10)
        events: list[tuple[str, object]] = []

        async def stream() -> None:
            async for part in sdk_b.runs.join_stream(thread_id, run["run_id"]):
                events.append((part.event, part.data))

        streaming = asyncio.create_task(stream())
        await eventually(lambda: any(name == "values" for name, _ in events), timeout_s=10)
        a.kill()
        await a.proc.wait()
        gate.touch()
        await asyncio.wait_for(streaming, timeout=30)
        last = [data for name, data in events if name == "values"][-1]
        assert isinstance(last, dict)
        assert last["steps"] == STEPS
        assert (await sdk_b.runs.get(thread_id, run["run_id"]))["status"] == "success"
    finally:
        await sdk_a.aclose()
        await sdk_b.aclose()
