"""A run request's body as the ``RunSpec`` the run service executes."""

from __future__ import annotations

from worker.api.schemas import RunCreateBody
from worker.runs.model import RunSpec


def spec_from_body(body: RunCreateBody, *, stateless: bool) -> RunSpec:
    checkpoint = body.checkpoint
    return RunSpec(
        input=body.input,
        command=body.command.model_dump(exclude_none=True) if body.command else None,
        config=body.config or {},
        context=body.context,
        stream_mode=body.stream_mode,
        stream_subgraphs=body.stream_subgraphs,
        stream_resumable=body.stream_resumable,
        interrupt_before=body.interrupt_before,
        interrupt_after=body.interrupt_after,
        durability=body.durability_mode(),
        checkpoint_id=body.checkpoint_id or (checkpoint.checkpoint_id if checkpoint else None),
        checkpoint_ns=checkpoint.checkpoint_ns if checkpoint else None,
        after_seconds=body.after_seconds,
        on_completion=body.on_completion or ("delete" if stateless else "keep"),
        webhook=body.webhook,
    )
