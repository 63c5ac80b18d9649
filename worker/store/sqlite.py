"""SQLite store: one file holds the worker's records and LangGraph's checkpoints.

Two connections to the same file: one for the records, one owned by ``AsyncSqliteSaver``
(which serialises its own use with a lock). WAL mode and a busy timeout let the worker
processes of one machine share the file.

Every write is shielded from cancellation. A write cancelled between its statement and its
commit would leave the connection inside a transaction, holding the file's write lock and
blocking every other worker process until this one happens to commit again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from worker import jsonutil
from worker.store.base import (
    ACTIVE_RUN_STATES,
    AssistantRecord,
    RunRecord,
    RunState,
    Store,
    ThreadExistsError,
    ThreadQuery,
    ThreadRecord,
    ThreadStatus,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gf_assistants (
    assistant_id TEXT PRIMARY KEY,
    graph_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gf_threads (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gf_runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    graph_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    multitask_strategy TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS gf_runs_thread ON gf_runs (thread_id, created_at);
CREATE INDEX IF NOT EXISTS gf_runs_worker_status ON gf_runs (worker_id, status);
"""

_RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, graph_id, status, created_at, updated_at, metadata, "
    "multitask_strategy, kwargs, worker_id, result, error"
)
_SORT_COLUMNS = {"thread_id", "created_at", "updated_at", "status"}
BUSY_TIMEOUT_MS = 10_000

P = ParamSpec("P")
T = TypeVar("T")


