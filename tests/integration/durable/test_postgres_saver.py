"""The Postgres store's checkpointer: LangGraph's conformance suite, concurrent use, and
calls that never wait for each other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tests.checkpointer_checks import conformance, exercise_concurrently
from tests.support import fresh_schema
from worker.store.postgres import PostgresStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def reference_url(postgres_dsn: str) -> Iterator[str]:
    """A schema of the test's own for LangGraph's saver, apart from the store's."""
    with fresh_schema(postgres_dsn) as url:
        yield url


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url)
    await store.open()
    yield store
    await store.close()


async def test_it_passes_every_conformance_test_langgraphs_own_saver_passes(
    pg_url: str, reference_url: str
) -> None:
    async def ours() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        store = PostgresStore(pg_url)
        await store.open()
        try:
            yield store.checkpointer
        finally:
            await store.close()

    async def langgraphs() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        options = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": None}
        async with AsyncConnectionPool(reference_url, kwargs=options, open=False) as pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            yield saver

    reference = await conformance("AsyncPostgresSaver", langgraphs)
    mine = await conformance("PooledPostgresSaver", ours)
    assert reference, "the suite ran no test"
    passed = [test for test, error in reference.items() if error is None]
    assert {test: mine.get(test, "not run") for test in passed} == dict.fromkeys(passed)


async def test_many_threads_written_read_and_deleted_at_once(store: PostgresStore) -> None:
    await exercise_concurrently(store.checkpointer)


async def test_a_call_waiting_on_the_database_holds_up_no_other(
    store: PostgresStore, pg_url: str
) -> None:
    saver = store.checkpointer
    config = {"configurable": {"thread_id": "held", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    await saver.aput(config, checkpoint, {}, {})
    other_config = {"configurable": {"thread_id": "free", "checkpoint_ns": ""}}
    await saver.aput(other_config, empty_checkpoint(), {}, {})
    async with await psycopg.AsyncConnection.connect(pg_url) as other:
        async with other.transaction():
            # Another session locks the held thread's checkpoint row: writing it again waits.
            await other.execute("SELECT 1 FROM checkpoints WHERE thread_id = 'held' FOR UPDATE")
            writing = asyncio.ensure_future(saver.aput(config, checkpoint, {"again": 1}, {}))
            # LangGraph's saver would hold its one lock for the waiting write: no read either.
            got = await asyncio.wait_for(saver.aget_tuple(other_config), timeout=5)
            assert got is not None
            assert not writing.done()
        await asyncio.wait_for(writing, timeout=10)
    got = await saver.aget_tuple(config)
    assert got is not None
    assert got.metadata.get("again") == 1


@pytest.mark.parametrize(
    "value",
    [
        {"count": 3, "items": ["a", "b"]},  # plainly small: encoded in place
        {"count": 3, "items": ["x" * 100] * 600},  # large: encoded on LangGraph's thread
    ],
    ids=["small", "large"],
)
async def test_what_it_writes_langgraphs_own_saver_reads_back(
    store: PostgresStore, pg_url: str, value: dict[str, Any]
) -> None:
    saver = store.checkpointer
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"state": value, "step": 2, "note": None}
    versions = {"state": 1, "step": 1, "note": 1}
    checkpoint["channel_versions"] = versions
    saved = await saver.aput(config, checkpoint, {"source": "loop", "step": 2}, versions)
    await saver.aput_writes(saved, [("state", value), ("step", 3)], "task-1")
    options = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": None}
    async with AsyncConnectionPool(pg_url, kwargs=options, open=False) as pool:
        got = await AsyncPostgresSaver(pool).aget_tuple(saved)  # type: ignore[arg-type]
    assert got is not None
    assert got.checkpoint["channel_values"] == {"state": value, "step": 2, "note": None}
    assert got.metadata["step"] == 2
    assert got.parent_config is None
    assert got.pending_writes == [("task-1", "state", value), ("task-1", "step", 3)]


async def _synchronous_commit(conn: psycopg.AsyncConnection[Any]) -> str:
    cur = await conn.execute("SHOW synchronous_commit")
    row = await cur.fetchone()
    assert row is not None
    return str(row["synchronous_commit"] if isinstance(row, dict) else row[0])


async def test_synchronous_commit_is_what_the_worker_asks_on_every_connection(
    pg_url: str,
) -> None:
    """``WORKER_POSTGRES_SYNCHRONOUS_COMMIT``: every pool connection (the records' and the
    checkpointer's) commits as asked; ``server`` leaves the server's own setting."""
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        server = await _synchronous_commit(conn)
    for asked, expected in (("off", "off"), ("local", "local"), ("server", server)):
        store = PostgresStore(pg_url, pool_size=2, synchronous_commit=asked)
        await store.open()
        try:
            async with store.pool.connection() as first, store.pool.connection() as second:
                assert [await _synchronous_commit(c) for c in (first, second)] == [expected] * 2
        finally:
            await store.close()
    with pytest.raises(ValueError, match="synchronous_commit"):
        PostgresStore(pg_url, synchronous_commit="sometimes")
