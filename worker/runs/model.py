"""What a run is asked to do (``RunSpec``) and how a run reads in each API."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import StreamMode
from pydantic import BaseModel, ConfigDict, Field

from worker.store.base import RunRecord, RunState

# Stream modes the SDK may request and the LangGraph mode that produces each ("events"
# comes from astream_events instead).
STREAM_MODES: dict[str, StreamMode | None] = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "messages": "messages",
    "messages-tuple": "messages",
    "events": None,
}
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
CancelAction = Literal["interrupt", "rollback", "pause"]


class RunSpec(BaseModel):
    """Everything the executor needs, as stored with the run (``RunRecord.kwargs``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: Any = None
    stream_mode: list[str] = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_id: str | None = None
    checkpoint_ns: str | None = None
    after_seconds: float | None = None
    on_completion: Literal["delete", "keep"] = "keep"
    webhook: str | None = None
    timeout_s: float | None = None


def run_kwargs(spec: RunSpec) -> dict[str, Any]:
    """``spec`` as stored with the run (``RunRecord.kwargs``): only what differs from defaults."""
    return spec.model_dump(mode="json", exclude_defaults=True)


# LangGraph Server statuses (the SDK's RunStatus): cancelled and paused runs read
# "interrupted", like a run waiting at interrupt().
_API_STATUS: dict[RunState, str] = {
    "pending": "pending",
    "running": "running",
    "success": "success",
    "error": "error",
    "timeout": "timeout",
    "interrupted": "interrupted",
    "cancelled": "interrupted",
    "paused": "interrupted",
}

# Statuses of the simple API (GET /executions/{id}).
_SIMPLE_STATUS: dict[RunState, str] = {
    "pending": "running",
    "running": "running",
    "success": "completed",
    "error": "failed",
    "timeout": "failed",
    "interrupted": "interrupted",
    "cancelled": "cancelled",
    "paused": "paused",
}


def api_status(state: RunState) -> str:
    return _API_STATUS[state]


def simple_status(state: RunState) -> str:
    return _SIMPLE_STATUS[state]


def run_view(record: RunRecord) -> dict[str, Any]:
    """A run as the LangGraph Server API shows it (``GET /threads/{t}/runs/{r}``; webhooks)."""
    return {
        "run_id": record.run_id,
        "thread_id": record.thread_id,
        "assistant_id": record.assistant_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "status": api_status(record.status),
        "metadata": record.metadata,
        "multitask_strategy": record.multitask_strategy,
        "kwargs": record.kwargs,
    }
