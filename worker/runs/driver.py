"""Driving one run: wait for its turn, execute it, record how it ended, and tell everyone.

``RunDriver.drive(run)`` is the body of a run's task. A run stopped by request ends
``cancelled`` (a rollback is undone); one handed over (shutdown, lost lease) ends here
without an outcome, since another worker carries it on; one past its ``timeout_s`` ends
``timeout``. Whatever happens, ``_end`` takes the run out of the table before waking its
waiters.
"""

from __future__ import annotations

import asyncio

import structlog

from worker.metrics import WorkerMetrics
from worker.runs import checkpoints, executor
from worker.runs.active import ActiveRun
from worker.runs.announce import Announcer
from worker.runs.observers import RunObservers
from worker.runs.persistence import RunPersistence
from worker.runs.relay import Relay
from worker.runs.retention import Retention
from worker.runs.table import RunTable
from worker.store.base import RunState

log = structlog.get_logger("worker.runs")

INTERNAL_ERROR = {"__error__": {"error": "InternalError", "message": "worker error"}}


class StartRefused(Exception):
    """The run's record refused it the running status; ``stop_action`` says how it ends."""


class RunDriver:
    """Runs admitted runs to their end; one per worker, shared by every run's task."""

    def __init__(
        self,
        *,
        table: RunTable,
        persistence: RunPersistence,
        announcer: Announcer,
        observers: RunObservers,
        retention: Retention,
        relay: Relay,
        metrics: WorkerMetrics,
    ) -> None:
        self._table = table
        self._persistence = persistence
        self._announcer = announcer
        self._observers = observers
        self._retention = retention
        self._relay = relay
        self._metrics = metrics

    def _gauges(self) -> None:
        self._metrics.set_gauges(self._table.running, self._table.queued)

    async def drive(self, run: ActiveRun) -> None:
        loop = asyncio.get_running_loop()
        outcome: executor.Outcome | None = None
        started = loop.time()
        structlog.contextvars.bind_contextvars(run_id=run.run_id, thread_id=run.thread_id)
        run.driving = True  # from here a stop cancels this task (see ActiveRun.driving)
        try:
            try:
                if run.stop_action not in (None, "pause"):
                    raise StartRefused(run.run_id)  # stopped before this task began
                await self._turn(run)
                started = loop.time()
                outcome = await self._execute(run)
            except (asyncio.CancelledError, StartRefused):
                if run.stop_action is None:
                    raise
                if run.stop_action in ("release", "lost"):
                    if run.released:
                        await self._persistence.handed_back(run)
                    return  # the run goes on elsewhere: no outcome here
                outcome = await self._persistence.stopped(run)
            except TimeoutError:
                error = {"error": "TimeoutError", "message": f"run exceeded {run.spec.timeout_s}s"}
                run.events.publish("error", error)
                outcome = executor.Outcome("timeout", {"__error__": error}, error)
            run.outcome = outcome
            thread_busy = self._table.threads.others(run)
            await self._persistence.ended(run, outcome, thread_busy=thread_busy)
        except asyncio.CancelledError:
            # Cancelled again while finishing up (shutdown): the record keeps its last status.
            raise
        except Exception:
            log.exception("run_bookkeeping_failed")
            run.outcome = outcome or executor.Outcome("error", INTERNAL_ERROR)
        finally:
            self._end(run, loop.time() - started)
            structlog.contextvars.unbind_contextvars("run_id", "thread_id")

    async def _turn(self, run: ActiveRun) -> None:
        """Wait out ``after_seconds`` and the runs queued before this one on its thread."""
        if run.spec.after_seconds:
            await asyncio.sleep(run.spec.after_seconds)
        await run.turn.wait()

    async def _execute(self, run: ActiveRun) -> executor.Outcome:
        spec, run.base_checkpoint_id = await checkpoints.starting_point(run)
        run.state = "running"
        run.started = True
        self._gauges()
        # A run written running when it was created has no start left to write (a cancel
        # written to its record meanwhile reaches it at the next lease renewal).
        if not run.start_recorded and not await self._persistence.started(run):
            await self._refused(run)
        self._announcer.status(run, "running")
        self._observers.run_started(run)
        log.info(
            "run_started",
            graph_id=run.entry.graph_id,
            attempt=run.record.attempt,
            resumed=spec is not run.spec,
        )
        async with asyncio.timeout(run.spec.timeout_s):
            outcome = await executor.execute(
                run.entry,
                run.record,
                spec,
                run.control,
                self._announcer.emitter(run),
                scratch=run.scratch,
            )
        if outcome.state == "paused" and run.stop_action != "pause":
            outcome = executor.Outcome("cancelled", outcome.output)
        return outcome

    async def _refused(self, run: ActiveRun) -> None:
        """The record refused ``run`` its start: it does not execute here. Cancelled on
        record while it waited for its turn, it ends as a run stopped before it began (or is
        forgotten, for a rollback); taken over (or deleted with its thread), it ends here
        without a word, like a lost lease."""
        run.state, run.started = "pending", False
        self._gauges()
        if run.stop_action is None:
            held = await self._persistence.still_held(run)
            run.stop_action = await self._persistence.stop_on_record(run) if held else "lost"
        log.info("run_start_refused", stop_action=run.stop_action)
        raise StartRefused(run.run_id)

    def _end(self, run: ActiveRun, duration_s: float) -> None:
        # Order matters: release the thread (next run's turn) and the capacity slot, then
        # wake waiters, so a joiner that sees ``done`` also sees the worker's new load.
        outcome = run.outcome
        state: RunState = outcome.state if outcome is not None else "cancelled"
        handed_over = run.stop_action in ("release", "lost")
        run.state = state
        if run.scratch:
            run.entry.forget(run.thread_id)
        self._table.remove(run)
        run.events.close()
        run.done.set()
        if handed_over:
            # Not ended: another worker carries the run on (and reports how it ends).
            log.info("run_handed_over", reason=run.stop_action, duration_s=round(duration_s, 3))
            return
        if run.events.relayed:
            self._relay.end(run.run_id, run.record.attempt)
        self._metrics.run_finished(run.entry.graph_id, state, duration_s)
        self._announcer.status(run, state)
        log.info("run_ended", status=state, duration_s=round(duration_s, 3))
        self._observers.run_ended(run)
        self._retention.keep(run)
