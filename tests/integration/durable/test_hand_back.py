"""A stateless run handed back at shutdown resumes elsewhere from where it was, although it
kept its checkpoints in the worker's memory (``ActiveRun.scratch``): the worker handing it
back carries them to the store first."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from tests.integration.durable.conftest import read_steps
from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually
from worker.keys import GRAPHS, STORE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

COUNTING = Path(__file__).parents[2] / "graphs" / "langgraph.json"


async def test_a_stateless_run_handed_back_resumes_after_its_done_steps(
    make_worker: WorkerFactory, store_url: str, tmp_path: Path
) -> None:
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    first = await make_worker(
        graphs=COUNTING, store=store_url, sweep_interval_s=60, instance_id="first"
    )
    sdk = first.client()
    try:
        run = await sdk.runs.create(
            None, "counting", input={"log": str(log), "gate": str(gate)}, on_completion="delete"
        )
        # The first step is done; the second waits at the gate. Hand the run back.
        await eventually(lambda: read_steps(log) == ["first"], timeout_s=10)
        assert first.manager.running == 1
        entry = first.app[GRAPHS].get("counting")
        assert entry is not None
        assert entry.scratch is not None
        scratch = entry.scratch.checkpointer
        assert isinstance(scratch, InMemorySaver)
        config = {"configurable": {"thread_id": run["thread_id"], "checkpoint_ns": ""}}
        # Checkpointing at exit only, the run has written nothing to the store.
        assert await first.app[STORE].checkpointer.aget_tuple(config) is None
        assert await first.manager.release_all() == 1
        # Its checkpoint at exit is in the store now, and none is left in the worker's memory.
        assert not scratch.storage
        assert not scratch.writes
        assert not scratch.blobs
        assert (await entry.graph.aget_state(config)).values["steps"] == ["first"]

        second = await make_worker(
            graphs=COUNTING, store=store_url, sweep_interval_s=0.05, instance_id="second"
        )
        await eventually(lambda: second.manager.running == 1, timeout_s=10)
        gate.touch()
        await eventually(lambda: second.manager.load == 0, timeout_s=10)
        # Each step ran once: the first one was not executed again.
        assert read_steps(log) == ["first", "second", "third"]
        # The run ended with its thread deleted, as a stateless run does.
        assert await second.app[STORE].get_thread(run["thread_id"]) is None
    finally:
        await sdk.aclose()


async def test_stateless_runs_leave_nothing_in_the_workers_memory(
    make_worker: WorkerFactory, store_url: str, tmp_path: Path
) -> None:
    worker = await make_worker(graphs=COUNTING, store=store_url)
    entry = worker.app[GRAPHS].get("counting")
    assert entry is not None
    assert entry.scratch is not None
    scratch = entry.scratch.checkpointer
    assert isinstance(scratch, InMemorySaver)
    async with worker.client() as sdk:
        for _ in range(3):
            out = await sdk.runs.wait(None, "counting", input={"log": str(tmp_path / "log")})
            assert isinstance(out, dict)
            assert out["steps"] == ["first", "second", "third"]
    # Each run drops its checkpoints from the worker's memory when it ends.
    await eventually(lambda: worker.manager.load == 0)
    assert (scratch.storage, scratch.writes, scratch.blobs) == ({}, {}, {})
