"""SQLite store: one file holds the worker's records and LangGraph's checkpoints.

Two connections to the same file: one for the records, one owned by ``AsyncSqliteSaver``
(which serialises its own use with a lock). WAL mode and a busy timeout let the worker
processes of one machine share the file.

Durability (``synchronous``): in WAL mode, ``normal`` (the default) syncs the log only at
checkpoints, so a commit survives a process crash but the last ones may be lost on power
loss or an OS crash; ``full`` syncs the log at every commit and survives those too.

Every write is shielded from cancellation. A write cancelled between its statement and its
commit would leave the connection inside a transaction, holding the file's write lock and
blocking every other worker process until this one happens to commit again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver

from worker.store import migrations
from worker.store.base import (
    ACTIVE_RUN_STATES,
    Claim,
    RunRecord,
    RunState,
    Store,
    ThreadExistsError,
    ThreadQuery,
    ThreadRecord,
    ThreadStatus,
    finish_writes,
    shielded,
)
from worker.store.sqlite_assistants import SqliteAssistants
from worker.store.sqlite_crons import SqliteCrons
from worker.store.sqlite_rows import (
    THREAD_COLUMNS,
    ShieldedSaver,
    file_lock,
    json_path_key,
    run_from_row,
    sqlite_path,
    thread_from_row,
    to_json,
    utcnow,
)
from worker.store.sqlite_serial import Serial, serial
from worker.store.sqlite_storage import sqlite_thread_storage
from worker.store.sqlite_thread_ttl import SqliteThreadTTL
from worker.store.sqlite_webhooks import SqliteWebhookStore, insert_events
from worker.store.storage import ThreadStorage
from worker.store.thread_ttl import ThreadTTL
from worker.store.webhooks import WebhookEvent, WebhookStore

_RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, graph_id, status, created_at, updated_at, metadata, "
    "multitask_strategy, kwargs, worker_id, result, error, attempt, lease_expires_at"
)
_ACTIVE = "('pending', 'running')"
_SORT_COLUMNS = {"thread_id", "created_at", "updated_at", "status"}
BUSY_TIMEOUT_MS = 10_000
Synchronous = Literal["normal", "full"]


def _thread_filters(query: ThreadQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of a thread search or count."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    for key, value in (query.metadata or {}).items():
        where.append("json_extract(metadata, ?) = json_extract(?, '$')")
        params += ["$." + json_path_key(key), to_json(value)]
    if query.ids:
        where.append(f"thread_id IN ({', '.join('?' for _ in query.ids)})")
        params += list(query.ids)
    if query.status:
        where.append("status = ?")
        params.append(query.status)
    return " AND ".join(where), params


class SqliteStore(SqliteAssistants, SqliteCrons, SqliteThreadTTL, Store):
    """The default store: a SQLite file (``WORKER_STORE=sqlite:///path``).

    Claims are single ``UPDATE ... RETURNING`` statements: SQLite takes the file's write lock
    before the statement reads anything, so of two processes claiming at once the second
    sees the first one's leases and claims nothing twice.
    """

    def __init__(
        self,
        url: str,
        *,
        lease_s: float = 30.0,
        synchronous: Synchronous = "normal",
        clock: Callable[[], datetime] = utcnow,
        default_ttl: ThreadTTL | None = None,
    ) -> None:
        self._path = sqlite_path(url)
        self._default_ttl = default_ttl
        self._synchronous = synchronous
        self._lease_s = lease_s
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        self._saver: ShieldedSaver | None = None
        self._serial = Serial(lambda: self._conn)
        self._webhooks = SqliteWebhookStore(lambda: self._conn, clock, self._serial)

    @property
    def path(self) -> str:
        """The database file (``:memory:`` for a store in memory)."""
        return self._path

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        if self._saver is None:
            raise RuntimeError("store is not open")
        return self._saver

    @property
    def webhooks(self) -> WebhookStore:
        return self._webhooks

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def _connect(self) -> aiosqlite.Connection:
        # IMMEDIATE: a write transaction takes the write lock when it begins, waiting up to
        # the busy timeout. A deferred one that read first and then writes fails at once
        # ("database is locked") if another connection wrote meanwhile.
        conn = await aiosqlite.connect(self._path, isolation_level="IMMEDIATE")
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self._path != ":memory:":
            await conn.execute("PRAGMA journal_mode = WAL")
        # Per connection, not stored in the file: every connection sets it.
        await conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
        return conn

    async def pragma(self, name: str) -> tuple[Any, Any]:
        """``PRAGMA name`` as the records and the checkpointer connection read it."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        if self._saver is None:
            raise RuntimeError("store is not open")
        values = []
        for conn in (self._conn, self._saver.conn):
            async with conn.execute(f"PRAGMA {name}") as cur:
                row = await cur.fetchone()
            values.append(row[0] if row else None)
        return values[0], values[1]

    async def open(self) -> None:
        if self._path == ":memory:":
            await self._open()
            return
        Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # Switching a new file to WAL fails at once (no busy wait) while another process
        # does the same: processes starting together open the file one at a time.
        async with file_lock(self._path + ".open-lock"):
            await self._open()

    async def _open(self) -> None:
        self._db = await self._connect()
        await self._migrate(self._db)
        self._saver = ShieldedSaver(await self._connect())
        await self._saver.setup()

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        # IMMEDIATE takes the write lock first: two processes starting together migrate
        # one after the other, and the second finds every version applied.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(migrations.SQLITE_MIGRATIONS_TABLE_DDL)
            async with conn.execute(f"SELECT version FROM {migrations.MIGRATIONS_TABLE}") as cur:
                applied = {row[0] for row in await cur.fetchall()}
            for migration in migrations.SQLITE:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {migrations.MIGRATIONS_TABLE} VALUES (?, ?, ?)",
                    (migration.version, migration.name, utcnow().isoformat()),
                )
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()

    def _lease_until(self) -> float:
        return self._clock().timestamp() + self._lease_s

    async def close(self) -> None:
        await finish_writes(self)
        await finish_writes(self._webhooks)
        if self._saver is not None:
            await finish_writes(self._saver)
            await self._saver.conn.close()
            self._saver = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    # threads

    @shielded
    @serial
    async def create_thread(
        self, thread_id: str, metadata: Mapping[str, Any], *, ttl: ThreadTTL | None = None
    ) -> ThreadRecord:
        now = self._clock()
        ttl = ttl or self._default_ttl
        expires = ttl.expiry(now) if ttl is not None else None
        try:
            await self._conn.execute(
                "INSERT INTO gf_threads (thread_id, created_at, updated_at, metadata, status, "
                "ttl_strategy, ttl_minutes, ttl_expires_at) VALUES (?, ?, ?, ?, 'idle', ?, ?, ?)",
                (
                    thread_id,
                    now.isoformat(),
                    now.isoformat(),
                    to_json(dict(metadata)),
                    ttl.strategy if ttl else None,
                    ttl.minutes if ttl else None,
                    expires.timestamp() if expires else None,
                ),
            )
            await self._conn.commit()
        except aiosqlite.IntegrityError as exc:
            raise ThreadExistsError(thread_id) from exc
        return ThreadRecord(thread_id, now, now, dict(metadata), "idle", ttl, expires)

    @serial
    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        async with self._conn.execute(
            f"SELECT {THREAD_COLUMNS} FROM gf_threads WHERE thread_id = ?", (thread_id,)
        ) as cur:
            row = await cur.fetchone()
        return thread_from_row(row) if row else None

    @shielded
    @serial
    async def update_thread(
        self,
        thread_id: str,
        *,
        status: ThreadStatus | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: ThreadTTL | None = None,
    ) -> None:
        now = self._clock()
        sets: list[str] = []
        params: list[Any] = []
        if metadata:
            # json_patch merges the new keys into the stored object.
            sets.append("metadata = json_patch(metadata, ?)")
            params.append(to_json(dict(metadata)))
        if status is not None:
            sets.append("status = ?")
            params.append(status)
        if ttl is not None:
            sets += ["ttl_strategy = ?", "ttl_minutes = ?"]
            params += [ttl.strategy, ttl.minutes]
        if sets:
            sets.append("updated_at = ?")
            params.append(now.isoformat())
        # Activity re-arms the expiry (right-hand sides read the row as it was, hence the
        # new TTL's minutes passed in), unless a sweeper holds the thread.
        sets.append(
            "ttl_expires_at = CASE WHEN ttl_claimed_by IS NOT NULL THEN ttl_expires_at "
            "WHEN coalesce(?, ttl_minutes) IS NULL THEN NULL "
            "ELSE ? + coalesce(?, ttl_minutes) * 60 END"
        )
        minutes = ttl.minutes if ttl is not None else None
        params += [minutes, now.timestamp(), minutes]
        await self._conn.execute(
            f"UPDATE gf_threads SET {', '.join(sets)} WHERE thread_id = ?", (*params, thread_id)
        )
        await self._conn.commit()

    @serial
    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]:
        where, params = _thread_filters(query)
        if query.sort_by not in _SORT_COLUMNS:
            raise ValueError(f"cannot sort threads by {query.sort_by!r}")
        order = "ASC" if query.sort_order == "asc" else "DESC"
        sql = f"SELECT {THREAD_COLUMNS} FROM gf_threads WHERE {where}"
        sql += f" ORDER BY {query.sort_by} {order}, thread_id {order} LIMIT ? OFFSET ?"
        async with self._conn.execute(sql, [*params, query.limit, query.offset]) as cur:
            return [thread_from_row(row) for row in await cur.fetchall()]

    @serial
    async def count_threads(self, query: ThreadQuery) -> int:
        where, params = _thread_filters(query)
        sql = f"SELECT count(*) FROM gf_threads WHERE {where}"
        async with self._conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @shielded
    @serial
    async def delete_thread(self, thread_id: str, *, ttl_holder: str | None = None) -> bool:
        cur = await self._conn.execute(
            "DELETE FROM gf_threads WHERE thread_id = ? AND (? IS NULL OR ttl_claimed_by = ?)",
            (thread_id, ttl_holder, ttl_holder),
        )
        existed = cur.rowcount > 0
        if ttl_holder is not None and not existed:
            await self._conn.commit()
            return False  # the claim lapsed and another sweeper took the thread over
        await self._conn.execute("DELETE FROM gf_runs WHERE thread_id = ?", (thread_id,))
        await self._conn.execute("DELETE FROM gf_crons WHERE thread_id = ?", (thread_id,))
        await self._conn.commit()
        await self.checkpointer.adelete_thread(thread_id)
        return existed

    async def thread_storage(self, thread_id: str) -> ThreadStorage:
        if self._saver is None:
            raise RuntimeError("store is not open")
        return await sqlite_thread_storage(self._saver, thread_id)

    # runs

    @shielded
    @serial
    async def create_run(self, run: RunRecord) -> None:
        await self._conn.execute(
            f"INSERT OR REPLACE INTO gf_runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            (
                run.run_id,
                run.thread_id,
                run.assistant_id,
                run.graph_id,
                run.status,
                run.created_at.isoformat(),
                run.updated_at.isoformat(),
                to_json(run.metadata),
                run.multitask_strategy,
                to_json(run.kwargs),
                run.worker_id,
                None if run.result is None else to_json(run.result),
                None if run.error is None else to_json(run.error),
                run.attempt,
                self._lease_until() if run.status in ACTIVE_RUN_STATES else None,
            ),
        )
        await self._conn.commit()

    @shielded
    @serial
    async def set_run_status(
        self,
        run_id: str,
        status: RunState,
        *,
        result: Any = None,
        error: Mapping[str, Any] | None = None,
        events: Sequence[WebhookEvent] = (),
        holder: tuple[str, int] | None = None,
        if_active: bool = False,
    ) -> bool:
        worker, attempt = holder if holder is not None else (None, None)
        # An ended run holds no lease: nothing is left to claim.
        now = self._clock()
        cur = await self._conn.execute(
            "UPDATE gf_runs SET status = ?, updated_at = ?, result = coalesce(?, result), "
            "error = coalesce(?, error), lease_expires_at = CASE WHEN ? THEN "
            "coalesce(lease_expires_at, ?) END WHERE run_id = ? "
            "AND (? IS NULL OR (worker_id = ? AND attempt = ?)) "
            f"AND (NOT ? OR status IN {_ACTIVE})",
            (
                status,
                now.isoformat(),
                None if result is None else to_json(result),
                None if error is None else to_json(dict(error)),
                status in ACTIVE_RUN_STATES,
                self._lease_until(),
                run_id,
                worker,
                worker,
                attempt,
                if_active,
            ),
        )
        if cur.rowcount:
            # Same transaction as the status: the outbox has the event iff the change happened.
            await insert_events(self._conn, events, now.timestamp())
        await self._conn.commit()
        return bool(cur.rowcount)

    @serial
    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE run_id = ?", (run_id,)
        ) as cur:
            row = await cur.fetchone()
        return run_from_row(row) if row else None

    @serial
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
            return [run_from_row(row) for row in await cur.fetchall()]

    @shielded
    @serial
    async def delete_run(self, run_id: str) -> bool:
        cur = await self._conn.execute("DELETE FROM gf_runs WHERE run_id = ?", (run_id,))
        await self._conn.commit()
        return cur.rowcount > 0

    @serial
    async def find_active_runs(self, statuses: Sequence[RunState]) -> list[RunRecord]:
        if not statuses:
            return []
        marks = ", ".join("?" for _ in statuses)
        async with self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE status IN ({marks}) ORDER BY created_at",
            list(statuses),
        ) as cur:
            return [run_from_row(row) for row in await cur.fetchall()]

    @serial
    async def active_runs_elsewhere(self, thread_id: str, worker_id: str) -> list[RunRecord]:
        marks = ", ".join("?" for _ in ACTIVE_RUN_STATES)
        async with self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE thread_id = ? AND worker_id != ? "
            f"AND status IN ({marks})",
            (thread_id, worker_id, *ACTIVE_RUN_STATES),
        ) as cur:
            return [run_from_row(row) for row in await cur.fetchall()]

    # leases

    @shielded
    @serial
    async def renew_leases(self, worker_id: str, run_ids: Sequence[str]) -> set[str]:
        if not run_ids:
            return set()
        marks = ", ".join("?" for _ in run_ids)
        rows = await self._conn.execute_fetchall(
            f"UPDATE gf_runs SET lease_expires_at = ? WHERE worker_id = ? AND status IN "
            f"{_ACTIVE} AND run_id IN ({marks}) RETURNING run_id",
            (self._lease_until(), worker_id, *run_ids),
        )
        renewed = {row[0] for row in rows}
        await self._conn.commit()
        return renewed

    @shielded
    @serial
    async def claim_expired_runs(
        self,
        worker_id: str,
        graph_ids: Sequence[str],
        *,
        limit: int,
        max_attempts: int,
        abandoned_events: Callable[[RunRecord], Sequence[WebhookEvent]] | None = None,
    ) -> Claim:
        now = self._clock()
        expired = f"status IN {_ACTIVE} AND lease_expires_at < ?"
        error = to_json(
            {
                "error": "RunAbandoned",
                "message": f"run abandoned after {max_attempts} attempts: each worker "
                "executing it stopped before it ended",
            }
        )
        # execute_fetchall runs each statement to its end in one call: a RETURNING statement
        # left half-read would make a commit by another coroutine on this connection fail.
        rows = await self._conn.execute_fetchall(
            f"UPDATE gf_runs SET status = 'error', error = ?, lease_expires_at = NULL, "
            f"updated_at = ? WHERE {expired} AND attempt >= ? RETURNING {_RUN_COLUMNS}",
            (error, now.isoformat(), now.timestamp(), max_attempts),
        )
        abandoned = [run_from_row(row) for row in rows]
        if abandoned_events is not None:
            for record in abandoned:
                await insert_events(self._conn, abandoned_events(record), now.timestamp())
        claimed: list[RunRecord] = []
        if limit > 0 and graph_ids:
            graphs = ", ".join("?" for _ in graph_ids)
            rows = await self._conn.execute_fetchall(
                f"UPDATE gf_runs SET worker_id = ?, lease_expires_at = ?, attempt = attempt + 1, "
                f"updated_at = ? WHERE run_id IN (SELECT r.run_id FROM gf_runs r WHERE "
                f"r.{expired} AND r.graph_id IN ({graphs}) AND NOT EXISTS (SELECT 1 FROM "
                f"gf_runs o WHERE o.thread_id = r.thread_id AND o.status IN {_ACTIVE} AND "
                f"o.created_at < r.created_at) ORDER BY r.created_at LIMIT ?) "
                f"RETURNING {_RUN_COLUMNS}",
                (
                    worker_id,
                    self._lease_until(),
                    now.isoformat(),
                    now.timestamp(),
                    *graph_ids,
                    limit,
                ),
            )
            claimed = sorted((run_from_row(row) for row in rows), key=lambda r: r.created_at)
        if abandoned:
            await self._conn.execute(
                "UPDATE gf_threads SET status = 'error', updated_at = ? WHERE status = 'busy' "
                f"AND thread_id IN ({', '.join('?' for _ in abandoned)}) AND thread_id NOT IN "
                f"(SELECT thread_id FROM gf_runs WHERE status IN {_ACTIVE})",
                (now.isoformat(), *(r.thread_id for r in abandoned)),
            )
        await self._conn.commit()
        return Claim(claimed, abandoned)

    @shielded
    @serial
    async def record_worker(self, worker_id: str, url: str) -> None:
        await self._conn.execute(
            "INSERT INTO gf_workers (worker_id, url, updated_at) VALUES (?, ?, ?) ON CONFLICT "
            "(worker_id) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at",
            (worker_id, url, self._clock().isoformat()),
        )
        await self._conn.commit()

    @serial
    async def lease_holders(self, worker_id: str) -> dict[str, str]:
        async with self._conn.execute(
            "SELECT DISTINCT w.worker_id, w.url FROM gf_runs r JOIN gf_workers w ON "
            f"w.worker_id = r.worker_id WHERE r.status IN {_ACTIVE} AND "
            "r.lease_expires_at >= ? AND r.worker_id != ?",
            (self._clock().timestamp(), worker_id),
        ) as cur:
            return {row[0]: row[1] for row in await cur.fetchall()}

    @shielded
    @serial
    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        sql = f"UPDATE gf_runs SET lease_expires_at = 0 WHERE worker_id = ? AND status IN {_ACTIVE}"
        params: list[Any] = [worker_id]
        if run_ids is not None:
            if not run_ids:
                return 0
            sql += f" AND run_id IN ({', '.join('?' for _ in run_ids)})"
            params += list(run_ids)
        cur = await self._conn.execute(sql, params)
        await self._conn.commit()
        return cur.rowcount
