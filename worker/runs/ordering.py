"""Ordering: the runs of one thread execute one at a time, in admission order.

Each thread has a first-in-first-out queue of its admitted runs. The run at the head holds
the thread's ``turn``; when it leaves the queue (it ended, or was undone), the next run's
``turn`` is set. Every method is synchronous, so no await can come between looking at a
queue and changing it.
"""

from __future__ import annotations

import contextlib
from collections import deque

from worker.runs.active import ActiveRun


class ThreadQueues:
    """The queue of admitted, unended runs of each thread."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[ActiveRun]] = {}

    def runs(self, thread_id: str) -> list[ActiveRun]:
        """The thread's admitted runs, the one whose turn it is first."""
        return list(self._queues.get(thread_id, ()))

    def busy(self, thread_id: str) -> list[ActiveRun]:
        """The thread's runs that no stop was asked for."""
        return [r for r in self._queues.get(thread_id, ()) if r.stop_action is None]

    def others(self, run: ActiveRun) -> bool:
        """Whether runs other than ``run`` are queued on its thread."""
        return any(r is not run for r in self._queues.get(run.thread_id, ()))

    def append(self, run: ActiveRun) -> None:
        """Queue ``run`` last on its thread; it gets the turn at once if it is alone."""
        queue = self._queues.setdefault(run.thread_id, deque())
        queue.append(run)
        if len(queue) == 1:
            run.turn.set()

    def remove(self, run: ActiveRun) -> None:
        """Take ``run`` off its thread and give the turn to the next run (idempotent)."""
        queue = self._queues.get(run.thread_id)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(run)
        if queue:
            queue[0].turn.set()
        else:
            del self._queues[run.thread_id]
