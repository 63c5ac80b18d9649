"""Whole-thread operations on LangGraph checkpoints, for any checkpointer.

``BaseCheckpointSaver`` declares ``copy_thread`` and ``prune`` but LangGraph's savers do not
all implement them, so both are built here from what every saver has (``alist``, ``aput``,
``aput_writes``, ``adelete_thread``); pruning to the latest checkpoints uses the saver's own
one-transaction ``akeep_latest`` when it has one (the stores' savers do).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncGenerator
from typing import Any, Protocol, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple


async def _tuples(saver: BaseCheckpointSaver[Any], thread_id: str) -> list[CheckpointTuple]:
    """Every checkpoint of the thread, all namespaces, oldest first."""
    found: list[CheckpointTuple] = []
    # Closed explicitly: a saver may hold its lock and a cursor while a listing is open.
    listing = saver.alist({"configurable": {"thread_id": thread_id}})
    try:
        async for tup in listing:
            found.append(tup)
    finally:
        if isinstance(listing, AsyncGenerator):
            await listing.aclose()
    found.reverse()
    return found


async def _put(
    saver: BaseCheckpointSaver[Any], thread_id: str, tup: CheckpointTuple, *, parent: bool
) -> None:
    """Write ``tup`` (and its pending writes) under ``thread_id``.

    ``parent=False`` writes it as a root checkpoint (no parent), as pruning keeps it.
    """
    configurable = tup.config["configurable"]
    parent_id = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    target: RunnableConfig = {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            **({"checkpoint_id": parent_id} if parent and parent_id else {}),
        }
    }
    checkpoint = tup.checkpoint
    written = await saver.aput(
        target, checkpoint, tup.metadata, dict(checkpoint["channel_versions"])
    )
    by_task: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for task_id, channel, value in tup.pending_writes or ():
        by_task[task_id].append((channel, value))
    for task_id, writes in by_task.items():
        await saver.aput_writes(written, writes, task_id)


async def copy_checkpoints(
    saver: BaseCheckpointSaver[Any],
    source_thread_id: str,
    target_thread_id: str,
    *,
    target: BaseCheckpointSaver[Any] | None = None,
) -> int:
    """Copy every checkpoint (and pending write) of one thread to another, on ``saver`` or
    from it to ``target``; how many."""
    tuples = await _tuples(saver, source_thread_id)
    for tup in tuples:
        await _put(target or saver, target_thread_id, tup, parent=True)
    return len(tuples)


@runtime_checkable
class KeepsLatest(Protocol):
    """A saver that prunes a thread to its latest checkpoints itself, in one transaction
    (both stores' savers)."""

    async def akeep_latest(self, thread_id: str) -> None: ...


async def keep_latest(saver: BaseCheckpointSaver[Any], thread_id: str) -> None:
    """Drop every checkpoint of the thread but the latest of each namespace, which become
    roots; the thread's state (values, next tasks, pending interrupts) stays what it was.

    The stores' savers do it in one transaction (``KeepsLatest``). For any other saver the
    latest ones are read, the thread's checkpoints deleted and the latest written back as
    roots: a crash between those steps would lose the thread's checkpoints.
    """
    if isinstance(saver, KeepsLatest):
        await saver.akeep_latest(thread_id)
        return
    latest: dict[str, CheckpointTuple] = {}
    for tup in await _tuples(saver, thread_id):
        latest[tup.config["configurable"].get("checkpoint_ns", "")] = tup
    await saver.adelete_thread(thread_id)
    for tup in latest.values():
        await _put(saver, thread_id, tup, parent=False)
