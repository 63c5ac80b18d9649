"""The SQLite store's connections: one hop per function, group commit, concurrent reads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from worker.store.sqlite_conn import ReaderPool, ThreadConnection, Writer, connector

pytestmark = pytest.mark.timeout(30)


@dataclass
class Traced:
    """Statements run on the writer's connection, as its trace callback saw them."""

    statements: list[str] = field(default_factory=list)

    def __call__(self, sql: str) -> None:
        self.statements.append(sql)

    def count(self, prefix: str) -> int:
        return sum(1 for s in self.statements if s.startswith(prefix))


@pytest.fixture
def path(tmp_path: Path) -> str:
    db = str(tmp_path / "w.sqlite")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    return db


@pytest.fixture
async def traced() -> Traced:
    return Traced()


@pytest.fixture
async def writer(path: str, traced: Traced) -> AsyncIterator[Writer]:
    conn = await ThreadConnection.open(
        connector(path, synchronous="normal", trace=traced), "test-writer"
    )
    writer = Writer(conn)
    yield writer
    await writer.close()


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        return n

    return op


def rows(path: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT n FROM t ORDER BY n")]


class Gate:
    """An op that holds the writer's thread until opened, to let writes queue behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: sqlite3.Connection) -> None:
        self.entered.set()
        self.release.wait(10)


async def hold(writer: Writer) -> tuple[Gate, asyncio.Future[None]]:
    gate = Gate()
    held = asyncio.ensure_future(writer.write(gate))
    await asyncio.to_thread(gate.entered.wait, 10)
    return gate, held


async def test_writes_queued_behind_a_transaction_commit_together(
    writer: Writer, path: str, traced: Traced
) -> None:
    gate, held = await hold(writer)
    queued = [asyncio.ensure_future(writer.write(insert(n))) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    begins = traced.count("BEGIN")
    gate.release.set()
    assert await asyncio.gather(*queued) == [1, 2, 3]
    await held
    assert traced.count("BEGIN") == begins + 1, "the three queued writes share one commit"
    assert rows(path) == [1, 2, 3]


async def test_a_failing_write_undoes_only_itself(writer: Writer, path: str) -> None:
    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (20)")
        raise ValueError("no")

    gate, held = await hold(writer)
    first = asyncio.ensure_future(writer.write(insert(1)))
    failing = asyncio.ensure_future(writer.write(fails))
    duplicate = asyncio.ensure_future(writer.write(insert(1)))  # primary key taken
    last = asyncio.ensure_future(writer.write(insert(3)))
    gate.release.set()
    await held
    assert await first == 1
    with pytest.raises(ValueError, match="no"):
        await failing
    with pytest.raises(sqlite3.IntegrityError):
        await duplicate
    assert await last == 3
    assert rows(path) == [1, 3]


async def test_a_write_that_cannot_commit_fails_every_caller_and_writes_nothing(
    path: str,
) -> None:
    def impatient() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 50")
        return conn

    writer = Writer(await ThreadConnection.open(impatient, "test-writer"))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the file's write lock
        results = await asyncio.gather(
            writer.write(insert(1)), writer.write(insert(2)), return_exceptions=True
        )
        assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
        other.execute("ROLLBACK")
        assert await writer.write(insert(3)) == 3
    finally:
        other.close()
        await writer.close()
    assert rows(path) == [3]


async def test_a_cancelled_caller_still_gets_its_write_committed(writer: Writer, path: str) -> None:
    gate, held = await hold(writer)
    caller = asyncio.ensure_future(writer.write(insert(7)))
    await asyncio.sleep(0)
    caller.cancel()
    gate.release.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await caller
    await writer.write(insert(8))  # after the cancelled one: it was committed before
    assert rows(path) == [7, 8]


async def test_close_waits_for_queued_writes_and_then_refuses(path: str) -> None:
    writer = Writer(
        await ThreadConnection.open(connector(path, synchronous="normal"), "test-writer")
    )
    gate, held = await hold(writer)
    queued = asyncio.ensure_future(writer.write(insert(5)))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(writer.close())
    await asyncio.sleep(0)
    gate.release.set()
    await closing
    assert await queued == 5
    await held
    assert rows(path) == [5]
    with pytest.raises(RuntimeError, match="closed"):
        await writer.write(insert(6))


async def test_reads_go_on_while_the_writer_is_held(writer: Writer, path: str) -> None:
    await writer.write(insert(1))
    readers = ReaderPool(
        [
            await ThreadConnection.open(
                connector(path, synchronous="normal", read_only=True), f"test-reader-{i}"
            )
            for i in range(2)
        ]
    )
    try:
        gate, held = await hold(writer)

        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

        # Both readers at once, neither waiting for the writer's transaction.
        reads = asyncio.gather(*(readers.run(count) for _ in range(4)))
        assert await asyncio.wait_for(reads, 5) == [1] * 4
        gate.release.set()
        await held

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (9)")

        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await readers.run(write)
    finally:
        await readers.close()


async def test_a_cancelled_flusher_leaves_no_caller_waiting(writer: Writer) -> None:
    gate, held = await hold(writer)
    queued = asyncio.ensure_future(writer.write(insert(1)))  # behind the held batch
    await asyncio.sleep(0)
    flusher = writer._flushing
    assert flusher is not None
    flusher.cancel()  # as at loop teardown
    await asyncio.sleep(0)
    gate.release.set()
    with pytest.raises(RuntimeError, match="outcome unknown"):
        await asyncio.wait_for(held, timeout=10)
    with pytest.raises(RuntimeError, match="before writing"):
        await asyncio.wait_for(queued, timeout=10)
