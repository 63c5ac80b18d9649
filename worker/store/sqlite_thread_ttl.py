"""Thread TTL claims in the SQLite store (a mixin of ``SqliteStore``).

See ``worker.store.thread_ttl`` for the protocol. Times are Unix seconds (REAL), as run
leases are. The claim is one ``UPDATE ... RETURNING``: SQLite takes the file's write lock
before the statement reads, so of processes claiming at once the second sees the first's
claims.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from worker.store.base import ThreadRecord, shielded
from worker.store.sqlite_rows import THREAD_COLUMNS, thread_from_row
from worker.store.sqlite_serial import Serial, serial

# Expired by a Unix time, not held by a live claim (the same time twice), and not a
# keep_latest thread with a run in progress (its run's end re-arms the expiry).
_EXPIRED = (
    "ttl_expires_at <= ? AND (ttl_claim_expires_at IS NULL OR ttl_claim_expires_at < ?) "
    "AND NOT (ttl_strategy = 'keep_latest' AND status = 'busy')"
)


class SqliteThreadTTL:
    """TTL claims over the store's records connection."""

    _serial: Serial

    @property
    def _conn(self) -> aiosqlite.Connection:
        raise NotImplementedError

    @shielded
    @serial
    async def claim_expired_threads(
        self, worker_id: str, *, now: datetime, claim_s: float, limit: int
    ) -> list[ThreadRecord]:
        at = now.timestamp()
        # A plain read first: most sweeps find nothing, and an UPDATE would take the file's
        # write lock (which every worker process shares) for nothing.
        async with self._conn.execute(
            f"SELECT 1 FROM gf_threads WHERE {_EXPIRED} LIMIT 1", (at, at)
        ) as cur:
            if await cur.fetchone() is None:
                return []
        # execute_fetchall reads the RETURNING rows to the end before the commit.
        rows = await self._conn.execute_fetchall(
            "UPDATE gf_threads SET ttl_claimed_by = ?, ttl_claim_expires_at = ? "
            f"WHERE thread_id IN (SELECT thread_id FROM gf_threads WHERE {_EXPIRED} "
            f"ORDER BY ttl_expires_at LIMIT ?) RETURNING {THREAD_COLUMNS}",
            (worker_id, at + claim_s, at, at, limit),
        )
        await self._conn.commit()
        threads = [thread_from_row(row) for row in rows]
        return sorted(threads, key=lambda t: (t.ttl_expires_at or now, t.thread_id))

    @shielded
    @serial
    async def finish_thread_ttl(self, thread_id: str, worker_id: str) -> bool:
        cur = await self._conn.execute(
            "UPDATE gf_threads SET ttl_expires_at = NULL, ttl_claimed_by = NULL, "
            "ttl_claim_expires_at = NULL WHERE thread_id = ? AND ttl_claimed_by = ?",
            (thread_id, worker_id),
        )
        await self._conn.commit()
        return cur.rowcount > 0

    @shielded
    @serial
    async def release_thread_ttl_claim(self, thread_id: str, worker_id: str) -> None:
        await self._conn.execute(
            "UPDATE gf_threads SET ttl_claimed_by = NULL, ttl_claim_expires_at = NULL "
            "WHERE thread_id = ? AND ttl_claimed_by = ?",
            (thread_id, worker_id),
        )
        await self._conn.commit()
