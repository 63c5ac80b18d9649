"""A run request's body as the ``RunSpec`` the run service executes."""

from __future__ import annotations

from worker.api.schemas import RunCreateBody
from worker.runs.model import RunSpec


def spec_from_body(body: RunCreateBody, *, stateless: bool) -> RunSpec:
    """The run ``body`` asks for; ``stateless``: it names no thread.

    A stateless run whose thread is deleted at its end checkpoints only at exit unless it
    asks for a ``durability``: intermediate checkpoints of a thread about to be deleted
    would be written for nothing (one resumed after its worker died starts over instead).
    """
    checkpoint = body.checkpoint
    on_completion = body.on_completion or ("delete" if stateless else "keep")
    durability = body.durability_mode()
    if durability is None and stateless and on_completion == "delete":
        durability = "exit"
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
        durability=durability,
        checkpoint_id=body.checkpoint_id or (checkpoint.checkpoint_id if checkpoint else None),
        checkpoint_ns=checkpoint.checkpoint_ns if checkpoint else None,
        after_seconds=body.after_seconds,
        on_completion=on_completion,
        webhook=body.webhook,
    )
