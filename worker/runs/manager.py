"""The run manager: admission, one run at a time per thread, stop requests, draining.

Admission is two-phase so that nothing is written for a run the worker then refuses:
``reserve()`` takes a capacity slot synchronously (or raises ``AtCapacity``),
``admit()`` applies the thread's multitask strategy synchronously, the caller persists the
run, then ``start()`` launches its task. The synchronous steps never await, so two requests
cannot both see a free slot or an idle thread.

Runs of one thread execute in admission order: each run waits for its ``turn``, which the
previous run hands over when it ends.

A run claimed from a stopped worker (``recover()``) resumes from its last checkpoint: the
graph is invoked with no input on its thread, so the nodes it had finished do not run
again. At shutdown, runs that outlived the drain are released (their lease expired at
once) rather than failed: another worker claims and resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import structlog

from worker import jsonutil
from worker.errors import AtCapacity
from worker.graphs import GraphEntry
from worker.metrics import WorkerMetrics
from worker.runs import checkpoints, executor
from worker.runs.active import ActiveRun, RunNotActiveError, ThreadBusyError
from worker.runs.events import GraphFeed, RunEvents, first_seq
from worker.runs.model import CancelAction, MultitaskStrategy, RunSpec, simple_status
from worker.runs.relay import Relay
from worker.store.base import RunRecord, RunState, Store, ThreadStatus

log = structlog.get_logger("worker.runs")

RunListener = Callable[[str, "ActiveRun"], None]  # ("started" | "ended", run)


class Reservation:
    """A capacity slot held between the 503 check and the run's start."""

    def __init__(self, manager: RunManager) -> None:
        self._manager = manager
        self.used = False

    def release(self) -> None:
        if not self.used:
            self.used = True
            self._manager._reserved -= 1


