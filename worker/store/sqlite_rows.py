"""Helpers of the SQLite store: its URL, row conversions, a file lock."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from worker import jsonutil
from worker.store.base import RunRecord, ThreadRecord
from worker.store.thread_ttl import ThreadTTL

# What ``thread_from_row`` reads, in order.
THREAD_COLUMNS = (
    "thread_id, created_at, updated_at, metadata, status, ttl_strategy, ttl_minutes, ttl_expires_at"
)


@contextlib.asynccontextmanager
async def file_lock(path: str) -> AsyncIterator[None]:
    """An exclusive lock between processes, held while the block runs."""
    with open(path, "a+b") as file:  # noqa: ASYNC230 (opening a lock file does not block)
        await asyncio.to_thread(fcntl.flock, file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` → ``relative.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    rest = url.removeprefix("sqlite://")
    if rest in ("", ":memory:", "/:memory:"):
        return ":memory:"
    return rest.removeprefix("/")


def utcnow() -> datetime:
    return datetime.now(UTC)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def to_json(value: Any) -> str:
    return jsonutil.dumps(value).decode()


def run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        thread_id=row[1],
        assistant_id=row[2],
        graph_id=row[3],
        status=row[4],
        created_at=ts(row[5]),
        updated_at=ts(row[6]),
        metadata=jsonutil.loads(row[7]),
        multitask_strategy=row[8],
        kwargs=jsonutil.loads(row[9]),
        worker_id=row[10],
        result=jsonutil.loads(row[11]) if row[11] is not None else None,
        error=jsonutil.loads(row[12]) if row[12] is not None else None,
        attempt=row[13],
        lease_expires_at=datetime.fromtimestamp(row[14], UTC) if row[14] is not None else None,
    )


def thread_from_row(row: Sequence[Any]) -> ThreadRecord:
    """A thread from a row of ``THREAD_COLUMNS`` (TTL times are Unix seconds)."""
    return ThreadRecord(
        thread_id=row[0],
        created_at=ts(row[1]),
        updated_at=ts(row[2]),
        metadata=jsonutil.loads(row[3]),
        status=row[4],
        ttl=ThreadTTL(row[5], row[6]) if row[5] is not None and row[6] is not None else None,
        ttl_expires_at=datetime.fromtimestamp(row[7], UTC) if row[7] is not None else None,
    )


def json_path_key(key: str) -> str:
    # Quote the key so dots or brackets in it are not read as a JSON path.
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
