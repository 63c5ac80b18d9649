"""What a run costs the SQLite store, counted statement by statement (not timed).

The worker's background loops are set far apart, so that once they have had their first
round, every statement the trace hears is the run's. A stateless run is two write
transactions: begun (its temporary thread, its record written running, its start's
events) and its end (the thread deleted with everything in it and the end's events); its
checkpoint at exit stays in the worker's memory. A run on a thread is two transactions of
records -- begun, ended -- besides its checkpoints.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.sql_log import SqlLog
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

GRAPHS = Path(__file__).parents[2] / "graphs" / "langgraph.json"
QUIET = {
    "sweep_interval_s": 3600.0,
    "run_lease_s": 3600.0,
    "webhook_poll_s": 3600.0,
    "cron_interval_s": 3600.0,
}
RECORDS = ("gf_threads", "gf_runs", "gf_crons", "gf_webhook_events", "gf_webhook_deliveries")


async def _settled(log: SqlLog) -> None:
    """Wait until nothing more is heard: the background loops' first rounds are over."""
    heard = -1

    def still() -> bool:
        nonlocal heard
        done, heard = len(log.entries) == heard, len(log.entries)
        return done

    await eventually(still, interval_s=0.2)


async def _quiet_worker(make_worker: WorkerFactory, log: SqlLog) -> Worker:
    return await make_worker(graphs=GRAPHS, sql_trace=log, **QUIET)


async def _run(client: LangGraphClient, thread_id: str | None, tmp_path: Path) -> None:
    output = await client.runs.wait(
        thread_id, "counting", input={"log": str(tmp_path / "steps.log")}
    )
    assert isinstance(output, dict)
    assert output["steps"][-3:] == ["first", "second", "third"]


def _writes_records(transaction: list[str]) -> bool:
    return any(table in sql for sql in transaction for table in RECORDS)


async def test_a_stateless_run_is_two_write_transactions(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    log = SqlLog()
    worker = await _quiet_worker(make_worker, log)
    async with worker.client() as client:
        await _run(client, None, tmp_path)  # the first run of a worker sets things up
        await _settled(log)
        log.clear()
        await _run(client, None, tmp_path)
    transactions = log.transactions()
    assert len(transactions) == 2, transactions
    # Its checkpoints (at exit only) stay in the worker's memory: none is read or written.
    # The assistant comes from the worker's cache, checked in the transaction that begins
    # the run (still as read?), not read before it.
    assert log.shapes() == Counter(
        {
            "SELECT gf_assistants": 1,
            # begun: the assistant checked, the thread made busy, the run written running,
            # its start's events
            "INSERT gf_threads": 1,
            "INSERT gf_runs": 1,
            "INSERT gf_webhook_events": 2,  # and its end's: none written, no hook wants them
            # ended: the thread and everything in it, in one transaction
            "DELETE gf_threads": 1,
            "DELETE gf_runs": 1,
            "DELETE gf_crons": 1,
            "DELETE checkpoints": 1,
            "DELETE writes": 1,
        }
    )
    begun, ended = transactions
    assert [s.split(" ")[0] for s in begun] == ["SELECT", "INSERT", "INSERT", "INSERT"]
    assert "gf_assistants" in begun[0]
    assert len(ended) == 6


async def test_a_stateless_run_that_checkpoints_each_step_writes_them(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    """``durability`` other than ``exit``: the checkpoints go to the store, where a worker
    that takes the run over after a crash resumes from them."""
    log = SqlLog()
    worker = await _quiet_worker(make_worker, log)
    async with worker.client() as client:
        for _ in range(2):
            log.clear()
            output = await client.runs.wait(
                None, "counting", input={"log": str(tmp_path / "steps.log")}, durability="sync"
            )
            assert isinstance(output, dict)
    shapes = log.shapes()
    assert shapes["INSERT checkpoints"] >= 3, shapes
    assert shapes["SELECT checkpoints"] >= 1, shapes


async def test_a_run_on_a_thread_writes_its_records_twice(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    log = SqlLog()
    worker = await _quiet_worker(make_worker, log)
    async with worker.client() as client:
        thread_id = (await client.threads.create())["thread_id"]
        await _run(client, thread_id, tmp_path)
        await _settled(log)
        log.clear()
        await _run(client, thread_id, tmp_path)
    transactions = log.transactions()
    records = [t for t in transactions if _writes_records(t)]
    assert len(records) == 2, records
    shapes = log.shapes()
    assert {shape: n for shape, n in shapes.items() if "checkpoints" not in shape} == {
        # the thread, other workers' runs on the thread
        "SELECT gf_threads": 1,
        "SELECT gf_runs": 1,
        # begun: the (cached) assistant checked, the thread made busy, the run written
        # running, its start's events
        "SELECT gf_assistants": 1,
        "UPDATE gf_threads": 2,  # and at the end, idle again
        "INSERT gf_runs": 1,
        "INSERT gf_webhook_events": 2,
        # ended: the run's status (the thread's is above)
        "UPDATE gf_runs": 1,
        # LangGraph's checkpoints: the latest before the run (twice), the final state
        "SELECT writes": 3,
        "INSERT writes": 7,
    }
    # A checkpoint per superstep (the input's, the start's, each node's), as LangGraph's
    # default durability asks.
    assert shapes["INSERT checkpoints"] == 5
    assert shapes["SELECT checkpoints"] == 3
    # Checkpoint writes queued together share a transaction: at most one each.
    checkpoint_writes = shapes["INSERT checkpoints"] + shapes["INSERT writes"]
    assert 1 <= len(transactions) - len(records) <= checkpoint_writes
