"""Persistence of a run's progress: the record's status and its thread's status.

The store is the fleet's source of truth, so each step is written before it is told to
anyone: a run is ``running`` on record before its ``started`` event, and its outcome is on
record before waiters wake. Every write of a run's status is fenced by the attempt this worker
holds: once another worker has claimed the run, this one's writes change nothing.
"""

from __future__ import annotations

import structlog

from worker.runs import checkpoints, executor
from worker.runs.active import ActiveRun
from worker.store.base import RunState, Store, ThreadStatus

log = structlog.get_logger("worker.runs")


class RunPersistence:
    """Writes what happens to the runs of one worker (``worker_id``) to the store."""

    def __init__(self, *, store: Store, worker_id: str) -> None:
        self._store = store
        self._worker_id = worker_id

    async def started(self, run: ActiveRun) -> None:
        if await self._store.set_run_status(run.run_id, "running", holder=self._holder(run)):
            await self._store.update_thread(run.thread_id, status="busy")

    async def stopped(self, run: ActiveRun) -> executor.Outcome:
        """The outcome of a run stopped by request; a rollback is undone in the store."""
        return await checkpoints.stopped_outcome(self._store, run)

    async def ended(self, run: ActiveRun, outcome: executor.Outcome, *, thread_busy: bool) -> None:
        """Record ``outcome``; ``thread_busy``: more runs are queued on the thread.

        A run that keeps no record (stateless, ``on_completion=delete``) deletes its thread
        instead; a rolled-back run is already gone from the store.
        """
        if run.ephemeral:
            await self._store.delete_thread(run.thread_id)
            return
        if run.stop_action != "rollback":
            written = await self._store.set_run_status(
                run.run_id,
                outcome.state,
                result=outcome.output,
                error=outcome.error,
                holder=self._holder(run),
            )
            if not written:
                # Taken over meanwhile (this worker stalled past its lease): the run and its
                # thread are the new holder's to report on.
                log.warning("run_outcome_fenced", run_id=run.run_id, attempt=run.record.attempt)
                return
        await self._store.update_thread(
            run.thread_id, status="busy" if thread_busy else thread_status(outcome.state)
        )

    def _holder(self, run: ActiveRun) -> tuple[str, int]:
        """The fence of ``run``'s writes: this worker, this attempt."""
        return self._worker_id, run.record.attempt

    async def handed_back(self, run: ActiveRun) -> None:
        """Expire ``run``'s lease (status untouched) so another worker claims it at once."""
        await self._store.release_runs(self._worker_id, [run.run_id])


def thread_status(state: RunState) -> ThreadStatus:
    """A thread's status after its last run ended in ``state``."""
    if state == "error" or state == "timeout":
        return "error"
    if state in ("interrupted", "paused"):
        return "interrupted"
    return "idle"
