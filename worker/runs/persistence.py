"""Persistence of a run's progress: the record's status and its thread's status.

The store is the fleet's source of truth, so each step is written before it is told to
anyone: a run is ``running`` on record before its ``started`` event, and its outcome is on
record before waiters wake. Every write of a run's status is fenced by the attempt this worker
holds: once another worker has claimed the run, this one's writes change nothing.

Each step is one transaction: a run's start is its status with its thread's (a run that
starts at once was written ``running`` when created, ``service``, and writes nothing when it
starts); its end is its status with its thread's status, or for a stateless run, the
deletion of its thread with everything in it. A write of the thread's status restarts the
thread's TTL, as the official server's TTL clock restarts with each run.
"""

from __future__ import annotations

import structlog

from worker.runs import checkpoints, executor
from worker.runs.active import ActiveRun
from worker.runs.outbox import RunOutbox
from worker.store.base import RunState, StopOnRecord, Store, ThreadStatus
from worker.store.checkpoint_ops import copy_checkpoints

log = structlog.get_logger("worker.runs")


class RunPersistence:
    """Writes what happens to the runs of one worker (``worker_id``) to the store."""

    def __init__(self, *, store: Store, worker_id: str, outbox: RunOutbox | None = None) -> None:
        self._store = store
        self._worker_id = worker_id
        self._outbox = outbox or RunOutbox()

    async def started(self, run: ActiveRun) -> bool:
        """Record that a queued or resumed ``run`` executes, with its thread busy (as it is
        since the run was created: written again, the thread's TTL restarts with the run);
        False when its record refuses: the run was cancelled on record meanwhile (by a worker
        whose command did not reach this one), deleted, or taken over by another worker."""
        events = self._outbox.started(run)
        return await self._store.set_run_status(
            run.run_id,
            "running",
            events=events,
            holder=self._holder(run),
            if_active=True,
            thread_status="busy",
        )

    async def still_held(self, run: ActiveRun) -> bool:
        """Whether ``run``'s record is still this worker's attempt (whatever its status)."""
        record = await self._store.get_run(run.run_id)
        return record is not None and (record.worker_id, record.attempt) == self._holder(run)

    async def stop_on_record(self, run: ActiveRun) -> StopOnRecord:
        """What the cancel written to ``run``'s record asks for (interrupt if it says none)."""
        return await self._store.stop_on_record(run.run_id) or "interrupt"

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
            # The run's own webhook outlives its record: the events go with the deletion.
            await self._store.delete_thread(run.thread_id, events=events)
            return
        status: ThreadStatus = "busy" if thread_busy else thread_status(outcome.state)
        if outcome.state == "cancelled" and not thread_busy:
            # As the official server: a run stopped mid-way leaves its thread interrupted
            # (its checkpoint has tasks left to run); one stopped before any, idle.
            _, pending = await executor.final_values(run.graph, run.thread_id)
            status = "interrupted" if pending else "idle"
        if run.stop_action == "rollback":  # the run is gone from the store: its thread only
            await self._store.update_thread(run.thread_id, status=status)
            return
        written = await self._store.set_run_status(
            run.run_id,
            outcome.state,
            result=outcome.output,
            error=outcome.error,
            events=events,
            holder=self._holder(run),
            thread_status=status,
        )
        if not written:
            # Taken over meanwhile (this worker stalled past its lease): the run and its
            # thread are the new holder's to report on.
            log.warning("run_outcome_fenced", run_id=run.run_id, attempt=run.record.attempt)

    def _holder(self, run: ActiveRun) -> tuple[str, int]:
        """The fence of ``run``'s writes: this worker, this attempt."""
        return self._worker_id, run.record.attempt

    async def handed_back(self, run: ActiveRun) -> None:
        """Expire ``run``'s lease (status untouched) so another worker claims it at once.

        A run keeping its checkpoints in memory (``scratch``) first carries them to the
        store: the worker that claims it resumes from them, as from any run's.
        """
        if run.scratch:
            await copy_checkpoints(
                run.graph.checkpointer,  # type: ignore[arg-type]
                run.thread_id,
                run.thread_id,
                target=self._store.checkpointer,
            )
        await self._store.release_runs(self._worker_id, [run.run_id])


def thread_status(state: RunState) -> ThreadStatus:
    """A thread's status after its last run ended in ``state``."""
    if state == "error" or state == "timeout":
        return "error"
    if state in ("interrupted", "paused"):
        return "interrupted"
    return "idle"
