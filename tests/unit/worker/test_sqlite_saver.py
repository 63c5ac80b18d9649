"""The SQLite store's checkpointer: LangGraph's conformance suite, concurrent use, and reads
that never wait for a write."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, MessagesState, StateGraph

from tests.checkpointer_checks import conformance, exercise_concurrently
from worker.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(f"sqlite:///{tmp_path}/w.sqlite")
    await store.open()
    yield store
    await store.close()


async def _ours() -> AsyncIterator[BaseCheckpointSaver[Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(f"sqlite:///{tmp}/w.sqlite")
        await store.open()
        try:
            yield store.checkpointer
        finally:
            await store.close()


async def _langgraphs() -> AsyncIterator[BaseCheckpointSaver[Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncSqliteSaver.from_conn_string(f"{tmp}/w.sqlite") as saver:
            await saver.setup()
            yield saver


async def test_it_passes_every_conformance_test_langgraphs_own_sqlite_saver_passes() -> None:
    reference = await conformance("AsyncSqliteSaver", _langgraphs)
    ours = await conformance("PooledSqliteSaver", _ours)
    assert reference, "the suite ran no test"
    passed = [test for test, error in reference.items() if error is None]
    assert {test: ours.get(test, "not run") for test in passed} == dict.fromkeys(passed)


async def test_many_threads_written_read_and_deleted_at_once(store: SqliteStore) -> None:
    await exercise_concurrently(store.checkpointer)


async def test_a_file_written_by_either_saver_reads_the_same_in_the_other(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    async with AsyncSqliteSaver.from_conn_string(str(path)) as theirs:
        await theirs.setup()
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"x": [1, 2]}
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        first = await theirs.aput(config, checkpoint, {"source": "input"}, {})
        await theirs.aput_writes(first, [("x", 3)], task_id="k")
    store = SqliteStore(f"sqlite:///{path}")
    await store.open()
    try:
        ours = store.checkpointer
        got = await ours.aget_tuple(config)
        assert got is not None
        assert got.checkpoint["channel_values"] == {"x": [1, 2]}
        assert got.pending_writes == [("k", "x", 3)]
        second = empty_checkpoint()
        await ours.aput(first, second, {"source": "loop"}, {})
    finally:
        await store.close()
    async with AsyncSqliteSaver.from_conn_string(str(path)) as theirs:
        listed = [t async for t in theirs.alist(config)]
        assert [t.config["configurable"]["checkpoint_id"] for t in listed] == [
            second["id"],
            checkpoint["id"],
        ]
        assert listed[0].parent_config == first


async def test_reads_go_on_while_a_write_waits_for_the_file(store: SqliteStore) -> None:
    saver = store.checkpointer
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    first = await saver.aput(config, empty_checkpoint(), {}, {})
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction
        writing = asyncio.ensure_future(saver.aput(first, empty_checkpoint(), {}, {}))
        # LangGraph's saver would hold its one lock for the waiting write: no read either.
        got = await asyncio.wait_for(saver.aget_tuple(config), timeout=5)
        assert got is not None
        assert got.config == first
        assert not writing.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writing, timeout=10)
    finally:
        other.close()
    assert len([t async for t in saver.alist(config)]) == 2


async def test_the_synchronous_interface_serves_other_threads_only(store: SqliteStore) -> None:
    saver = store.checkpointer
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}

    def use() -> list[str]:
        written = saver.put(config, empty_checkpoint(), {}, {})
        saver.put_writes(written, [("x", 1)], task_id="k")
        got = saver.get_tuple(config)
        assert got is not None
        assert got.pending_writes == [("k", "x", 1)]
        ids = [t.config["configurable"]["checkpoint_id"] for t in saver.list(config)]
        saver.delete_thread("t")
        return ids

    ids = await asyncio.to_thread(use)
    assert len(ids) == 1
    assert await saver.aget_tuple(config) is None
    with pytest.raises(asyncio.InvalidStateError):
        saver.get_tuple(config)


@pytest.mark.parametrize("saver_of", ["ours", "langgraphs"])
async def test_a_tasks_saved_write_carries_the_message_id_the_state_gave_it(
    store: SqliteStore, tmp_path: Path, saver_of: str
) -> None:
    """The messages reducer gives a message without an id its id when the superstep's writes
    are applied, just after the task's write is handed to the saver: what is saved has it
    (the official server's history shows it in the task's result)."""

    def reply(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(content="hi")]}  # no id: the reducer gives one

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    async with contextlib.AsyncExitStack() as stack:
        saver: BaseCheckpointSaver[Any] = store.checkpointer
        if saver_of == "langgraphs":
            saver = await stack.enter_async_context(
                AsyncSqliteSaver.from_conn_string(str(tmp_path / "theirs.sqlite"))
            )
        graph = builder.compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "t"}}
        # Streamed as the worker streams graphs: so, the task's write reaches the saver
        # before the superstep's writes are applied.
        question = {"messages": [HumanMessage(content="q", id="h")]}
        async for _ in graph.astream(question, config, stream_mode="values", subgraphs=True):
            pass
        given = (await graph.aget_state(config)).values["messages"][-1].id
        assert given
        history = [t async for t in saver.alist(config)]
    written = [
        v for t in history for _, channel, v in t.pending_writes or () if channel == "messages"
    ]
    replies = [m for value in written for m in value if m.content == "hi"]
    assert [m.id for m in replies] == [given]
