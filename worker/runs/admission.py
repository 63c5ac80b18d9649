"""Admission: this worker's capacity, and the only place a run is refused for it.

A run needs a slot from ``Admission.reserve()`` before anything is read or written for it;
``reserve()`` raises ``AtCapacity`` (503 ``at_capacity``) when every slot is taken or the
worker drains. A slot is taken synchronously, so two requests cannot both see the last one
free. The run admitted with a slot ``claim()``s it and keeps it until the run ends; a slot no
run claimed goes back when its ``reservation()`` block exits. ``reservations(n)`` takes n
slots or none, for a request that starts n runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from worker.errors import AtCapacity
from worker.metrics import WorkerMetrics


class Reservation:
    """One capacity slot. ``release()`` gives it back, once; ``claim()`` hands it to a run."""

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back = give_back
        self.claimed = False
        self.released = False

    def claim(self) -> None:
        """The slot now belongs to a run, which releases it when it ends."""
        self.claimed = True

    def unclaim(self) -> None:
        """The run that claimed the slot was never started: the holder has it again."""
        self.claimed = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._give_back()


class Admission:
    """Owns the slots of one worker: ``max_concurrency`` of them, none while draining."""

    def __init__(self, *, max_concurrency: int, metrics: WorkerMetrics) -> None:
        self.max_concurrency = max_concurrency
        self._metrics = metrics
        self._held = 0
        self.draining = False

    @property
    def load(self) -> int:
        """Slots held: runs admitted and not ended (running or queued), plus reservations."""
        return self._held

    @property
    def free(self) -> int:
        return max(0, self.max_concurrency - self._held)

    def begin_drain(self) -> None:
        """Refuse every new run from now on (the worker is stopping)."""
        self.draining = True

    def reserve(self) -> Reservation:
        """A slot, or ``AtCapacity``; never awaits."""
        if self.draining:
            self._metrics.rejected.inc()
            raise AtCapacity("worker is draining; retry on another worker")
        if self._held >= self.max_concurrency:
            self._metrics.rejected.inc()
            raise AtCapacity(f"worker is at capacity ({self._held}/{self.max_concurrency} runs)")
        self._held += 1
        return Reservation(self._give_back)

    @contextlib.contextmanager
    def reservation(self) -> Iterator[Reservation]:
        """``reserve()`` that gives the slot back on exit unless a run claimed it."""
        with self.reservations(1) as (slot,):
            yield slot

    @contextlib.contextmanager
    def reservations(self, count: int) -> Iterator[list[Reservation]]:
        """``count`` slots, or ``AtCapacity`` and none (a batch of runs starts whole or not
        at all, so its 503 keeps the promise that nothing was done); each slot no run
        claimed goes back on exit."""
        if count > 1 and not self.draining and count > self.free:
            self._metrics.rejected.inc()
            raise AtCapacity(
                f"worker has {self.free} free slots for {count} runs "
                f"({self._held}/{self.max_concurrency} runs)"
            )
        slots: list[Reservation] = []
        try:
            for _ in range(count):
                slots.append(self.reserve())
            yield slots
        finally:
            for slot in slots:
                if not slot.claimed:
                    slot.release()

    def _give_back(self) -> None:
        self._held -= 1
