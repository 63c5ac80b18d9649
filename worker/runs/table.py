"""The runs of this worker from admission until they end, by id and by thread.

A run enters with the capacity slot it was admitted with and queued on its thread (see
``ordering``); ``remove()`` takes it out of both and gives the slot back, so a waiter that
sees the run ended also sees the worker's new load.
"""

from __future__ import annotations

from collections.abc import Callable

from worker.runs.active import ActiveRun
from worker.runs.admission import Reservation
from worker.runs.ordering import ThreadQueues


class RunTable:
    """Active runs; ``on_change`` is called after each change (it refreshes the gauges)."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._runs: dict[str, ActiveRun] = {}
        self._slots: dict[int, Reservation] = {}  # by id(run): a run id can be run again
        self.threads = ThreadQueues()
        self._on_change = on_change

    def add(self, run: ActiveRun, slot: Reservation) -> None:
        """Enter ``run``, which takes over ``slot``; synchronous (see ``admission``)."""
        slot.claim()
        self._runs[run.run_id] = run
        self._slots[id(run)] = slot
        self.threads.append(run)
        self._on_change()

    def remove(self, run: ActiveRun, *, keep_slot: bool = False) -> None:
        """Take ``run`` out, hand its thread's turn on and give its slot back (idempotent);
        ``keep_slot``: back to its reservation, unclaimed, rather than to admission."""
        if self._runs.get(run.run_id) is run:
            del self._runs[run.run_id]
        slot = self._slots.pop(id(run), None)
        self.threads.remove(run)
        if slot is not None:
            if keep_slot:
                slot.unclaim()
            else:
                slot.release()
        self._on_change()

    def get(self, run_id: str) -> ActiveRun | None:
        return self._runs.get(run_id)

    def runs(self) -> list[ActiveRun]:
        return list(self._runs.values())

    def __bool__(self) -> bool:
        return bool(self._runs)

    @property
    def running(self) -> int:
        return sum(1 for r in self._runs.values() if r.state == "running")

    @property
    def queued(self) -> int:
        return sum(1 for r in self._runs.values() if r.state == "pending")
