"""Which webhook events a run's changes cause, and what they carry (an ``EventSource``).

Registered hooks and ``WORKER_WEBHOOK_URLS`` get ``graph.started``, ``graph.completed``,
``graph.failed`` (errors, timeouts, runs abandoned by the sweeper), ``graph.interrupted``
(``interrupt()``, paused) and ``graph.cancelled``; ``data`` is the run as ``GET
/threads/{t}/runs/{r}`` shows it, plus ``values`` and ``error`` once it ended. A run's own
``webhook`` gets one ``run.webhook`` event when the run ends, in LangGraph Platform's shape:
the run plus ``status``, ``run_ended_at``, ``values`` and ``error`` (``webhook_sent_at`` is
added when sent).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from worker.runs.active import ActiveRun
from worker.runs.model import api_status, run_view
from worker.store.base import RunRecord, RunState
from worker.store.webhooks import Target, WebhookEvent

EVENT_TYPES = (
    "graph.started",
    "graph.completed",
    "graph.failed",
    "graph.interrupted",
    "graph.cancelled",
)
RUN_WEBHOOK_EVENT = "run.webhook"
TEST_EVENT = "webhook.test"

_EVENT_BY_STATE: dict[RunState, str] = {
    "success": "graph.completed",
    "error": "graph.failed",
    "timeout": "graph.failed",
    "interrupted": "graph.interrupted",
    "paused": "graph.interrupted",
    "cancelled": "graph.cancelled",
}


def new_event_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebhookEvents:
    """Builds the events of run changes; ``config_urls`` are the hooks fixed by settings."""

    def __init__(
        self,
        config_urls: Sequence[str],
        *,
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = new_event_id,
    ) -> None:
        self._config = tuple(Target("config", url) for url in config_urls)
        self._clock = clock
        self._new_id = new_id

    def _event(
        self,
        event_type: str,
        run_id: str,
        data: dict[str, Any],
        now: datetime,
        targets: tuple[Target, ...],
        *,
        to_hooks: bool = True,
    ) -> WebhookEvent:
        return WebhookEvent(self._new_id(), event_type, run_id, data, now, targets, to_hooks)

    def started(self, run: ActiveRun) -> Sequence[WebhookEvent]:
        now = self._clock()
        data = run_view(run.record) | {"status": "running", "updated_at": now.isoformat()}
        return [self._event("graph.started", run.run_id, data, now, self._config)]

    def ended(self, run: ActiveRun) -> Sequence[WebhookEvent]:
        outcome = run.outcome
        if outcome is None:
            return []
        error = outcome.error
        return self._ended(run.record, outcome.state, outcome.output, error, run.spec.webhook)

    def abandoned(self, record: RunRecord) -> Sequence[WebhookEvent]:
        webhook = record.kwargs.get("webhook")
        url = webhook if isinstance(webhook, str) and webhook else None
        return self._ended(record, "error", None, record.error, url)

    def _ended(
        self,
        record: RunRecord,
        state: RunState,
        values: Any,
        error: Any,
        webhook: str | None,
    ) -> list[WebhookEvent]:
        now = self._clock()
        data = run_view(record) | {
            "status": api_status(state),
            "updated_at": now.isoformat(),
            "values": values,
            "error": error,
        }
        events = [self._event(_EVENT_BY_STATE[state], record.run_id, data, now, self._config)]
        if webhook:
            run_data = data | {"run_ended_at": now.isoformat()}
            target = (Target("run", webhook),)
            events.append(
                self._event(RUN_WEBHOOK_EVENT, record.run_id, run_data, now, target, to_hooks=False)
            )
        return events

    def test(self, hook_id: str) -> WebhookEvent:
        """A ``webhook.test`` event for one hook (``POST /webhooks/{id}/test``)."""
        now = self._clock()
        data = {"message": "a test event from graphfleet", "webhook_id": hook_id}
        return WebhookEvent(self._new_id(), TEST_EVENT, None, data, now, hook_only=hook_id)