def _shielded(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run ``method`` to completion even if its caller is cancelled (see module docstring)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.shield(method(*args, **kwargs))

    return wrapper


class _ShieldedSaver(AsyncSqliteSaver):
    """``AsyncSqliteSaver`` whose writes always reach their commit."""

    @_shielded
    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        return await super().aput(*args, **kwargs)

    @_shielded
    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        await super().aput_writes(*args, **kwargs)

    @_shielded
    async def adelete_thread(self, thread_id: str) -> None:
        await super().adelete_thread(thread_id)


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` → ``relative.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    rest = url.removeprefix("sqlite://")
    if rest in ("", ":memory:", "/:memory:"):
        return ":memory:"
    return rest.removeprefix("/")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _json(value: Any) -> str:
    return jsonutil.dumps(value).decode()


def _run_from_row(row: aiosqlite.Row) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        thread_id=row[1],
        assistant_id=row[2],
        graph_id=row[3],
        status=row[4],
        created_at=_ts(row[5]),
        updated_at=_ts(row[6]),
        metadata=jsonutil.loads(row[7]),
        multitask_strategy=row[8],
        kwargs=jsonutil.loads(row[9]),
        worker_id=row[10],
        result=jsonutil.loads(row[11]) if row[11] is not None else None,
        error=jsonutil.loads(row[12]) if row[12] is not None else None,
    )


def _thread_from_row(row: aiosqlite.Row) -> ThreadRecord:
    return ThreadRecord(
        thread_id=row[0],
        created_at=_ts(row[1]),
        updated_at=_ts(row[2]),
        metadata=jsonutil.loads(row[3]),
        status=row[4],
    )


class SqliteStore(Store):
    """The default store: a SQLite file (``WORKER_STORE=sqlite:///path``)."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._path = sqlite_path(url)
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        self._saver: _ShieldedSaver | None = None

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        if self._saver is None:
            raise RuntimeError("store is not open")
        return self._saver

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self._path)
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self._path != ":memory:":
            await conn.execute("PRAGMA journal_mode = WAL")
        return conn

    async def open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await self._connect()
        await self._db.executescript(_SCHEMA)
        await self._db.commit()
        self._saver = _ShieldedSaver(await self._connect())
        await self._saver.setup()

    async def close(self) -> None:
        if self._saver is not None:
            await self._saver.conn.close()
            self._saver = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    # assistants

    @_shielded
    async def ensure_assistant(self, assistant_id: str, graph_id: str) -> AssistantRecord:
        now = self._clock().isoformat()
        await self._conn.execute(
            "INSERT INTO gf_assistants VALUES (?, ?, ?, ?) ON CONFLICT (assistant_id) DO NOTHING",
            (assistant_id, graph_id, now, now),
        )
        await self._conn.commit()
        async with self._conn.execute(
            "SELECT created_at, updated_at FROM gf_assistants WHERE assistant_id = ?",
            (assistant_id,),
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return AssistantRecord(assistant_id, graph_id, _ts(row[0]), _ts(row[1]))

    # threads

    @_shielded
    async def create_thread(self, thread_id: str, metadata: Mapping[str, Any]) -> ThreadRecord:
        now = self._clock()
        try:
            await self._conn.execute(
                "INSERT INTO gf_threads VALUES (?, ?, ?, ?, 'idle')",
                (thread_id, now.isoformat(), now.isoformat(), _json(dict(metadata))),
            )
            await self._conn.commit()
        except aiosqlite.IntegrityError as exc:
            raise ThreadExistsError(thread_id) from exc
        return ThreadRecord(thread_id, now, now, dict(metadata), "idle")

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        async with self._conn.execute(
            "SELECT * FROM gf_threads WHERE thread_id = ?", (thread_id,)
        ) as cur:
            row = await cur.fetchone()
        return _thread_from_row(row) if row else None

    @_shielded
    async def update_thread(
        self,
        thread_id: str,
        *,
        status: ThreadStatus | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        now = self._clock().isoformat()
        if metadata:
            # json_patch merges the new keys into the stored object in one statement.
            await self._conn.execute(
                "UPDATE gf_threads SET metadata = json_patch(metadata, ?), updated_at = ? "
                "WHERE thread_id = ?",
                (_json(dict(metadata)), now, thread_id),
            )
        if status is not None:
            await self._conn.execute(
                "UPDATE gf_threads SET status = ?, updated_at = ? WHERE thread_id = ?",
                (status, now, thread_id),
            )
        await self._conn.commit()

    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]:
        where: list[str] = []
        params: list[Any] = []
        for key, value in (query.metadata or {}).items():
            where.append("json_extract(metadata, ?) = json_extract(?, '$')")
            params += ["$." + _json_path_key(key), _json(value)]
        if query.ids:
            where.append(f"thread_id IN ({', '.join('?' for _ in query.ids)})")
            params += list(query.ids)
        if query.status:
            where.append("status = ?")
            params.append(query.status)
        if query.sort_by not in _SORT_COLUMNS:
            raise ValueError(f"cannot sort threads by {query.sort_by!r}")
        order = "ASC" if query.sort_order == "asc" else "DESC"
        sql = "SELECT * FROM gf_threads"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {query.sort_by} {order}, thread_id {order} LIMIT ? OFFSET ?"
        params += [query.limit, query.offset]
        async with self._conn.execute(sql, params) as cur:
            return [_thread_from_row(row) for row in await cur.fetchall()]

    @_shielded
    async def delete_thread(self, thread_id: str) -> bool:
        cur = await self._conn.execute("DELETE FROM gf_threads WHERE thread_id = ?", (thread_id,))
        existed = cur.rowcount > 0
        await self._conn.execute("DELETE FROM gf_runs WHERE thread_id = ?", (thread_id,))
        await self._conn.commit()
        await self.checkpointer.adelete_thread(thread_id)
        return existed

    # runs

    @_shielded
    async def create_run(self, run: RunRecord) -> None:
        await self._conn.execute(
            f"INSERT OR REPLACE INTO gf_runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 13)})",
            (
                run.run_id,
                run.thread_id,
                run.assistant_id,
                run.graph_id,
                run.status,
                run.created_at.isoformat(),
                run.updated_at.isoformat(),
                _json(run.metadata),
                run.multitask_strategy,
                _json(run.kwargs),
                run.worker_id,
                None if run.result is None else _json(run.result),
                None if run.error is None else _json(run.error),
            ),
        )
        await self._conn.commit()

    @_shielded
    async def set_run_status(
        self,
        run_id: str,
        status: RunState,
        *,
        result: Any = None,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        await self._conn.execute(
            "UPDATE gf_runs SET status = ?, updated_at = ?, result = coalesce(?, result), "
            "error = coalesce(?, error) WHERE run_id = ?",
            (
                status,
                self._clock().isoformat(),
                None if result is None else _json(result),
                None if error is None else _json(dict(error)),
                run_id,
            ),
        )
        await self._conn.commit()

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE run_id = ?", (run_id,)
        ) as cur:
            row = await cur.fetchone()
        return _run_from_row(row) if row else None

    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: RunState | None = None
    ) -> list[RunRecord]:
        sql = f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE thread_id = ?"
        params: list[Any] = [thread_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        async with self._conn.execute(sql, params) as cur:
            return [_run_from_row(row) for row in await cur.fetchall()]

    @_shielded
    async def delete_run(self, run_id: str) -> bool:
        cur = await self._conn.execute("DELETE FROM gf_runs WHERE run_id = ?", (run_id,))
        await self._conn.commit()
        return cur.rowcount > 0

    async def active_runs_elsewhere(self, thread_id: str, worker_id: str) -> list[RunRecord]:
        marks = ", ".join("?" for _ in ACTIVE_RUN_STATES)
        async with self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE thread_id = ? AND worker_id != ? "
            f"AND status IN ({marks})",
            (thread_id, worker_id, *ACTIVE_RUN_STATES),
        ) as cur:
            return [_run_from_row(row) for row in await cur.fetchall()]

    @_shielded
    async def fail_orphaned_runs(self, worker_id: str, message: str) -> int:
        marks = ", ".join("?" for _ in ACTIVE_RUN_STATES)
        error = _json({"error": "WorkerRestarted", "message": message})
        cur = await self._conn.execute(
            f"UPDATE gf_runs SET status = 'error', error = ?, updated_at = ? "
            f"WHERE worker_id = ? AND status IN ({marks})",
            (error, self._clock().isoformat(), worker_id, *ACTIVE_RUN_STATES),
        )
        await self._conn.execute(
            "UPDATE gf_threads SET status = 'error' WHERE status = 'busy' AND thread_id NOT IN "
            f"(SELECT thread_id FROM gf_runs WHERE status IN ({marks}))",
            ACTIVE_RUN_STATES,
        )
        await self._conn.commit()
        return cur.rowcount


def _json_path_key(key: str) -> str:
    # Quote the key so dots or brackets in it are not read as a JSON path.
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
