"""Following a thread: the events of every run on it, one run after another, live.

A thread runs one run at a time, so its runs' events never interleave. Each run's events
come between a ``metadata`` event naming it (``{run_id, attempt}``) and one saying it is
done (``{status: "run_done", run_id}``), as the official server's thread stream has them.

Event ids are ``{run_id}:{seq}`` (``{run_id}:start`` and ``{run_id}:done`` for the two
metadata events): a client resuming with ``Last-Event-ID`` gets the rest of that run, then
every later run of the thread this worker still retains, then the live ones. A stream
joined without one starts with what happens next, as the official server's does.

Runs are followed where they execute: the LB sends every request naming a thread to the
worker that holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from worker import jsonutil
from worker.runs.active import ActiveRun
from worker.runs.manager import RunManager
from worker.store.base import Store

_START, _DONE = "start", "done"


@dataclass(frozen=True, slots=True)
class ThreadEvent:
    name: str
    data: bytes
    event_id: str
    lifecycle: bool = False  # a run's start or done metadata


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a resumed stream continues: after ``seq`` of ``run_id`` (-1: from its start;
    None: the run is done)."""

    run_id: str
    seq: int | None

    @staticmethod
    def parse(last_event_id: str | None) -> Cursor | None:
        if not last_event_id or ":" not in last_event_id:
            return None
        run_id, _, position = last_event_id.rpartition(":")
        if position == _DONE:
            return Cursor(run_id, None)
        if position == _START:
            return Cursor(run_id, -1)
        try:
            return Cursor(run_id, int(position))
        except ValueError:
            return None


class ThreadFollower:
    """Yields a thread's events (``None`` after each quiet ``idle_s``: a heartbeat cue)."""

    def __init__(
        self, manager: RunManager, store: Store, thread_id: str, *, idle_s: float, poll_s: float
    ) -> None:
        self._manager = manager
        self._store = store
        self._thread_id = thread_id
        self._idle_s = idle_s
        self._poll_s = poll_s
        self._seen: set[str] = set()

    async def events(self, cursor: Cursor | None) -> AsyncIterator[ThreadEvent | None]:
        if cursor is not None:
            async for event in self._replay(cursor):
                yield event
        else:
            # Joined without a cursor: runs already over are not replayed; runs already going
            # are followed from now on.
            self._seen.update(r.run_id for r in self._manager.thread_runs(self._thread_id))
            for run in self._manager.thread_active(self._thread_id):
                self._seen.add(run.run_id)
                retained = run.events.retained()
                last = retained[-1].seq if retained else -1
                # One that has not begun yet is followed whole, its start included.
                async for event in self._run(run, last, announce=not retained):
                    yield event
        async for event in self._live():
            yield event

    async def _replay(self, cursor: Cursor) -> AsyncIterator[ThreadEvent | None]:
        """The rest of the cursor's run, then later runs of the thread still retained."""
        records = await self._store.list_runs(self._thread_id, limit=100, offset=0)
        records.reverse()  # oldest first
        ids = [r.run_id for r in records]
        later = ids[ids.index(cursor.run_id) + 1 :] if cursor.run_id in ids else []
        self._seen.update(ids[: len(ids) - len(later)])
        first = self._manager.get(cursor.run_id)
        if first is not None and cursor.seq is not None:
            async for event in self._run(first, cursor.seq, announce=cursor.seq < 0):
                yield event
        for run_id in later:
            run = self._manager.get(run_id)
            self._seen.add(run_id)
            if run is not None:
                async for event in self._run(run, -1, announce=True):
                    yield event

    async def _live(self) -> AsyncIterator[ThreadEvent | None]:
        quiet_s = 0.0
        while True:
            # Finished runs count too: a short run may start and end between two looks.
            fresh = [
                r for r in self._manager.thread_runs(self._thread_id) if r.run_id not in self._seen
            ]
            if fresh:
                quiet_s = 0.0
                run = min(fresh, key=lambda r: r.record.created_at)
                self._seen.add(run.run_id)
                async for event in self._run(run, -1, announce=True):
                    yield event
                continue
            # New runs are noticed by looking: a thread's runs are few and the table is
            # in memory, so a short poll costs little.
            await asyncio.sleep(self._poll_s)
            quiet_s += self._poll_s
            if quiet_s >= self._idle_s:
                quiet_s = 0.0
                yield None

    async def _run(
        self, run: ActiveRun, after_seq: int, *, announce: bool
    ) -> AsyncIterator[ThreadEvent | None]:
        run_id = run.run_id
        if announce:
            data = jsonutil.dumps({"run_id": run_id, "attempt": run.record.attempt})
            yield ThreadEvent("metadata", data, f"{run_id}:{_START}", lifecycle=True)
        async for event in run.events.follow(after_seq, idle_s=self._idle_s):
            if event is None:
                yield None
            else:
                yield ThreadEvent(event.name, event.data, f"{run_id}:{event.seq}")
        data = jsonutil.dumps({"status": "run_done", "run_id": run_id})
        yield ThreadEvent("metadata", data, f"{run_id}:{_DONE}", lifecycle=True)
