"""The run manager: the one object that holds this worker's runs, put together from its parts.

Admission is two-phase so that nothing is written for a run the worker then refuses: a slot
from ``admission`` (or ``AtCapacity``), then ``admit()`` applies the thread's multitask
strategy synchronously, the caller persists the run, then ``start()`` launches its task.
The synchronous steps never await, so two requests cannot both see a free slot or an idle
thread.

The parts, each in its own module: ``admission`` (capacity, draining), ``table`` and
``ordering`` (active runs, one at a time per thread), ``stopping``, ``driver`` (a run's
task), ``persistence``, ``retention`` (finished runs kept for replay), ``announce`` (the
live feed and the relay cache) and ``observers`` (who hears that a run started or ended).

A run made with ``stream_resumable`` is relayed from its start (with Redis), so its stream
can be replayed by any worker after this one stopped; other runs are relayed only when a
reader elsewhere asks.

A run claimed from a stopped worker (``recovered``) resumes from its last checkpoint: the
graph is invoked with no input on its thread, so the nodes it had finished do not run
again. At shutdown, runs that outlived the drain are handed back (their lease expired at
once) rather than failed: another worker claims and resumes them.
"""

from __future__ import annotations

import asyncio
import functools

from worker.graphs import GraphEntry
from worker.metrics import WorkerMetrics
from worker.runs import stopping
from worker.runs.active import ActiveRun, RunNotActiveError, ThreadBusyError
from worker.runs.admission import Admission, Reservation
from worker.runs.announce import Announcer
from worker.runs.driver import RunDriver
from worker.runs.events import GraphFeed, RunEvents, first_seq
from worker.runs.model import CancelAction, MultitaskStrategy, RunSpec
from worker.runs.observers import RunObservers
from worker.runs.outbox import RunOutbox
from worker.runs.persistence import RunPersistence
from worker.runs.relay import RELAY_COMMAND, Relay
from worker.runs.retention import Retention
from worker.runs.table import RunTable
from worker.store.base import RunRecord, StopOnRecord, Store


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
        self._relay = relay or Relay()
        self._buffer_events = buffer_events
        self.admission = Admission(max_concurrency=max_concurrency, metrics=metrics)
        self.observers = RunObservers()
        self.outbox = RunOutbox()
        self._table = RunTable(lambda: metrics.set_gauges(self.running, self.queued))
        self._retention = Retention(retention_s)
        self._driver = RunDriver(
            table=self._table,
            persistence=RunPersistence(store=store, worker_id=worker_id, outbox=self.outbox),
            announcer=Announcer(feed=feed, relay=self._relay),
            observers=self.observers,
            retention=self._retention,
            relay=self._relay,
            metrics=metrics,
        )

    # admission (capacity itself is ``admission``'s)

    @property
    def load(self) -> int:
        """Runs admitted and not ended (running or queued), plus reserved slots."""
        return self.admission.load

    @property
    def max_concurrency(self) -> int:
        return self.admission.max_concurrency

    @property
    def draining(self) -> bool:
        return self.admission.draining

    def thread_active(self, thread_id: str) -> list[ActiveRun]:
        return self._table.threads.runs(thread_id)

    def thread_runs(self, thread_id: str) -> list[ActiveRun]:
        """The thread's active runs and its finished ones still retained for replay."""
        return [*self._table.threads.runs(thread_id), *self._retention.of_thread(thread_id)]

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

        The run takes over ``slot``. ``recovered``: the run was claimed from a stopped
        worker and resumes (see module).
        """
        busy = self._table.threads.busy(record.thread_id)
        if busy and strategy == "reject":
            raise ThreadBusyError(
                f"thread {record.thread_id} has an active run ({busy[0].run_id}); "
                "multitask_strategy=reject"
            )
        # Any previous replay buffer of the same run (a resumed execution) gives way.
        self._retention.forget(record.run_id)
        events = RunEvents(self._buffer_events, first_seq=first_seq(record.attempt))
        run = ActiveRun(record, spec, entry, events, ephemeral, recovered)
        self._table.add(run, slot)
        if strategy in ("interrupt", "rollback"):
            for other in busy:
                self.stop(other.run_id, strategy)
        return run

    def start(self, run: ActiveRun) -> None:
        if run.spec.stream_resumable and self._relay.enabled:
            # A resumable stream must outlive this worker (a deploy, a crash): its events go
            # to the relay from the first, not only once another worker asks for them.
            self.relay(run.run_id)
        # A run stopped before its task begins (between admit() and start(), while its
        # record was written, or one ended for a holder that died) stops as that task begins.
        run.task = asyncio.create_task(self._driver.drive(run), name=f"run-{run.run_id}")

    def abort(self, run: ActiveRun, *, keep_slot: bool = False) -> None:
        """Undo ``admit()`` for a run whose record could not be written; ``keep_slot``: its
        slot goes back to the caller's reservation (for the run made anew), not to admission."""
        self._table.remove(run, keep_slot=keep_slot)
        run.events.close()
        run.done.set()

    # lookup

    def get(self, run_id: str) -> ActiveRun | None:
        """An active run, or a finished one still retained for replay."""
        return self._table.get(run_id) or self._retention.get(run_id)

    @property
    def running(self) -> int:
        return self._table.running

    @property
    def queued(self) -> int:
        return self._table.queued

    @property
    def recorded_ids(self) -> list[str]:
        """Active runs whose record is written (``start()`` follows the write)."""
        return [r.run_id for r in self._table.runs() if r.task is not None]

    # stopping and draining

    def stop(self, run_id: str, action: CancelAction) -> ActiveRun:
        """Cancel, roll back or pause an active run (see ``stopping.request_stop``)."""
        return stopping.request_stop(self._table.get(run_id), run_id, action)

    def apply_command(self, run_id: str, action: str) -> bool:
        """A command sent by another worker (through the relay): a stop, or ``relay`` (a
        reader there follows the run); True when applied here."""
        if action == RELAY_COMMAND:
            return self.relay(run_id)
        if action not in stopping.REMOTE_ACTIONS:
            return False
        try:
            self.stop(run_id, action)  # type: ignore[arg-type]
        except RunNotActiveError:
            return False
        return True

    def relay(self, run_id: str) -> bool:
        """Relay the events of ``run_id`` (running or retained here) from now on, those held
        first, and its end if it has ended; True when this worker has the run."""
        run = self._table.get(run_id) or self._retention.get(run_id)
        if run is None:
            return False
        if run.events.relayed:
            return True
        self._relay.reset(run_id)  # an earlier execution's events are history
        run.events.relay_to(functools.partial(self._relay.publish, run_id))
        if run.done.is_set() and run.stop_action not in ("release", "lost"):
            self._relay.end(run_id, run.record.attempt)
        return True

    def stop_cancelled_on_record(self, run_id: str, action: StopOnRecord) -> bool:
        """Stop (``action``: interrupt or roll back) a run whose record another worker marked
        cancelled (its command did not reach this one), unless the run is already stopping or
        ending here; True if it was stopped now."""
        run = self._table.get(run_id)
        if run is None or run.done.is_set() or run.stop_action is not None:
            return False
        if run.outcome is not None:
            return False  # it ended here and is writing that: its record is its own
        self.stop(run_id, action)
        return True

    def lose(self, run_id: str) -> None:
        """Stop a run whose lease another worker now holds, writing nothing about it."""
        stopping.lose(self._table.get(run_id))

    def begin_drain(self) -> None:
        self.admission.begin_drain()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no run is active, at most ``timeout_s``; True when idle."""
        return await stopping.wait_done(self._table.runs(), timeout_s) or not self._table

    async def release_all(self) -> int:
        """Hand every active run back to the fleet unfinished (see ``stopping.hand_back``)."""
        return await stopping.hand_back(self._table.runs())

    async def close(self) -> None:
        """Hand back what still runs; drop retained runs."""
        await self.release_all()
        self._retention.close()
