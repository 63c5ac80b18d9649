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
from worker.runs.outbox import RunOutbox
from worker.store.base import RunState, Store, ThreadStatus

log = structlog.get_logger("worker.runs")


class RunPersistence:
    """Writes what happens to the runs of one worker (``worker_id``) to the store."""

    def __init__(self, *, store: Store, worker_id: str, outbox: RunOutbox | None = None) -> None:
        self._store = store
        self._worker_id = worker_id
        self._outbox = outbox or RunOutbox()

    async def started(self, run: ActiveRun) -> bool:
        """Record that ``run`` executes; False when its record refuses: the run was
        cancelled on record meanwhile (by a worker whose command did not reach this one),
        deleted, or taken over by another worker."""
        events = self._outbox.started(run)
        written = await self._store.set_run_status(
            run.run_id, "running", events=events, holder=self._holder(run), if_active=True
        )
        if written:
            await self._store.update_thread(run.thread_id, status="busy")
        return written

    async def still_held(self, run: ActiveRun) -> bool:
        """Whether ``run``'s record is still this worker's attempt (whatever its status)."""
        record = await self._store.get_run(run.run_id)
        return record is not None and (record.worker_id, record.attempt) == self._holder(run)

    async def stopped(self, run: ActiveRun) -> executor.Outcome:
        """The outcome of a run stopped by request; a rollback is undone in the store."""
        return await checkpoints.stopped_outcome(self._store, run)

    async def ended(self, run: ActiveRun, outcome: executor.Outcome, *, thread_busy: bool) -> None:
        """Record ``outcome``; ``thread_busy``: more runs are queued on the thread.

        A run that keeps no record (stateless, ``on_completion=delete``) deletes its thread
        instead; a rolled-back run is already gone from the store.
        """
        events = self._outbox.ended(run) if run.stop_action != "rollback" else []
        if run.ephemeral:
            if events:  # the run's own webhook outlives its record
                await self._store.set_run_status(run.run_id, outcome.state, events=events)
            await self._store.delete_thread(run.thread_id)
            return
        if run.stop_action != "rollback":
            written = await self._store.set_run_status(
                run.run_id,
                outcome.state,
                result=outcome.output,
                error=outcome.error,
                events=events,
                holder=self._holder(run),
            )
            if not written:
                # Taken over meanwhile (this worker stalled past its lease): the run and its
                # thread are the new holder's to report on.
                log.warning("run_outcome_fenced", run_id=run.run_id, attempt=run.record.attempt)
                return
        status = thread_status(outcome.state)
        if outcome.state == "cancelled" and not thread_busy:
            # As the official server: a run stopped mid-way leaves its thread interrupted
            # (its checkpoint has tasks left to run); one stopped before any, idle.
            _, pending = await executor.final_values(run.entry.graph, run.thread_id)
            status = "interrupted" if pending else "idle"
        await self._store.update_thread(run.thread_id, status="busy" if thread_busy else status)

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
