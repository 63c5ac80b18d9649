"""LangGraph's Postgres checkpointer with its calls running side by side.

``AsyncPostgresSaver`` holds one asyncio lock around every call, even when it was given a
pool: a worker's runs then checkpoint one call at a time, each waiting for the round trips
of all the calls before it. Given a pool, nothing needs that lock -- each call checks out a
connection of its own, and Postgres keeps concurrent transactions apart -- so this saver
takes a pool connection per call and no lock. Everything else (SQL, encoding, migrations)
is LangGraph's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import DictRow, dict_row
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
