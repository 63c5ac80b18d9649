"""Pruning a thread to its latest checkpoints on both stores' savers: one transaction that
keeps the thread's state (values, next tasks, interrupts, subgraphs' namespaces) and what
the latest checkpoints need, and nothing else."""

from __future__ import annotations

import contextlib
import operator
import sqlite3
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from worker.store import Store
from worker.store.checkpoint_ops import KeepsLatest, keep_latest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class State(TypedDict, total=False):
    notes: Annotated[list[str], operator.add]
    blob: dict[str, Any]
    answer: str


def _graph(saver: Any) -> Any:
    def inner(state: State) -> State:
        return {"notes": ["inner"], "blob": {"big": list(range(200))}}

    sub = StateGraph(State)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")

    def ask(state: State) -> State:
        return {"answer": str(interrupt("ok?")), "notes": ["asked"]}

    builder = StateGraph(State)
    builder.add_node("sub", sub.compile())
    builder.add_node("ask", ask)
    builder.add_edge(START, "sub")
    builder.add_edge("sub", "ask")
    return builder.compile(checkpointer=saver)


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


async def test_keep_latest_is_the_savers_own_and_keeps_the_state(
    store: Store, store_url: str
) -> None:
    saver = store.checkpointer
    assert isinstance(saver, KeepsLatest)
    graph = _graph(saver)
    for thread_id in ("t", "other"):
        await graph.ainvoke({"notes": ["start"]}, _config(thread_id), durability="sync")
    before = await graph.aget_state(_config("t"), subgraphs=True)
    assert len([s async for s in graph.aget_state_history(_config("t"))]) > 2

    await keep_latest(saver, "t")

    history = [s async for s in graph.aget_state_history(_config("t"))]
    after = await graph.aget_state(_config("t"), subgraphs=True)
    assert len(history) == 1
    assert history[0].parent_config is None
    assert (after.values, after.next) == (before.values, before.next)
    assert [i.value for i in after.interrupts] == ["ok?"]
    # The other thread keeps its whole history.
    assert len([s async for s in graph.aget_state_history(_config("other"))]) > 2
    if store_url.startswith("postgres"):
        _assert_only_the_latest_blobs(store_url, "t")
    else:
        _assert_no_orphan_writes(store_url.removeprefix("sqlite:///"), "t")
    # The pruned thread resumes from its latest checkpoint as the unpruned one does.
    out = await graph.ainvoke(Command(resume="yes"), _config("t"))
    assert out == await graph.ainvoke(Command(resume="yes"), _config("other"))
    assert (out["answer"], out["blob"]) == ("yes", {"big": list(range(200))})


def _assert_only_the_latest_blobs(url: str, thread_id: str) -> None:
    """Every blob of the thread is one a latest checkpoint names; no write is left over."""
    with psycopg.connect(url, autocommit=True) as conn:
        blobs = conn.execute(
            "SELECT checkpoint_ns, channel, version FROM checkpoint_blobs WHERE thread_id = %s",
            (thread_id,),
        ).fetchall()
        named = conn.execute(
            "SELECT checkpoint_ns, key, value FROM checkpoints, "
            "jsonb_each_text(checkpoint -> 'channel_versions') WHERE thread_id = %s",
            (thread_id,),
        ).fetchall()
        writes = conn.execute(
            "SELECT count(*) FROM checkpoint_writes w WHERE thread_id = %s AND NOT EXISTS ("
            "SELECT 1 FROM checkpoints c WHERE c.thread_id = w.thread_id "
            "AND c.checkpoint_ns = w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id)",
            (thread_id,),
        ).fetchone()
    assert blobs
    assert set(blobs) <= set(named)
    assert writes == (0,)


def _assert_no_orphan_writes(path: str, thread_id: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM writes w WHERE thread_id = ? AND NOT EXISTS (SELECT 1 FROM "
            "checkpoints c WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = "
            "w.checkpoint_ns AND c.checkpoint_id = w.checkpoint_id)",
            (thread_id,),
        ).fetchone()
        kept = conn.execute(
            "SELECT count(*) FROM writes WHERE thread_id = ?", (thread_id,)
        ).fetchone()
    assert orphans == (0,)
    assert kept is not None
    assert kept[0] > 0  # the pending interrupt's write of the latest checkpoint stays
