"""Checks any LangGraph checkpointer of the store must pass: LangGraph's conformance suite,
judged against a reference saver, and many calls at once on many threads."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

SaverFactory = Callable[[], AsyncIterator[BaseCheckpointSaver[Any]]]


async def conformance(name: str, factory: SaverFactory) -> dict[str, str | None]:
    """Every test of LangGraph's conformance suite run against the savers ``factory``
    yields: ``{capability/test: None if passed, else the error}``."""
    outcomes: dict[str, str | None] = {}

    def record(capability: str, test: str, passed: bool, error: str | None) -> None:
        outcomes[f"{capability}/{test}"] = None if passed else (error or "failed")

    registered = checkpointer_test(name=name)(factory)
    await validate(registered, progress=ProgressCallbacks(on_test_result=record))
    return outcomes


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def _write_thread(saver: BaseCheckpointSaver[Any], thread_id: str, steps: int) -> list[str]:
    """A chain of ``steps`` checkpoints, each with two pending writes; their ids, oldest first."""
    ids: list[str] = []
    parent: str | None = None
    version = None
    for step in range(steps):
        version = saver.get_next_version(version, None)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"step": step, "blob": [thread_id, step]}
        checkpoint["channel_versions"] = {"step": version, "blob": version}
        written = await saver.aput(
            _config(thread_id, parent),
            checkpoint,
            {"step": step, "source": "loop"},
            {"step": version, "blob": version},
        )
        await saver.aput_writes(written, [("a", step), ("b", [step])], task_id=f"task-{step}")
        parent = written["configurable"]["checkpoint_id"]
        ids.append(parent)
        await asyncio.sleep(0)
    return ids


async def _read_around(saver: BaseCheckpointSaver[Any], thread_ids: list[str], rounds: int) -> None:
    rng = random.Random(7)
    for _ in range(rounds):
        thread_id = rng.choice(thread_ids)
        await saver.aget_tuple(_config(thread_id))
        async for _tup in saver.alist(_config(thread_id), limit=3):
            pass


async def exercise_concurrently(
    saver: BaseCheckpointSaver[Any], *, threads: int = 8, steps: int = 6
) -> None:
    """Many threads written, read, listed and deleted at the same time; then every thread
    reads back exactly as written (or is gone, if it was deleted)."""
    names = [f"thread-{i}" for i in range(threads)]
    written = await asyncio.gather(
        *(_write_thread(saver, name, steps) for name in names),
        *(_read_around(saver, names, steps * 4) for _ in range(3)),
    )
    chains = dict(zip(names, written[:threads], strict=True))
    doomed = names[::3]
    await asyncio.gather(
        *(saver.adelete_thread(name) for name in doomed),
        _read_around(saver, names, steps * 4),
        *(_write_thread(saver, f"late-{i}", 2) for i in range(2)),
    )
    for name in names:
        listed = [tup async for tup in saver.alist(_config(name))]
        if name in doomed:
            assert listed == [], f"{name} was deleted"
            assert await saver.aget_tuple(_config(name)) is None
            continue
        ids = chains[name]
        assert [t.config["configurable"]["checkpoint_id"] for t in listed] == ids[::-1]
        for step, tup in enumerate(reversed(listed)):
            assert tup.checkpoint["channel_values"] == {"step": step, "blob": [name, step]}
            assert tup.metadata["step"] == step
            parent = tup.parent_config or {"configurable": {}}
            assert parent["configurable"].get("checkpoint_id") == (ids[step - 1] if step else None)
            assert sorted((w[1], w[2]) for w in tup.pending_writes or ()) == [
                ("a", step),
                ("b", [step]),
            ]
        latest = await saver.aget_tuple(_config(name))
        assert latest is not None
        assert latest.config["configurable"]["checkpoint_id"] == ids[-1]
