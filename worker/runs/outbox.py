"""What a run's status changes send to the webhook outbox: the service's event sources.

An ``EventSource`` (the webhooks package has one) says which ``WebhookEvent``s a change
causes; ``RunPersistence`` hands them to the store with the status write itself, so the
outbox holds an event exactly when the change it reports is on record. Sources are called
synchronously, before the write, and must not block or do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog

from worker.runs.active import ActiveRun
from worker.store.base import RunRecord
from worker.store.webhooks import WebhookEvent

log = structlog.get_logger("worker.runs")


class EventSource(Protocol):
    def started(self, run: ActiveRun) -> Sequence[WebhookEvent]:
        """Events of ``run`` starting to execute."""

    def ended(self, run: ActiveRun) -> Sequence[WebhookEvent]:
        """Events of ``run`` ending here (``run.outcome`` is set)."""

    def abandoned(self, record: RunRecord) -> Sequence[WebhookEvent]:
        """Events of ``record`` failed by the sweeper after too many attempts."""


class RunOutbox:
    """Every event source; one that raises is logged and its events are left out."""

    def __init__(self) -> None:
        self._sources: list[EventSource] = []

    def add(self, source: EventSource) -> None:
        self._sources.append(source)

    def started(self, run: ActiveRun) -> list[WebhookEvent]:
        return self._collect("started", lambda s: s.started(run))

    def ended(self, run: ActiveRun) -> list[WebhookEvent]:
        return self._collect("ended", lambda s: s.ended(run))

    def abandoned(self, record: RunRecord) -> list[WebhookEvent]:
        return self._collect("abandoned", lambda s: s.abandoned(record))

    def _collect(self, change: str, call: _Call) -> list[WebhookEvent]:
        events: list[WebhookEvent] = []
        for source in self._sources:
            try:
                events += call(source)
            except Exception:
                log.exception("run_event_source_failed", run_event=change)
        return events


class _Call(Protocol):
    def __call__(self, source: EventSource, /) -> Sequence[WebhookEvent]: ...
