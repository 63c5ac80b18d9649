"""SQLite store: one file holds the worker's records and LangGraph's checkpoints.

Connections to the same file, each on a thread of its own (``sqlite_conn``):

- the *records* connection (aiosqlite), for the records' reads and their writes off the hot
  path, one store method at a time (``sqlite_serial``);
- the *writer*, for the writes of a run's life (``sqlite_runs``: begun, status changes,
  thread deleted, runs claimed) and LangGraph's checkpoint writes: writes that queue up
  while one transaction is being written are committed together in the next;
- a few *readers*, for checkpoint reads, which run concurrently (``sqlite_saver``).

WAL mode and a busy timeout let the worker processes of one machine share the file. A store
``sqlite://:memory:`` is a temporary file, deleted when the store closes.

Durability (``synchronous``): in WAL mode, ``normal`` (the default) syncs the log only at
checkpoints, so a commit survives a process crash but the last ones may be lost on power
loss or an OS crash; ``full`` syncs the log at every commit and survives those too.

No write is ever left half done by a cancellation. The writer's operations run to their
commit on its thread whatever their callers do; the records connection's writes are
shielded: one cancelled between its statement and its commit would leave the connection
inside a transaction, holding the file's write lock and blocking every other worker process
until this one happens to commit again.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver

from worker.store import migrations
from worker.store.base import (
    ACTIVE_RUN_STATES,
    AssistantRecord,
    Claim,
    RunRecord,
    RunState,
    StopOnRecord,
    Store,
    ThreadExistsError,
    ThreadQuery,
    ThreadRecord,
    ThreadStatus,
    finish_writes,
    holds_lease,
    shielded,
)
from worker.store.sqlite_assistants import SqliteAssistants
from worker.store.sqlite_conn import (
    BUSY_TIMEOUT_MS,
    ReaderPool,
    ThreadConnection,
    Trace,
    Writer,
    connector,
)
from worker.store.sqlite_crons import SqliteCrons
from worker.store.sqlite_rows import (
    THREAD_COLUMNS,
    file_lock,
    json_path_key,
    run_from_row,
    sqlite_path,
    thread_from_row,
    to_json,
    utcnow,
)
from worker.store.sqlite_runs import (
    ACTIVE,
    RUN_COLUMNS,
    BeginRun,
    ClaimExpiredRuns,
    DeleteThread,
    SetRunStatus,
    insert_run,
)
from worker.store.sqlite_saver import PooledSqliteSaver
from worker.store.sqlite_serial import Serial, serial
from worker.store.sqlite_storage import sqlite_thread_storage
from worker.store.sqlite_thread_ttl import SqliteThreadTTL
from worker.store.sqlite_webhooks import SqliteWebhookStore
from worker.store.storage import ThreadStorage
from worker.store.thread_ttl import ThreadTTL
from worker.store.webhooks import WebhookEvent, WebhookStore

_SORT_COLUMNS = {"thread_id", "created_at", "updated_at", "status"}
# Checkpoint reads run on this many connections at once.
READERS = 3
Synchronous = Literal["normal", "full"]

__all__ = ["BUSY_TIMEOUT_MS", "SqliteStore", "Synchronous", "sqlite_path"]


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
        trace: Trace | None = None,
    ) -> None:
        """``default_ttl``: the TTL of threads created without one. ``trace``, when given,
        is called with every SQL statement any connection of the store runs (on that
        connection's thread): for diagnostics and tests."""
        self._path = sqlite_path(url)
        self._default_ttl = default_ttl
        self._synchronous = synchronous
        self._lease_s = lease_s
        self._clock = clock
        self._trace = trace
        self._tempdir: str | None = None
        self._db: aiosqlite.Connection | None = None
        self._writer: Writer | None = None
        self._readers: ReaderPool | None = None
        self._saver: PooledSqliteSaver | None = None
        self._serial = Serial(lambda: self._conn)
        self._webhooks = SqliteWebhookStore(
            lambda: self._conn, lambda: self._write, clock, self._serial
        )

    @property
    def path(self) -> str:
        """The database file (for ``sqlite://:memory:``, the temporary file once open)."""
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

    @property
    def _write(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    async def _connect(self) -> aiosqlite.Connection:
        # IMMEDIATE: a write transaction takes the write lock when it begins, waiting up to
        # the busy timeout. A deferred one that read first and then writes fails at once
        # ("database is locked") if another connection wrote meanwhile.
        conn = await aiosqlite.connect(self._path, isolation_level="IMMEDIATE")
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        # Per connection, not stored in the file: every connection sets it.
        await conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
        if self._trace is not None:
            await conn.set_trace_callback(self._trace)
        return conn

    @serial
    async def pragma(self, name: str) -> tuple[Any, Any]:
        """``PRAGMA name`` as the records connection and the writer read it."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        async with self._conn.execute(f"PRAGMA {name}") as cur:
            row = await cur.fetchone()

        def read(conn: Any) -> Any:
            found = conn.execute(f"PRAGMA {name}").fetchone()
            return found[0] if found else None

        return (row[0] if row else None), await self._write.connection.run(read)

    async def open(self) -> None:
        if self._path == ":memory:":
            # Every connection must see the same database: a private temporary file.
            self._tempdir = tempfile.mkdtemp(prefix="graphfleet-store-")
            self._path = str(Path(self._tempdir) / "store.sqlite")
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
        connect = functools.partial(
            connector, self._path, synchronous=self._synchronous, trace=self._trace
        )
        self._writer = Writer(await ThreadConnection.open(connect(), "sqlite-writer"))
        readers = [
            await ThreadConnection.open(connect(read_only=True), f"sqlite-reader-{i}")
            for i in range(READERS)
        ]
        self._readers = ReaderPool(readers)
        self._saver = PooledSqliteSaver(self._writer, self._readers)
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
        self._saver = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._readers is not None:
            await self._readers.close()
            self._readers = None
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir, self._path = None, ":memory:"

    async def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of a read. Inside a store method (the records connection's ``Serial``
        held) on the records connection, which sees the method's own transaction; otherwise
        on a reader connection, beside everything else and in one hop."""
        if self._serial.holding():
            return list(await self._conn.execute_fetchall(sql, params))
        if self._readers is None:
            raise RuntimeError("store is not open")
        return await self._readers.run(lambda conn: conn.execute(sql, params).fetchall())

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

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._select(
            f"SELECT {THREAD_COLUMNS} FROM gf_threads WHERE thread_id = ?", (thread_id,)
        )
        return thread_from_row(rows[0]) if rows else None

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

    async def delete_thread(
        self,
        thread_id: str,
        *,
        events: Sequence[WebhookEvent] = (),
        ttl_holder: str | None = None,
    ) -> bool:
        delete = DeleteThread(thread_id, events, ttl_holder, self._clock())
        existed, made = await self._write.write(delete)
        self._webhooks.deliveries_written += made
        return existed

    async def thread_storage(self, thread_id: str) -> ThreadStorage:
        if self._saver is None:
            raise RuntimeError("store is not open")
        return await self._saver.read(functools.partial(sqlite_thread_storage, thread_id))

    # runs

    async def create_run(self, run: RunRecord) -> None:
        lease_until = self._lease_until()
        await self._write.write(lambda conn: insert_run(conn, run, lease_until))

    async def begin_run(
        self,
        run: RunRecord,
        *,
        thread_metadata: Mapping[str, Any],
        create_thread: bool = False,
        temporary_thread: bool = False,
        events: Sequence[WebhookEvent] = (),
        assistant: AssistantRecord | None = None,
    ) -> None:
        begin = BeginRun(
            run,
            self._lease_until(),
            thread_metadata,
            create_thread,
            None if temporary_thread else self._default_ttl,
            events,
            self._clock(),
            assistant,
        )
        self._webhooks.deliveries_written += await self._write.write(begin)

    async def set_run_status(
        self,
        run_id: str,
        status: RunState,
        *,
        result: Any = None,
        error: Mapping[str, Any] | None = None,
        events: Sequence[WebhookEvent] = (),
        holder: tuple[str, int] | None = None,
        thread_status: ThreadStatus | None = None,
        if_active: bool = False,
    ) -> bool:
        change = SetRunStatus(
            run_id,
            status,
            result,
            error,
            events,
            holder,
            thread_status,
            if_active,
            self._lease_until(),
            self._clock(),
        )
        written, made = await self._write.write(change)
        self._webhooks.deliveries_written += made
        return written

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._select(f"SELECT {RUN_COLUMNS} FROM gf_runs WHERE run_id = ?", (run_id,))
        return run_from_row(rows[0]) if rows else None

    @serial
    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: RunState | None = None
    ) -> list[RunRecord]:
        sql = f"SELECT {RUN_COLUMNS} FROM gf_runs WHERE thread_id = ?"
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
    async def cancel_on_record(self, run_id: str, action: StopOnRecord) -> bool:
        cur = await self._conn.execute(
            "UPDATE gf_runs SET status = 'cancelled', stop_action = ?, updated_at = ? "
            f"WHERE run_id = ? AND status IN {ACTIVE}",
            (action, self._clock().isoformat(), run_id),
        )
        await self._conn.commit()
        return cur.rowcount > 0

    async def stop_on_record(self, run_id: str) -> StopOnRecord | None:
        rows = await self._select(
            "SELECT coalesce(stop_action, 'interrupt') FROM gf_runs "
            "WHERE run_id = ? AND status = 'cancelled'",
            (run_id,),
        )
        return rows[0][0] if rows else None

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
            f"SELECT {RUN_COLUMNS} FROM gf_runs WHERE status IN ({marks}) ORDER BY created_at",
            list(statuses),
        ) as cur:
            return [run_from_row(row) for row in await cur.fetchall()]

    async def active_runs_elsewhere(self, thread_id: str, worker_id: str) -> list[RunRecord]:
        marks = ", ".join("?" for _ in ACTIVE_RUN_STATES)
        rows = await self._select(
            f"SELECT {RUN_COLUMNS} FROM gf_runs WHERE thread_id = ? AND worker_id != ? "
            f"AND status IN ({marks})",
            (thread_id, worker_id, *ACTIVE_RUN_STATES),
        )
        return [run_from_row(row) for row in rows]

    # leases

    @shielded
    @serial
    async def renew_leases(self, worker_id: str, run_ids: Sequence[str]) -> set[str]:
        if not run_ids:
            return set()
        marks = ", ".join("?" for _ in run_ids)
        rows = await self._conn.execute_fetchall(
            f"UPDATE gf_runs SET lease_expires_at = ? WHERE worker_id = ? AND {holds_lease()} "
            f"AND run_id IN ({marks}) RETURNING run_id, status",
            (self._lease_until(), worker_id, *run_ids),
        )
        renewed = {row[0] for row in rows if row[1] in ACTIVE_RUN_STATES}
        await self._conn.commit()
        return renewed

    async def claim_expired_runs(
        self,
        worker_id: str,
        graph_ids: Sequence[str],
        *,
        limit: int,
        max_attempts: int,
        abandoned_events: Callable[[RunRecord], Sequence[WebhookEvent]] | None = None,
    ) -> Claim:
        claim, made = await self._write.write(
            ClaimExpiredRuns(
                worker_id,
                graph_ids,
                limit,
                max_attempts,
                abandoned_events,
                self._lease_until(),
                self._clock(),
            )
        )
        self._webhooks.deliveries_written += made
        return claim

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
            f"w.worker_id = r.worker_id WHERE {holds_lease('r.')} AND "
            "r.lease_expires_at >= ? AND r.worker_id != ?",
            (self._clock().timestamp(), worker_id),
        ) as cur:
            return {row[0]: row[1] for row in await cur.fetchall()}

    @shielded
    @serial
    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        sql = f"UPDATE gf_runs SET lease_expires_at = 0 WHERE worker_id = ? AND {holds_lease()}"
        params: list[Any] = [worker_id]
        if run_ids is not None:
            if not run_ids:
                return 0
            sql += f" AND run_id IN ({', '.join('?' for _ in run_ids)})"
            params += list(run_ids)
        cur = await self._conn.execute(sql, params)
        await self._conn.commit()
        return cur.rowcount
