"""kill -9 of a ``python -m worker`` mid-run: another worker process resumes the run from its
last checkpoint, on a shared Postgres database or a shared SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.integration.durable.conftest import ProcessFactory, read_steps
from tests.support import eventually

pytestmark = pytest.mark.integration

STEPS = ["first", "second", "third"]


@pytest.mark.timeout(60)
async def test_kill_9_mid_run_resumes_on_the_other_worker_without_redoing_steps(
    store_url: str, spawn_worker: ProcessFactory, tmp_path: Path
) -> None:
    a, b = await asyncio.gather(
        spawn_worker(store_url, "worker-a"), spawn_worker(store_url, "worker-b")
    )
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{a.url}/threads", json={}) as response:
            thread_id = (await response.json())["thread_id"]
        body = {"assistant_id": "counting", "input": {"log": str(log), "gate": str(gate)}}
        async with http.post(f"{a.url}/threads/{thread_id}/runs", json=body) as response:
            assert response.status == 200
            run_id = (await response.json())["run_id"]
        run_path = f"/threads/{thread_id}/runs/{run_id}"
        # The first step is done; the second waits at the gate. Kill A, then open the gate.
        await eventually(lambda: read_steps(log) == ["first"], timeout_s=10)
        await _checkpointed_first_step(http, a.url, thread_id)
        a.kill()
        await a.proc.wait()
        gate.touch()
        # B claims the run once A's lease lapses, and joins it meanwhile.
        async with http.get(f"{b.url}{run_path}/join") as response:
            assert response.status == 200
            values = json.loads(await response.text())
        assert values["steps"] == STEPS
        # Each step ran once: the first one was not executed again on B.
        assert read_steps(log) == STEPS
        async with http.get(f"{b.url}{run_path}") as response:
            assert (await response.json())["status"] == "success"
        async with http.get(f"{b.url}/executions/{run_id}") as response:
            execution = await response.json()
        assert execution["status"] == "completed"
        assert execution["result"]["steps"] == STEPS


async def _checkpointed_first_step(http: aiohttp.ClientSession, url: str, thread_id: str) -> None:
    """Wait until the checkpoint after the first step is stored (it is written async)."""

    async def stored() -> bool:
        async with http.get(f"{url}/threads/{thread_id}/state") as response:
            state = await response.json()
        return bool(state["next"] == ["second"])

    await eventually(stored, timeout_s=10)


@pytest.mark.timeout(60)
async def test_a_killed_workers_run_is_resumed_within_5_s_long_before_its_lease_lapses(
    store_url: str, spawn_worker: ProcessFactory, tmp_path: Path
) -> None:
    # A 30 s lease and the default sweep interval: waiting the lease out could not make it.
    a, b = await asyncio.gather(
        spawn_worker(store_url, "worker-a", run_lease_s=30, sweep_interval_s=2.0),
        spawn_worker(store_url, "worker-b", run_lease_s=30, sweep_interval_s=2),
    )
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{a.url}/threads", json={}) as response:
            thread_id = (await response.json())["thread_id"]
        body = {"assistant_id": "counting", "input": {"log": str(log), "gate": str(gate)}}
        async with http.post(f"{a.url}/threads/{thread_id}/runs", json=body) as response:
            run_id = (await response.json())["run_id"]
        await eventually(lambda: read_steps(log) == ["first"], timeout_s=10)
        await _checkpointed_first_step(http, a.url, thread_id)
        gate.touch()  # A is in its second step, past the gate; it dies before recording it
        a.kill()
        await a.proc.wait()
        # B finds A's address refusing connections, takes the run and runs the second step.
        await eventually(lambda: "second" in read_steps(log), timeout_s=5.0)
        async with http.get(f"{b.url}/threads/{thread_id}/runs/{run_id}/join") as response:
            assert response.status == 200
            values = json.loads(await response.text())
    assert values["steps"] == STEPS
    assert read_steps(log) == STEPS  # no step ran twice
