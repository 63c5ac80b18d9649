"""The simple API's execution record, the one shape every part of the worker shows it in.

``GET /executions/{id}`` answers ``Execution.view()``; the relay caches the same body when an
execution changes status, and when the sweeper gives one up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.runs.model import simple_status
from worker.store.base import ACTIVE_RUN_STATES, RunRecord, RunState


@dataclass(frozen=True, slots=True)
class Execution:
    """An execution (a run seen through the simple API); ``view()`` is its JSON body.

    ``result`` is shown only once the execution has ended; ``error`` reads
    ``"<ErrorType>: <message>"``.
    """

    execution_id: str
    state: RunState
    result: Any
    error: dict[str, Any] | None
    graph_id: str
    thread_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: RunRecord) -> Execution:
        return cls(
            execution_id=record.run_id,
            state=record.status,
            result=record.result,
            error=record.error,
            graph_id=record.graph_id,
            thread_id=record.thread_id,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    def changed(
        self, state: RunState, result: Any, error: dict[str, Any] | None, at: datetime
    ) -> Execution:
        """This execution after a status change at ``at``."""
        return dataclasses.replace(self, state=state, result=result, error=error, updated_at=at)

    def view(self) -> dict[str, Any]:
        error = self.error
        return {
            "execution_id": self.execution_id,
            "status": simple_status(self.state),
            "result": None if self.state in ACTIVE_RUN_STATES else self.result,
            "error": f"{error.get('error')}: {error.get('message')}" if error else None,
            "graph_id": self.graph_id,
            "thread_id": self.thread_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
