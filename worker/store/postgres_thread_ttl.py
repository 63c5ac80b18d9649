"""Thread TTL claims in the Postgres store (a mixin of ``PostgresStore``).

See ``worker.store.thread_ttl`` for the protocol. The claim locks expired rows
``FOR UPDATE SKIP LOCKED`` inside one ``UPDATE``: workers sweeping at once pass over each
other's rows, and each thread goes to exactly one of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import DictRow

from worker.store.base import ThreadRecord, shielded
from worker.store.postgres_rows import thread_from_row


class PostgresThreadTTL:
    """TTL claims over the store's pool."""

    async def _fetch(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[DictRow]:
        raise NotImplementedError

    @shielded
    async def claim_expired_threads(
        self, worker_id: str, *, now: datetime, claim_s: float, limit: int
    ) -> list[ThreadRecord]:
        # Expired, not held by a live claim, and not a keep_latest thread with a run in
        # progress (its run's end re-arms the expiry).
        rows = await self._fetch(
            "UPDATE gf_threads SET ttl_claimed_by = %(worker)s, ttl_claim_expires_at = %(until)s "
            "WHERE thread_id IN (SELECT thread_id FROM gf_threads WHERE ttl_expires_at <= %(now)s "
            "AND (ttl_claim_expires_at IS NULL OR ttl_claim_expires_at < %(now)s) "
            "AND NOT (ttl_strategy = 'keep_latest' AND status = 'busy') "
            "ORDER BY ttl_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING *",
            {
                "worker": worker_id,
                "until": now + timedelta(seconds=claim_s),
                "now": now,
                "limit": limit,
            },
        )
        threads = [thread_from_row(row) for row in rows]
        return sorted(threads, key=lambda t: (t.ttl_expires_at or now, t.thread_id))

    @shielded
    async def finish_thread_ttl(self, thread_id: str, worker_id: str) -> bool:
        rows = await self._fetch(
            "UPDATE gf_threads SET ttl_expires_at = NULL, ttl_claimed_by = NULL, "
            "ttl_claim_expires_at = NULL WHERE thread_id = %s AND ttl_claimed_by = %s "
            "RETURNING thread_id",
            (thread_id, worker_id),
        )
        return bool(rows)

    @shielded
    async def release_thread_ttl_claim(self, thread_id: str, worker_id: str) -> None:
        await self._fetch(
            "UPDATE gf_threads SET ttl_claimed_by = NULL, ttl_claim_expires_at = NULL "
            "WHERE thread_id = %s AND ttl_claimed_by = %s RETURNING thread_id",
            (thread_id, worker_id),
        )
