"""LangGraph's Postgres checkpointer with its calls running side by side.

``AsyncPostgresSaver`` holds one asyncio lock around every call, even when it was given a
pool: a worker's runs then checkpoint one call at a time, each waiting for the round trips
of all the calls before it. Given a pool, nothing needs that lock -- each call checks out a
connection of its own, and Postgres keeps concurrent transactions apart -- so this saver
takes a pool connection per call and no lock.

LangGraph encodes a task's writes and a checkpoint's channel values on a thread so that a
large value never stalls the event loop; for the small states of most steps the hop to the
thread and back costs more than the encoding, so writes and checkpoints that are plainly
small (a bounded look at their values) are encoded in place, stored as LangGraph stores them
(the same SQL, scalars inline in the checkpoint, other values as blobs). Everything else
(SQL, encoding, migrations) is LangGraph's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


class PooledPostgresSaver(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` on a pool, one pooled connection per call (see the module)."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[DictRow]]) -> None:
        super().__init__(pool)
        self._pool = pool

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        # The saver's own cursor factory, minus the lock: ``pipeline`` sends a call's
        # statements together (one round trip), as the library does.
        async with self._pool.connection() as conn:
            if pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        values = checkpoint["channel_values"]
        if not plainly_small(values.values()):
            return await super().aput(config, checkpoint, metadata, new_versions)
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        checkpoint_ns = configurable["checkpoint_ns"]
        inline = {k: v for k, v in values.items() if v is None or isinstance(v, _SCALARS)}
        blobs = {k: v for k, v in values.items() if k not in inline}
        blob_versions = {k: v for k, v in new_versions.items() if k in blobs}
        async with self._cursor(pipeline=True) as cur:
            if blob_versions:
                await cur.executemany(
                    self.UPSERT_CHECKPOINT_BLOBS_SQL,
                    self._dump_blobs(thread_id, checkpoint_ns, blobs, blob_versions),
                )
            await cur.execute(
                self.UPSERT_CHECKPOINTS_SQL,
                (
                    thread_id,
                    checkpoint_ns,
                    checkpoint["id"],
                    configurable.get("checkpoint_id"),
                    Jsonb({**checkpoint, "channel_values": inline}),
                    Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
                ),
            )
        return {
            "configurable": {
                "thread_id": thread_id,
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
        if not plainly_small(value for _, value in writes):
            await super().aput_writes(config, writes, task_id, task_path)
            return
        # As LangGraph's: special channels (errors, interrupts...) replace, others are added.
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        query = self.UPSERT_CHECKPOINT_WRITES_SQL if special else self.INSERT_CHECKPOINT_WRITES_SQL
        configurable = config["configurable"]
        params = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(query, params)

    async def akeep_latest(self, thread_id: str) -> None:
        """Drop every checkpoint of the thread but the latest of each namespace, with the
        writes and blobs only those held, and make the latest ones roots: one statement, so
        a crash leaves the thread either as it was or pruned."""
        async with self._cursor() as cur:
            await cur.execute(_KEEP_LATEST, {"thread": str(thread_id)})


# The latest checkpoint of each namespace; a checkpoint, write or blob of the thread outside
# them goes. Every part sees the thread as it was before the statement (one snapshot), and
# the deleted and the updated checkpoint rows are distinct.
_LATEST_MATCH = (
    "SELECT 1 FROM latest l WHERE l.checkpoint_ns = x.checkpoint_ns "
    "AND l.checkpoint_id = x.checkpoint_id"
)
_KEEP_LATEST = (
    "WITH latest AS (SELECT DISTINCT ON (checkpoint_ns) checkpoint_ns, checkpoint_id, "
    "checkpoint FROM checkpoints WHERE thread_id = %(thread)s "
    "ORDER BY checkpoint_ns, checkpoint_id DESC), "
    "w AS (DELETE FROM checkpoint_writes x WHERE x.thread_id = %(thread)s "
    f"AND NOT EXISTS ({_LATEST_MATCH})), "
    "b AS (DELETE FROM checkpoint_blobs x WHERE x.thread_id = %(thread)s AND NOT EXISTS ("
    "SELECT 1 FROM latest l WHERE l.checkpoint_ns = x.checkpoint_ns "
    "AND l.checkpoint -> 'channel_versions' ->> x.channel = x.version)), "
    "c AS (DELETE FROM checkpoints x WHERE x.thread_id = %(thread)s "
    f"AND NOT EXISTS ({_LATEST_MATCH})) "
    "UPDATE checkpoints x SET parent_checkpoint_id = NULL WHERE x.thread_id = %(thread)s "
    f"AND EXISTS ({_LATEST_MATCH})"
)


# Channel values LangGraph keeps in the checkpoint's own JSON rather than as blobs.
_SCALARS = (str, int, float, bool)

# How much of a value ``plainly_small`` looks at: containers and scalars count one each,
# strings and bytes one per 64 characters. Encoding that much takes some microseconds.
SMALL_BUDGET = 512


def plainly_small(values: Iterable[Any], budget: int = SMALL_BUDGET) -> bool:
    """True if ``values`` are built of JSON-like parts only (None, bool, numbers, strings,
    bytes, dicts, lists, tuples) and their size stays within ``budget``; anything else (a
    message object, an array, a deep or long value) is not plainly small."""
    stack = list(values)
    while stack:
        value = stack.pop()
        budget -= 1
        if value is None or isinstance(value, (bool, int, float)):
            pass
        elif isinstance(value, (str, bytes)):
            budget -= len(value) // 64
        elif isinstance(value, (dict, list, tuple)):
            if len(value) > budget:  # before copying a long one onto the stack
                return False
            if isinstance(value, dict):
                stack.extend(value.keys())
                stack.extend(value.values())
            else:
                stack.extend(value)
        else:
            return False
        if budget < 0:
            return False
    return True


def traced_cursor(trace: Callable[[str], None]) -> type[AsyncCursor[Any]]:
    """A cursor class that calls ``trace`` with each statement it sends (an ``executemany``
    counts one per parameter set), for the connections of a traced store."""

    def text(query: Any) -> str:
        if isinstance(query, bytes):
            return query.decode()
        if isinstance(query, sql.Composable):
            return repr(query)
        return str(query)

    class TracedCursor(AsyncCursor[Any]):
        async def execute(self, query: Any, params: Any = None, **options: Any) -> TracedCursor:
            trace(text(query))
            return await super().execute(query, params, **options)

        async def executemany(
            self, query: Any, params_seq: Iterable[Any], *, returning: bool = False
        ) -> None:
            params = list(params_seq)
            for _ in params:
                trace(text(query))
            await super().executemany(query, params, returning=returning)

    return TracedCursor
