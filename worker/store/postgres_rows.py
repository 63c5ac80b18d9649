"""Rows of the Postgres store's thread table as records (shared by the store and its mixins)."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg.rows import DictRow

from worker.store.base import ThreadRecord
from worker.store.thread_ttl import ThreadTTL


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def thread_from_row(row: DictRow) -> ThreadRecord:
    strategy, minutes, expires = row["ttl_strategy"], row["ttl_minutes"], row["ttl_expires_at"]
    return ThreadRecord(
        thread_id=row["thread_id"],
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        metadata=row["metadata"],
        status=row["status"],
        ttl=ThreadTTL(strategy, minutes) if strategy is not None and minutes is not None else None,
        ttl_expires_at=utc(expires) if expires is not None else None,
    )
