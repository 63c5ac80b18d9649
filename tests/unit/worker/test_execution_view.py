"""The simple API's execution record: one shape, whatever shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from worker.runs.execution import Execution
from worker.store.base import RunRecord, RunState

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 2, tzinfo=UTC)


def _record(status: RunState, result: Any = None, error: Any = None) -> RunRecord:
    return RunRecord(
        run_id="e1",
        thread_id="t1",
        assistant_id="a1",
        graph_id="pipeline",
        status=status,
        created_at=CREATED,
        updated_at=CREATED,
        metadata={},
        multitask_strategy="reject",
        kwargs={},
        worker_id="w1",
        result=result,
        error=error,
    )


@pytest.mark.parametrize(
    ("status", "shown_status", "shown_result"),
    [
        ("pending", "running", None),
        ("running", "running", None),  # a result is shown only once the execution ended
        ("success", "completed", {"x": 1}),
        ("error", "failed", {"x": 1}),
    ],
)
def test_view_of_a_record(status: RunState, shown_status: str, shown_result: Any) -> None:
    view = Execution.of(_record(status, result={"x": 1})).view()
    assert view == {
        "execution_id": "e1",
        "status": shown_status,
        "result": shown_result,
        "error": None,
        "graph_id": "pipeline",
        "thread_id": "t1",
        "created_at": CREATED.isoformat(),
        "updated_at": CREATED.isoformat(),
    }


def test_an_error_reads_as_type_and_message() -> None:
    error = {"error": "ValueError", "message": "boom"}
    assert Execution.of(_record("error", error=error)).view()["error"] == "ValueError: boom"


def test_a_status_change_keeps_the_identity_and_moves_updated_at() -> None:
    changed = Execution.of(_record("running")).changed("success", {"y": 2}, None, LATER)
    view = changed.view()
    assert (view["status"], view["result"], view["updated_at"]) == (
        "completed",
        {"y": 2},
        LATER.isoformat(),
    )
    assert (view["execution_id"], view["created_at"]) == ("e1", CREATED.isoformat())
