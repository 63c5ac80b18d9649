"""What a run tells beyond its own event log: the live feed of its graph, the relay cache.

Every event a run emits goes to its replayable log (``RunEvents``) and, when someone
listens, to its graph's WebSocket feed as an ``event`` frame. Every status change goes to
the feed as a ``status`` frame and, for a run that keeps a record, to the relay's copy of
its execution record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from worker import jsonutil
from worker.runs import executor
from worker.runs.active import ActiveRun
from worker.runs.events import GraphFeed
from worker.runs.execution import Execution
from worker.runs.model import simple_status
from worker.runs.relay import Relay
from worker.store.base import RunState


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Announcer:
    """Publishes a run's events and status changes; never blocks, never fails a run."""

    def __init__(
        self, *, feed: GraphFeed, relay: Relay, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._feed = feed
        self._relay = relay
        self._clock = clock

    def emitter(self, run: ActiveRun) -> executor.Emit:
        """The ``emit`` the executor calls for each of ``run``'s stream events."""
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

    def status(self, run: ActiveRun, state: RunState) -> None:
        """``run`` is now ``state``: tell the graph's feed and refresh the cached record."""
        now = self._clock()
        self._feed.publish(
            run.entry.graph_id,
            {
                "type": "status",
                "execution_id": run.run_id,
                "thread_id": run.thread_id,
                "status": simple_status(state),
                "at": now.isoformat(),
            },
        )
        if run.ephemeral:
            return
        outcome = run.outcome
        result, error = (outcome.output, outcome.error) if outcome is not None else (None, None)
        execution = Execution.of(run.record).changed(state, result, error, now)
        self._relay.cache_execution(run.run_id, execution.view())
