"""Two ``python -m worker`` processes sharing a store, no Redis: a cancel sent to one worker
stops runs the other executes, at once (by status, by id, by deleting their assistant).

The workers hold leases of 30 s, renewed every 10 s: a run that stops within seconds was
stopped by the command one worker sent the other, not by its holder reading the cancel in
its record at a renewal (the fallback, tested in ``tests/integration/worker``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.integration.durable.conftest import COUNTING_GRAPHS, ProcessFactory, WorkerProcess
from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration

STOP_WITHIN_S = 5.0  # well under the 10 s between two lease renewals


@pytest.fixture
async def pair(
    store_url: str, spawn_worker: ProcessFactory
) -> AsyncIterator[tuple[LangGraphClient, WorkerProcess, LangGraphClient, WorkerProcess]]:
    """``(sdk_a, a, sdk_b, b)``: two workers on one store, each with the official SDK."""
    a, b = await asyncio.gather(
        spawn_worker(store_url, "worker-a", run_lease_s=30),
        spawn_worker(store_url, "worker-b", run_lease_s=30),
    )
    sdk_a, sdk_b = get_client(url=a.url, api_key=None), get_client(url=b.url, api_key=None)
    yield sdk_a, a, sdk_b, b
    await sdk_a.aclose()
    await sdk_b.aclose()


async def _running(worker: WorkerProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{worker.url}/health") as response:
        running: int = (await response.json())["running"]
        return running


def _long(tmp_path: Path) -> dict[str, object]:
    """Input of a ``counting`` run whose first step sleeps a minute."""
    return {"log": str(tmp_path / "steps.log"), "delay_s": 60}


@pytest.mark.timeout(90)
async def test_cancel_by_status_and_by_id_through_a_reaches_runs_on_b(
    pair: tuple[LangGraphClient, WorkerProcess, LangGraphClient, WorkerProcess], tmp_path: Path
) -> None:
    sdk_a, a, sdk_b, b = pair
    threads = [(await sdk_b.threads.create())["thread_id"] for _ in range(2)]
    runs = [(await sdk_b.runs.create(t, "counting", input=_long(tmp_path))) for t in threads]

    async def b_runs(count: int) -> bool:
        return await _running(b) == count

    await eventually(lambda: b_runs(2), timeout_s=10)
    await sdk_a.runs.cancel_many(status="running")
    # Marked before the answer: a GET right after agrees, on either worker.
    for thread_id, run in zip(threads, runs, strict=True):
        assert (await sdk_a.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    await eventually(lambda: b_runs(0), timeout_s=STOP_WITHIN_S)
    assert await _running(a) == 0

    # One run by its id, through the worker that does not execute it.
    third = await sdk_b.runs.create(threads[0], "counting", input=_long(tmp_path))
    await eventually(lambda: b_runs(1), timeout_s=10)
    await sdk_a.runs.cancel(threads[0], third["run_id"])
    assert (await sdk_a.runs.get(threads[0], third["run_id"]))["status"] == "interrupted"
    await eventually(lambda: b_runs(0), timeout_s=STOP_WITHIN_S)

    # B's own record of how they ended agrees.
    ended = [(t, r["run_id"]) for t, r in zip(threads, runs, strict=True)]
    for thread_id, run_id in [*ended, (threads[0], third["run_id"])]:
        await sdk_b.runs.join(thread_id, run_id)
        assert (await sdk_b.runs.get(thread_id, run_id))["status"] == "interrupted"
    # Nothing else was touched: a new run on B completes.
    fresh = {"log": str(tmp_path / "fresh.log"), "delay_s": 0}
    done = await sdk_b.runs.wait(threads[1], "counting", input=fresh)
    assert isinstance(done, dict)
    assert done["steps"][-3:] == ["first", "second", "third"]


@pytest.mark.timeout(90)
async def test_deleting_an_assistant_through_a_interrupts_its_run_on_b(
    pair: tuple[LangGraphClient, WorkerProcess, LangGraphClient, WorkerProcess], tmp_path: Path
) -> None:
    sdk_a, _, sdk_b, b = pair
    assistant_id = (await sdk_a.assistants.create("counting"))["assistant_id"]
    thread_id = (await sdk_b.threads.create())["thread_id"]
    run = await sdk_b.runs.create(thread_id, assistant_id, input=_long(tmp_path))

    async def b_runs(count: int) -> bool:
        return await _running(b) == count

    await eventually(lambda: b_runs(1), timeout_s=10)
    await sdk_a.assistants.delete(assistant_id)
    assert (await sdk_a.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    await eventually(lambda: b_runs(0), timeout_s=STOP_WITHIN_S)
    await sdk_b.runs.join(thread_id, run["run_id"])
    assert (await sdk_b.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


@pytest.mark.timeout(90)
async def test_a_cancel_whose_holder_died_is_ended_by_the_worker_that_takes_it(
    store_url: str, spawn_worker: ProcessFactory, make_worker: WorkerFactory, tmp_path: Path
) -> None:
    """B is killed mid-run, and the cancels sent for its runs reach no one: they are written to
    the runs' records. The worker that then finds B gone ends each run as its cancel asked,
    so no thread is left busy and the rollback is undone."""
    a = await make_worker(store=store_url, graphs=COUNTING_GRAPHS, sweep_interval_s=3600)
    b = await spawn_worker(store_url, "worker-b", run_lease_s=30)
    sdk_a, sdk_b = a.client(), get_client(url=b.url, api_key=None)
    gate = str(tmp_path / "never")  # each run's second step waits for it: it never comes
    try:
        threads, runs, before = [], [], []
        for name in ("rolled-back", "interrupted"):
            log = str(tmp_path / f"{name}.log")
            thread_id = (await sdk_b.threads.create())["thread_id"]
            done = await sdk_b.runs.wait(thread_id, "counting", input={"log": log})
            assert isinstance(done, dict)
            before.append(await sdk_b.threads.get_state(thread_id))
            run = await sdk_b.runs.create(thread_id, "counting", input={"log": log, "gate": gate})
            threads.append(thread_id)
            runs.append(run["run_id"])

            async def first_step_checkpointed(thread_id: str = thread_id) -> bool:
                state = await sdk_a.threads.get_state(thread_id)
                return bool(state["values"]["steps"][-1:] == ["first"])

            await eventually(first_step_checkpointed, timeout_s=10)
        b.kill()
        await b.proc.wait()
        await sdk_a.runs.cancel(threads[0], runs[0], action="rollback")
        await sdk_a.runs.cancel(threads[1], runs[1], action="interrupt")
        # A worker that sweeps finds B's address refusing: it takes the runs and ends them.
        await make_worker(store=store_url, graphs=COUNTING_GRAPHS, sweep_interval_s=0.1)

        async def ended() -> bool:
            statuses = [(await sdk_a.threads.get(t))["status"] for t in threads]
            return statuses == ["idle", "interrupted"]

        await eventually(ended, timeout_s=15)
        # Rolled back: the run is forgotten, its thread as it was before it.
        assert runs[0] not in [r["run_id"] for r in await sdk_a.runs.list(threads[0])]
        assert (await sdk_a.threads.get_state(threads[0]))["values"] == before[0]["values"]
        # Interrupted: the run reads so, its thread keeps the step it finished.
        assert (await sdk_a.runs.get(threads[1], runs[1]))["status"] == "interrupted"
        state = await sdk_a.threads.get_state(threads[1])
        assert state["values"]["steps"][-1:] == ["first"]
        assert state["next"] == ["second"]
    finally:
        await sdk_a.aclose()
        await sdk_b.aclose()
