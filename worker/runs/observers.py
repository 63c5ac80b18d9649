"""Run events for whoever reacts to them (webhooks, say): the service's observer interface.

A ``RunObserver`` hears that a run started, that it ended, or that the sweeper gave up on a
run whose workers kept stopping. Observers are called synchronously on the run's task and
must not block; one that raises is logged and the others still hear the event.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from worker.runs.active import ActiveRun
from worker.store.base import RunRecord

log = structlog.get_logger("worker.runs")


class RunObserver(Protocol):
    def run_started(self, run: ActiveRun) -> None:
        """``run`` got its turn and is now executing."""

    def run_ended(self, run: ActiveRun) -> None:
        """``run`` ended here (``run.state``, ``run.outcome``); not called for a hand-over."""

    def run_abandoned(self, record: RunRecord) -> None:
        """``record`` failed after ``WORKER_RUN_MAX_ATTEMPTS`` executions (already stored)."""


class RunObservers:
    """Every registered observer, each shielded from the others' failures."""

    def __init__(self) -> None:
        self._observers: list[RunObserver] = []

    def add(self, observer: RunObserver) -> None:
        self._observers.append(observer)

    def run_started(self, run: ActiveRun) -> None:
        for observer in self._observers:
            try:
                observer.run_started(run)
            except Exception:
                log.exception("run_observer_failed", run_event="started")

    def run_ended(self, run: ActiveRun) -> None:
        for observer in self._observers:
            try:
                observer.run_ended(run)
            except Exception:
                log.exception("run_observer_failed", run_event="ended")

    def run_abandoned(self, record: RunRecord) -> None:
        for observer in self._observers:
            try:
                observer.run_abandoned(record)
            except Exception:
                log.exception("run_observer_failed", run_event="abandoned")
