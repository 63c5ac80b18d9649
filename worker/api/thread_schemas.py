"""Request bodies of the thread extras (patch, count, prune, history, state at a checkpoint)
and of bulk run cancellation, as ``langgraph-api``'s OpenAPI document defines them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from worker.api.schemas import Body, CheckpointBody, CommandBody, ThreadTTLBody, present

ThreadStatusFilter = Literal["idle", "busy", "interrupted", "error"]


class StateUpdateStep(Body):
    """One update of a superstep: values written as ``as_node`` would have."""

    values: Any = None
    command: CommandBody | None = None
    as_node: str


class Superstep(Body):
    updates: list[StateUpdateStep]


class ThreadPatchBody(Body):
    metadata: dict[str, Any] | None = None
    ttl: ThreadTTLBody | None = None

    _not_null = field_validator("ttl", mode="before")(present)


class ThreadCountBody(Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: ThreadStatusFilter | None = None


class ThreadPruneBody(Body):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


class HistoryBody(Body):
    """``POST /threads/{id}/history``; ``before`` is a checkpoint id or a checkpoint."""

    limit: int = Field(1, ge=1, le=1000)  # the official server's default
    before: str | CheckpointBody | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointBody | None = None


class StateAtCheckpointBody(Body):
    checkpoint: CheckpointBody
    subgraphs: bool = False


class RunsCancelBody(Body):
    """Either ``status`` alone, or ``thread_id`` with ``run_ids``."""

    status: Literal["pending", "running", "all"] | None = None
    thread_id: str | None = None
    run_ids: list[str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> RunsCancelBody:
        if self.status is not None:
            if self.thread_id is not None or self.run_ids is not None:
                raise ValueError("give either status, or thread_id and run_ids, not both")
        elif self.thread_id is None or self.run_ids is None:
            raise ValueError("give either status, or thread_id and run_ids")
        return self
