"""The SQLite store on a temporary file (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from worker.store import create_store
from worker.store.assistants import new_assistant
from worker.store.base import RunRecord, ThreadExistsError, ThreadQuery
from worker.store.sqlite import SqliteStore, Synchronous, sqlite_path
from worker.store.sqlite_serial import Serial, serial


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(f"sqlite:///{tmp_path}/nested/w.sqlite", clock=Clock())
    await store.open()
    yield store
    await store.close()


def _run(run_id: str, thread_id: str, status: str = "pending", worker: str = "w1") -> RunRecord:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return RunRecord(
        run_id=run_id,
        thread_id=thread_id,
        assistant_id="a",
        graph_id="g",
        status=status,  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
        metadata={},
        multitask_strategy="enqueue",
        kwargs={"input": {"x": 1}},
        worker_id=worker,
    )


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./data/w.sqlite", "./data/w.sqlite"),
        ("sqlite:////abs/w.sqlite", "/abs/w.sqlite"),
        ("sqlite://:memory:", ":memory:"),
    ],
)
def test_sqlite_path(url: str, path: str) -> None:
    assert sqlite_path(url) == path


async def test_threads(store: SqliteStore) -> None:
    await store.create_thread("t1", {"team": "a", "n": 1})
    await store.create_thread("t2", {"team": "b"})
    with pytest.raises(ThreadExistsError):
        await store.create_thread("t1", {})
    await store.update_thread("t1", status="busy", metadata={"graph_id": "g"})
    thread = await store.get_thread("t1")
    assert thread is not None
    assert thread.status == "busy"
    assert thread.metadata == {"team": "a", "n": 1, "graph_id": "g"}
    found = await store.search_threads(ThreadQuery(metadata={"team": "a"}))
    assert [t.thread_id for t in found] == ["t1"]
    assert [t.thread_id for t in await store.search_threads(ThreadQuery(metadata={"n": 1}))] == [
        "t1"
    ]
    newest_first = await store.search_threads(ThreadQuery())
    assert [t.thread_id for t in newest_first] == ["t2", "t1"]
    assert [t.thread_id for t in await store.search_threads(ThreadQuery(status="idle"))] == ["t2"]
    assert await store.delete_thread("t1") is True
    assert await store.get_thread("t1") is None


async def test_runs(store: SqliteStore) -> None:
    await store.create_thread("t", {})
    await store.create_run(_run("r1", "t"))
    await store.create_run(_run("r2", "t", worker="w2"))
    await store.set_run_status("r1", "success", result={"v": 1})
    r1 = await store.get_run("r1")
    assert r1 is not None
    assert (r1.status, r1.result, r1.kwargs) == ("success", {"v": 1}, {"input": {"x": 1}})
    assert [r.run_id for r in await store.list_runs("t", limit=10, offset=0)] == ["r2", "r1"]
    assert [r.run_id for r in await store.list_runs("t", limit=10, offset=0, status="success")] == [
        "r1"
    ]
    elsewhere = await store.active_runs_elsewhere("t", "w1")
    assert [r.run_id for r in elsewhere] == ["r2"]
    assert await store.active_runs_elsewhere("t", "w2") == []
    assert await store.delete_run("r1") is True
    assert await store.get_run("r1") is None


async def test_assistants_keep_their_creation_time(store: SqliteStore) -> None:
    first = await store.create_assistant(
        new_assistant(assistant_id="a", graph_id="g", now=datetime(2025, 1, 1, tzinfo=UTC))
    )
    again = await store.create_assistant(
        new_assistant(assistant_id="a", graph_id="g", now=datetime(2025, 2, 1, tzinfo=UTC)),
        if_exists="do_nothing",
    )
    assert first.created_at == again.created_at


@pytest.mark.parametrize(
    ("synchronous", "expected"),
    [("normal", 1), ("full", 2)],  # SQLite's numbers for NORMAL and FULL
)
async def test_synchronous_reaches_both_connections(
    tmp_path: Path, synchronous: Synchronous, expected: int
) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path}/w.sqlite", synchronous=synchronous)
    await store.open()
    try:
        assert await store.pragma("synchronous") == (expected, expected)
        assert await store.pragma("journal_mode") == ("wal", "wal")
    finally:
        await store.close()


async def test_synchronous_defaults_to_normal(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path}/w.sqlite")
    await store.open()
    try:
        assert isinstance(store, SqliteStore)
        assert await store.pragma("synchronous") == (1, 1)
    finally:
        await store.close()


async def test_pragma_refuses_what_is_not_a_name(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="not a pragma name"):
        await store.pragma("synchronous = OFF")


async def test_methods_interleaving_with_other_commits_never_see_a_locked_file(
    store: SqliteStore,
) -> None:
    # Reads, writes and a second connection's commits (as the checkpointer's) all at once:
    # a write that began while another method's read statement was open on an older
    # snapshot used to fail at once with "database is locked".
    threads = [await store.create_thread(f"t{i}", {}) for i in range(4)]
    other = await aiosqlite.connect(store.path, isolation_level=None)
    await other.execute("CREATE TABLE IF NOT EXISTS other_writes (n INTEGER)")

    async def commit_elsewhere() -> None:
        for n in range(150):
            await other.execute("INSERT INTO other_writes VALUES (?)", (n,))

    async def read() -> None:
        for _ in range(150):
            await store.search_threads(ThreadQuery(limit=10))
            await store.get_thread(threads[0].thread_id)

    async def write(thread_id: str) -> None:
        for n in range(150):
            await store.update_thread(thread_id, status="busy", metadata={"n": n})

    try:
        await asyncio.wait_for(
            asyncio.gather(
                commit_elsewhere(), read(), read(), *(write(t.thread_id) for t in threads)
            ),
            timeout=60,
        )
    finally:
        await other.close()
    for thread in threads:
        record = await store.get_thread(thread.thread_id)
        assert record is not None
        assert record.metadata == {"n": 149}


class _Records:
    """A store-like owner of a connection and its Serial lock."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._serial = Serial(lambda: self.conn)

    @serial
    async def insert_then_fail(self, release: asyncio.Event) -> None:
        await self.conn.execute("INSERT INTO t VALUES (1)")
        await release.wait()
        raise RuntimeError("failed half way")

    @serial
    async def insert_and_commit(self, n: int) -> None:
        await self.conn.execute("INSERT INTO t VALUES (?)", (n,))
        await self.conn.commit()


async def test_a_method_that_fails_half_way_leaves_nothing_for_the_next(tmp_path: Path) -> None:
    conn = await aiosqlite.connect(str(tmp_path / "s.sqlite"), isolation_level="IMMEDIATE")
    try:
        await conn.execute("CREATE TABLE t (n INTEGER)")
        records = _Records(conn)
        release = asyncio.Event()
        failing = asyncio.ensure_future(records.insert_then_fail(release))
        await asyncio.sleep(0)
        # The second method waits for the first instead of committing its half-done insert.
        committing = asyncio.ensure_future(records.insert_and_commit(2))
        await asyncio.sleep(0.05)
        assert not committing.done()
        release.set()
        with pytest.raises(RuntimeError, match="half way"):
            await failing
        await asyncio.wait_for(committing, timeout=10)
        assert await conn.execute_fetchall("SELECT n FROM t") == [(2,)]
        assert not conn.in_transaction
    finally:
        await conn.close()
