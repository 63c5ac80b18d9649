"""A thread's storage report from ``AsyncPostgresSaver``'s tables (see ``worker.store.storage``).

Sizes are ``pg_column_size``: the bytes each value occupies on disk (compressed, or moved out
of line to TOAST, as Postgres stored it). The three reads share one snapshot.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from worker.store.storage import ThreadStorage


async def postgres_thread_storage(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]], thread_id: str
) -> ThreadStorage:
    report = ThreadStorage()
    params: dict[str, Any] = {"thread_id": thread_id}
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur = await conn.execute(
            "SELECT count(*) AS n, coalesce(sum(pg_column_size(checkpoint) "
            "+ pg_column_size(metadata)), 0) AS size FROM checkpoints "
            "WHERE thread_id = %(thread_id)s",
            params,
        )
        checkpoints = await cur.fetchone()
        cur = await conn.execute(
            "SELECT channel, count(*) AS n, coalesce(sum(pg_column_size(blob)), 0) AS size "
            "FROM checkpoint_blobs WHERE thread_id = %(thread_id)s GROUP BY channel",
            params,
        )
        channels = await cur.fetchall()
        cur = await conn.execute(
            "SELECT count(*) AS n, coalesce(sum(pg_column_size(blob)), 0) AS size "
            "FROM checkpoint_writes WHERE thread_id = %(thread_id)s",
            params,
        )
        writes = await cur.fetchone()
    if checkpoints is not None:
        report.checkpoint_count, report.checkpoint_bytes = (
            int(checkpoints["n"]),
            int(checkpoints["size"]),
        )
    for row in channels:
        report.add_channel(row["channel"], int(row["n"]), int(row["size"]))
    if writes is not None:
        report.write_count, report.write_bytes = int(writes["n"]), int(writes["size"])
    return report