class RunManager:
    """Owns every active run of this worker. Create one per app; ``close()`` at shutdown."""

    def __init__(
        self,
        *,
        store: Store,
        worker_id: str,
        max_concurrency: int,
        metrics: WorkerMetrics,
        feed: GraphFeed,
        buffer_events: int,
        retention_s: float,
        relay: Relay | None = None,
    ) -> None:
        self._store = store
        self._relay = relay or Relay()
        self._worker_id = worker_id
        self.max_concurrency = max_concurrency
        self._metrics = metrics
        self._feed = feed
        self._buffer_events = buffer_events
        self._retention_s = retention_s
        self._active: dict[str, ActiveRun] = {}
        self._threads: dict[str, deque[ActiveRun]] = {}
        self._reserved = 0
        self._finished: dict[str, ActiveRun] = {}  # kept for replay for retention_s
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self.draining = False
        self.listeners: list[RunListener] = []

    # admission

    @property
    def load(self) -> int:
        """Runs admitted and not ended (running or queued), plus reserved slots."""
        return len(self._active) + self._reserved

    def ensure_capacity(self) -> None:
        """Raise ``AtCapacity`` now if a run would be refused (a cheap early check)."""
        self.reserve().release()

    def reserve(self) -> Reservation:
        if self.draining:
            self._metrics.rejected.inc()
            raise AtCapacity("worker is draining; retry on another worker")
        if self.load >= self.max_concurrency:
            self._metrics.rejected.inc()
            raise AtCapacity(f"worker is at capacity ({self.load}/{self.max_concurrency} runs)")
        self._reserved += 1
        return Reservation(self)

    @contextlib.contextmanager
    def reservation(self) -> Iterator[Reservation]:
        """``reserve()`` that gives the slot back unless a run was admitted with it."""
        slot = self.reserve()
        try:
            yield slot
        finally:
            slot.release()

    def thread_active(self, thread_id: str) -> list[ActiveRun]:
        return list(self._threads.get(thread_id, ()))

    def admit(
        self,
        slot: Reservation,
        record: RunRecord,
        spec: RunSpec,
        entry: GraphEntry,
        strategy: MultitaskStrategy,
        *,
        ephemeral: bool = False,
        recovered: bool = False,
    ) -> ActiveRun:
        """Queue ``record`` on its thread per ``strategy``; raises ``ThreadBusyError``.

        ``recovered``: the run was claimed from a stopped worker and resumes (see module).
        """
        queue = self._threads.get(record.thread_id)
        busy = [r for r in queue or () if r.stop_action is None]
        if busy and strategy == "reject":
            raise ThreadBusyError(
                f"thread {record.thread_id} has an active run ({busy[0].run_id}); "
                "multitask_strategy=reject"
            )
        # Any previous replay buffer of the same run (a resumed execution) gives way.
        self._forget(record.run_id)
        if not recovered:
            self._relay.reset(record.run_id)  # a new execution: earlier events are history
        events = RunEvents(
            self._buffer_events,
            first_seq=first_seq(record.attempt),
            on_publish=functools.partial(self._relay.publish, record.run_id),
        )
        run = ActiveRun(record, spec, entry, events, ephemeral, recovered)
        slot.release()  # the slot becomes the run: no await between these two lines
        self._active[run.run_id] = run
        queue = self._threads.setdefault(record.thread_id, deque())
        queue.append(run)
        if len(queue) == 1:
            run.turn.set()
        if strategy in ("interrupt", "rollback"):
            for other in busy:
                self.stop(other.run_id, strategy)
        self._metrics.set_gauges(self.running, self.queued)
        return run

    def start(self, run: ActiveRun) -> None:
        run.task = asyncio.create_task(self._drive(run), name=f"run-{run.run_id}")
        if run.stop_action is not None and run.stop_action != "pause":
            # Stopped between admit() and start() (while its record was being written).
            run.task.cancel(f"run {run.stop_action} requested")

    def abort(self, run: ActiveRun) -> None:
        """Undo ``admit()`` for a run whose record could not be written."""
        self._release(run)
        run.events.close()
        run.done.set()

    # lookup

    def get(self, run_id: str) -> ActiveRun | None:
        """An active run, or a finished one still retained for replay."""
        return self._active.get(run_id) or self._finished.get(run_id)

    @property
    def running(self) -> int:
        return sum(1 for r in self._active.values() if r.state == "running")

    @property
    def queued(self) -> int:
        return sum(1 for r in self._active.values() if r.state == "pending")

    # stopping

    def stop(self, run_id: str, action: CancelAction) -> ActiveRun:
        """Cancel, roll back or pause an active run; returns at once (await ``run.done``).

        ``pause`` lets the current step finish and keeps the checkpoint; it applies to a
        running run only.
        """
        run = self._active.get(run_id)
        if run is None or run.done.is_set():
            raise RunNotActiveError(f"run {run_id} is not pending or running on this worker")
        if action == "pause":
            if run.state != "running":
                raise RunNotActiveError(f"run {run_id} is {run.state}; only running runs pause")
            run.stop_action = "pause"
            run.control.request_drain("pause")
            return run
        run.stop_action = action
        if run.task is not None:
            run.task.cancel(f"run {action} requested")
        return run

    # lifecycle

    def begin_drain(self) -> None:
        self.draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no run is active, at most ``timeout_s``; True when idle."""
        waiters = [r.done.wait() for r in list(self._active.values())]
        if not waiters:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*waiters)
        except TimeoutError:
            return not self._active
        return True

    async def release_all(self) -> int:
        """Stop every active run and hand it back to the fleet unfinished; returns how many.

        Each run's lease is expired, not its status changed: another worker claims the run
        and resumes it from its last checkpoint. A run that was being paused is released too.
        """
        tasks = []
        for run in list(self._active.values()):
            if run.task is not None and not run.task.done():
                run.stop_action = "release"
                run.task.cancel("worker shutting down; run released to the fleet")
                tasks.append(run.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    def apply_command(self, run_id: str, action: str) -> bool:
        """A stop sent by another worker (through the relay); True when applied here."""
        if action not in ("interrupt", "rollback", "pause"):
            return False
        try:
            self.stop(run_id, action)  # type: ignore[arg-type]
        except RunNotActiveError:
            return False
        return True

    def lose(self, run_id: str) -> None:
        """Stop a run whose lease another worker now holds, writing nothing about it."""
        run = self._active.get(run_id)
        if run is not None and run.task is not None and not run.task.done():
            run.stop_action = "lost"
            run.task.cancel("run lost its lease to another worker")

    @property
    def recorded_ids(self) -> list[str]:
        """Active runs whose record is written (``start()`` follows the write)."""
        return [r.run_id for r in self._active.values() if r.task is not None]

    async def close(self) -> None:
        """Release what still runs (see ``release_all``); drop retained buffers."""
        await self.release_all()
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        self._finished.clear()

    # the run's task

    async def _drive(self, run: ActiveRun) -> None:
        outcome: executor.Outcome | None = None
        started = asyncio.get_running_loop().time()
        structlog.contextvars.bind_contextvars(run_id=run.run_id, thread_id=run.thread_id)
        try:
            try:
                if run.spec.after_seconds:
                    await asyncio.sleep(run.spec.after_seconds)
                await run.turn.wait()
                spec, run.base_checkpoint_id = await checkpoints.starting_point(run)
                run.state = "running"
                run.started = True
                started = asyncio.get_running_loop().time()
                self._metrics.set_gauges(self.running, self.queued)
                await self._store.set_run_status(run.run_id, "running")
                await self._store.update_thread(run.thread_id, status="busy")
                self._announce(run, "running")
                self._notify("started", run)
                log.info(
                    "run started",
                    graph_id=run.entry.graph_id,
                    attempt=run.record.attempt,
                    resumed=spec is not run.spec,
                )
                async with asyncio.timeout(run.spec.timeout_s):
                    outcome = await executor.execute(
                        run.entry, run.record, spec, run.control, self._emitter(run)
                    )
                if outcome.state == "paused" and run.stop_action != "pause":
                    outcome = executor.Outcome("cancelled", outcome.output)
            except asyncio.CancelledError:
                if run.stop_action is None:
                    raise
                if run.stop_action in ("release", "lost"):
                    if run.released:
                        await self._store.release_runs(self._worker_id, [run.run_id])
                    return  # the run goes on elsewhere: no outcome here
                outcome = await checkpoints.stopped_outcome(self._store, run)
            except TimeoutError:
                error = {"error": "TimeoutError", "message": f"run exceeded {run.spec.timeout_s}s"}
                run.events.publish("error", error)
                outcome = executor.Outcome("timeout", {"__error__": error}, error)
            run.outcome = outcome
            await self._persist_outcome(run, outcome)
        except asyncio.CancelledError:
            # Cancelled again while finishing up (shutdown): the record keeps its last status.
            raise
        except Exception:
            log.exception("run bookkeeping failed")
            run.outcome = outcome or executor.Outcome(
                "error", {"__error__": {"error": "InternalError", "message": "worker error"}}
            )
        finally:
            self._finish(run, asyncio.get_running_loop().time() - started)
            structlog.contextvars.unbind_contextvars("run_id", "thread_id")

    def _emitter(self, run: ActiveRun) -> executor.Emit:
        graph_id = run.entry.graph_id

        def emit(name: str, data: Any) -> None:
            event = run.events.publish(name, data)
            if self._feed.has_subscribers(graph_id):
                self._feed.publish(
                    graph_id,
                    {
                        "type": "event",
                        "execution_id": run.run_id,
                        "event": name,
                        "data": jsonutil.loads(event.data),
                    },
                )

        return emit

    async def _persist_outcome(self, run: ActiveRun, outcome: executor.Outcome) -> None:
        if run.ephemeral:
            await self._store.delete_thread(run.thread_id)
            return
        if run.stop_action != "rollback":
            await self._store.set_run_status(
                run.run_id, outcome.state, result=outcome.output, error=outcome.error
            )
        others = [r for r in self._threads.get(run.thread_id, ()) if r is not run]
        await self._store.update_thread(
            run.thread_id, status="busy" if others else _thread_status(outcome.state)
        )

    def _finish(self, run: ActiveRun, duration_s: float) -> None:
        # Order matters: release the thread (next run's turn) and the capacity slot, then
        # wake waiters, so a joiner that sees ``done`` also sees the worker's new load.
        outcome = run.outcome
        state: RunState = outcome.state if outcome is not None else "cancelled"
        handed_over = run.stop_action in ("release", "lost")
        run.state = state
        self._release(run)
        run.events.close()
        run.done.set()
        self._metrics.set_gauges(self.running, self.queued)
        if handed_over:
            # Not ended: another worker carries the run on (and reports how it ends).
            log.info("run handed over", reason=run.stop_action, duration_s=round(duration_s, 3))
            return
        self._relay.end(run.run_id)
        self._metrics.run_finished(run.entry.graph_id, state, duration_s)
        self._announce(run, state)
        log.info("run ended", status=state, duration_s=round(duration_s, 3))
        self._notify("ended", run)
        if self._retention_s > 0 and not run.ephemeral:
            self._finished[run.run_id] = run
            self._expiry[run.run_id] = asyncio.get_running_loop().call_later(
                self._retention_s, self._forget, run.run_id
            )

    def _release(self, run: ActiveRun) -> None:
        self._active.pop(run.run_id, None)
        queue = self._threads.get(run.thread_id)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(run)
            if queue:
                queue[0].turn.set()
            else:
                del self._threads[run.thread_id]

    def _forget(self, run_id: str) -> None:
        self._finished.pop(run_id, None)
        handle = self._expiry.pop(run_id, None)
        if handle is not None:
            handle.cancel()

    def _notify(self, event: str, run: ActiveRun) -> None:
        for listener in self.listeners:
            try:
                listener(event, run)
            except Exception:
                log.exception("run listener failed", run_event=event)

    def _announce(self, run: ActiveRun, state: RunState) -> None:
        now = datetime.now(UTC).isoformat()
        self._feed.publish(
            run.entry.graph_id,
            {
                "type": "status",
                "execution_id": run.run_id,
                "thread_id": run.thread_id,
                "status": simple_status(state),
                "at": now,
            },
        )
        if not run.ephemeral:
            self._relay.cache_execution(run.run_id, checkpoints.execution_view(run, state, now))


def _thread_status(state: RunState) -> ThreadStatus:
    if state == "error" or state == "timeout":
        return "error"
    if state in ("interrupted", "paused"):
        return "interrupted"
    return "idle"
