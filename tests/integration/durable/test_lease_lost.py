"""A worker that stalled past its lease and finds its run taken stops it, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.worker.conftest import WorkerFactory, eventually
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
