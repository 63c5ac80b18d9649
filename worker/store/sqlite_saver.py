"""LangGraph checkpoints in the SQLite store's file, read concurrently and written together.

The tables and their encoding are those of LangGraph's own SQLite saver (``checkpoints`` and
``writes``; the serializer's typed blobs; metadata as JSON), so a file written by either saver
reads the same in the other. What differs is how they are reached. LangGraph's
``AsyncSqliteSaver`` serialises every call on one connection behind one asyncio lock, one
event-loop hop per statement: while one call waits for the file, every other run of the
worker waits for it. Here reads take any idle connection of a small pool, and each call is a
single hop (``sqlite_conn.ThreadConnection``); writes go to the store's ``Writer``, which
commits the writes that queued up meanwhile in one transaction, each call returning once its
own write is committed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite.utils import load_pending_writes, search_where

from worker.store.sqlite_conn import ReaderPool, Writer

T = TypeVar("T")

# LangGraph's SQLite saver's tables, for a file that has none yet.
_TABLES = (
    """CREATE TABLE IF NOT EXISTS checkpoints (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        parent_checkpoint_id TEXT,
        type TEXT,
        checkpoint BLOB,
        metadata BLOB,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
    )""",
    """CREATE TABLE IF NOT EXISTS writes (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        task_path TEXT NOT NULL DEFAULT '',
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        type TEXT,
        value BLOB,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    )""",
)
_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
)
_WRITES = (
    "SELECT task_id, channel, type, value, task_path, idx FROM writes "
    "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
)
# Checkpoints ``alist`` reads per hop: a long history is never held in memory at once.
LIST_PAGE = 32

Row = tuple[str, str, str, str | None, str | None, bytes, bytes | None]


def _setup(conn: sqlite3.Connection) -> None:
    for statement in _TABLES:
        conn.execute(statement)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(writes)")}
    if "task_path" not in columns:  # a file from before LangGraph added the column
        conn.execute("ALTER TABLE writes ADD COLUMN task_path TEXT NOT NULL DEFAULT ''")


def _put(row: tuple[Any, ...], conn: sqlite3.Connection) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO checkpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row
    )


def _put_writes(sql: str, rows: list[tuple[Any, ...]], conn: sqlite3.Connection) -> None:
    conn.executemany(sql, rows)


def _delete_thread(thread_id: str, conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM checkpoints WHERE thread_id = ?", (thread_id,))
    conn.execute("DELETE FROM writes WHERE thread_id = ?", (thread_id,))


# The latest checkpoint of each namespace of a thread (checkpoint ids grow with time).
_LATEST = (
    "(checkpoint_ns, checkpoint_id) IN (SELECT checkpoint_ns, max(checkpoint_id) "
    "FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns)"
)


def _keep_latest(thread_id: str, conn: sqlite3.Connection) -> None:
    """Within the writer's transaction: writes first, while the checkpoints they belong to
    still say which are the latest."""
    conn.execute(f"DELETE FROM writes WHERE thread_id = ? AND NOT {_LATEST}", (thread_id,) * 2)
    conn.execute(f"DELETE FROM checkpoints WHERE thread_id = ? AND NOT {_LATEST}", (thread_id,) * 2)
    conn.execute(
        "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?", (thread_id,)
    )


class PooledSqliteSaver(BaseCheckpointSaver[str]):
    """LangGraph's checkpointer interface on the store's connections (see the module).

    Create it on the event loop that will use it. The synchronous methods are for other
    threads only (as LangGraph's async savers): they run the async ones on that loop.
    """

    def __init__(
        self, writer: Writer, readers: ReaderPool, *, serde: SerializerProtocol | None = None
    ) -> None:
        super().__init__(serde=serde)
        self._writer = writer
        self._readers = readers
        self._loop = asyncio.get_running_loop()

    async def setup(self) -> None:
        """Create the tables if the file has none (callers serialise this between processes)."""
        await self._writer.write(_setup)

    # reading

    def _tuple(self, row: Row, writes: list[Any]) -> CheckpointTuple:
        thread_id, checkpoint_ns, checkpoint_id, parent_id, type_, blob, metadata = row
        return CheckpointTuple(
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            self.serde.loads_typed((cast(str, type_), blob)),
            cast(CheckpointMetadata, json.loads(metadata) if metadata is not None else {}),
            (
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": checkpoint_ns,
                        "checkpoint_id": parent_id,
                    }
                }
                if parent_id
                else None
            ),
            load_pending_writes(writes, self.serde),
        )

    def _read_one(self, config: RunnableConfig, conn: sqlite3.Connection) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        if checkpoint_id := get_checkpoint_id(config):
            cur = conn.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
                "AND checkpoint_id = ?",
                (thread_id, checkpoint_ns, checkpoint_id),
            )
        else:
            cur = conn.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
                "ORDER BY checkpoint_id DESC LIMIT 1",
                (thread_id, checkpoint_ns),
            )
        row = cur.fetchone()
        if row is None:
            return None
        writes = conn.execute(_WRITES, (row[0], row[1], row[2])).fetchall()
        return self._tuple(row, writes)

    def _read_page(
        self,
        where: str,
        params: Sequence[Any],
        after: tuple[str, str] | None,
        count: int,
        conn: sqlite3.Connection,
    ) -> list[CheckpointTuple]:
        clauses, args = ([where] if where else []), list(params)
        if after is not None:
            # Keyset paging in the listing's order: newest id first, then namespace.
            clauses.append("(checkpoint_id < ? OR (checkpoint_id = ? AND checkpoint_ns < ?))")
            args += [after[0], after[0], after[1]]
        sql = f"SELECT {_COLUMNS} FROM checkpoints"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY checkpoint_id DESC, checkpoint_ns DESC LIMIT ?"
        rows = conn.execute(sql, [*args, count]).fetchall()
        return [
            self._tuple(row, conn.execute(_WRITES, (row[0], row[1], row[2])).fetchall())
            for row in rows
        ]

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on one of the saver's read-only connections, in one hop: for
        reads of its tables beyond LangGraph's interface (a thread's storage report)."""
        return await self._readers.run(fn)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._readers.run(functools.partial(self._read_one, config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        where, params = search_where(config, filter, before)
        where = where.removeprefix("WHERE ")
        left = limit
        after: tuple[str, str] | None = None
        while left is None or left > 0:
            count = LIST_PAGE if left is None else min(left, LIST_PAGE)
            page = await self._readers.run(
                functools.partial(self._read_page, where, params, after, count)
            )
            for tup in page:
                yield tup
            if len(page) < count:
                return
            if left is not None:
                left -= len(page)
            last = page[-1].config["configurable"]
            after = (last["checkpoint_id"], last["checkpoint_ns"])

    # writing

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable["checkpoint_ns"]
        type_, blob = self.serde.dumps_typed(checkpoint)
        encoded = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False)
        row = (
            thread_id,
            checkpoint_ns,
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            type_,
            blob,
            encoded.encode("utf-8", "ignore"),
        )
        await self._writer.write(functools.partial(_put, row))
        return {
            "configurable": {
                "thread_id": configurable["thread_id"],
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        # Encoded after one turn of the event loop, as LangGraph's own savers encode after
        # their first hop: LangGraph schedules this call and then applies the superstep's
        # writes, and the messages reducer gives a message without an id its id in place.
        # Saved after that, a task's write carries the id its message has in the state (a
        # task's result in the history shows it, as on the official server).
        await asyncio.sleep(0)
        # Special channels (errors, interrupts) replace an earlier write of the same task;
        # ordinary ones are written once.
        verb = "REPLACE" if all(w[0] in WRITES_IDX_MAP for w in writes) else "IGNORE"
        sql = (
            f"INSERT OR {verb} INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
            "task_path, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        configurable = config["configurable"]
        rows = [
            (
                str(configurable["thread_id"]),
                str(configurable["checkpoint_ns"]),
                str(configurable["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        await self._writer.write(functools.partial(_put_writes, sql, rows))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._writer.write(functools.partial(_delete_thread, str(thread_id)))

    async def akeep_latest(self, thread_id: str) -> None:
        """Drop every checkpoint of the thread but the latest of each namespace (with the
        writes of those dropped), and make the latest ones roots: one transaction, so a
        crash leaves the thread either as it was or pruned."""
        await self._writer.write(functools.partial(_keep_latest, str(thread_id)))

    def get_next_version(self, current: str | None, channel: None) -> str:
        # LangGraph's SQLite format (a zero-padded counter, then a random tie-breaker), so
        # versions in files written by either saver keep comparing as strings.
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # the synchronous interface, for other threads

    def _from_other_thread(self, name: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self._loop:
            raise asyncio.InvalidStateError(
                f"{name}() blocks: on the event loop, call the async a{name}() instead"
            )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self._from_other_thread("get_tuple")
        return asyncio.run_coroutine_threadsafe(self.aget_tuple(config), self._loop).result()

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        self._from_other_thread("list")
        listing = self.alist(config, filter=filter, before=before, limit=limit)

        async def following() -> CheckpointTuple:
            return await anext(listing)

        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(following(), self._loop).result()
            except StopAsyncIteration:
                return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        self._from_other_thread("put")
        return asyncio.run_coroutine_threadsafe(
            self.aput(config, checkpoint, metadata, new_versions), self._loop
        ).result()

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._from_other_thread("put_writes")
        asyncio.run_coroutine_threadsafe(
            self.aput_writes(config, writes, task_id, task_path), self._loop
        ).result()

    def delete_thread(self, thread_id: str) -> None:
        self._from_other_thread("delete_thread")
        asyncio.run_coroutine_threadsafe(self.adelete_thread(thread_id), self._loop).result()
