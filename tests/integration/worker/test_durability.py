"""What a run checkpoints while it runs, per its ``durability`` (read from the store's file).

The counting graph waits at a gate before its second step: the checkpoints its thread has
while it waits there are the intermediate ones.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from langgraph_sdk.schema import Durability

from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration

GRAPHS = Path(__file__).parents[2] / "graphs" / "langgraph.json"


async def _checkpoints(worker: Worker, thread_id: str) -> int:
    """Checkpoints LangGraph's SQLite saver holds for ``thread_id``, read by a new connection."""
    path = worker.settings.store.removeprefix("sqlite:///")
    async with (
        aiosqlite.connect(path) as db,
        db.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (thread_id,)) as cur,
    ):
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def _start_gated(
    worker: Worker, tmp_path: Path, thread: bool, durability: Durability | None
) -> tuple[str, Path, Path]:
    """A run of the counting graph held before its second step; its thread id and files."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with worker.client() as client:
        thread_id = (await client.threads.create())["thread_id"] if thread else None
        run = await client.runs.create(
            thread_id,
            "counting",
            input={"log": str(log), "gate": str(gate)},
            durability=durability,
        )
    await eventually(lambda: _lines(log) == ["first"])
    return run["thread_id"], log, gate


async def test_a_stateless_run_checkpoints_only_at_exit(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    worker = await make_worker(graphs=GRAPHS)
    thread_id, log, gate = await _start_gated(worker, tmp_path, thread=False, durability=None)
    assert await _checkpoints(worker, thread_id) == 0
    gate.touch()
    await eventually(lambda: _lines(log) == ["first", "second", "third"])
    await eventually(lambda: worker.manager.load == 0)


@pytest.mark.parametrize(
    ("thread", "durability"),
    [(True, None), (True, "sync"), (False, "async"), (False, "sync")],
    ids=["thread-default", "thread-sync", "stateless-async", "stateless-sync"],
)
async def test_runs_checkpoint_each_step_by_default_or_when_asked(
    make_worker: WorkerFactory, tmp_path: Path, thread: bool, durability: Durability | None
) -> None:
    worker = await make_worker(graphs=GRAPHS)
    thread_id, log, gate = await _start_gated(worker, tmp_path, thread, durability)

    async def checkpointed() -> bool:
        # The input checkpoint and the one after the first step, before the run ends.
        return await _checkpoints(worker, thread_id) >= 2

    await eventually(checkpointed)
    assert _lines(log) == ["first"]
    gate.touch()
    await eventually(lambda: _lines(log) == ["first", "second", "third"])
    await eventually(lambda: worker.manager.load == 0)
