"""The SQLite store on a temporary file (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from worker.store import create_store
from worker.store.assistants import new_assistant
from worker.store.base import RunRecord, ThreadExistsError, ThreadQuery
from worker.store.sqlite import SqliteStore, Synchronous, sqlite_path


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
