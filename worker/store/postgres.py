"""Postgres store: the records of a whole fleet, beside LangGraph's checkpoints.

One psycopg async pool serves both (autocommit, as the saver requires; dict rows); the
checkpointer is LangGraph's ``AsyncPostgresSaver`` taking a pool connection per call
(``postgres_saver``). Every worker of a fleet points at the same database, so any of them
can answer for any run.

Each write of a run's life -- begun (with its thread), its status changed (with its thread's
status and its webhook events), its thread deleted (with the checkpoints) -- is one
statement of data-modifying ``WITH`` clauses: one round trip, one transaction.

At ``open()``: the worker's own tables are migrated (``migrations.POSTGRES``, under an
advisory lock, so workers starting together apply each version once), then the
checkpointer's ``setup()`` runs under the same lock (it has no locking of its own).

Lease times are the database's ``now()``: workers on different machines never compare
their clocks. Claims lock candidate rows ``FOR UPDATE SKIP LOCKED``: concurrent sweepers
pass over each other's rows, and each run goes to exactly one of them.

The connection string may carry libpq options, e.g.
``postgresql://host/db?options=-csearch_path%3Dmyschema`` to keep a fleet in its own schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from worker import jsonutil
from worker.store import migrations
from worker.store.base import (
    ACTIVE_RUN_STATES,
    AssistantChangedError,
    AssistantRecord,
    Claim,
    RunRecord,
    RunState,
    SqlTrace,
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
from worker.store.postgres_assistants import PostgresAssistants
from worker.store.postgres_crons import PostgresCrons
from worker.store.postgres_rows import thread_from_row, utc
from worker.store.postgres_saver import PooledPostgresSaver, traced_cursor
from worker.store.postgres_storage import postgres_thread_storage
from worker.store.postgres_thread_ttl import PostgresThreadTTL
from worker.store.postgres_webhooks import PostgresWebhookStore, event_ctes, insert_events
from worker.store.storage import ThreadStorage
from worker.store.thread_ttl import ThreadTTL
from worker.store.webhooks import WebhookEvent, WebhookStore

_RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, graph_id, status, created_at, updated_at, metadata, "
    "multitask_strategy, kwargs, worker_id, result, error, attempt, lease_expires_at"
)
_ACTIVE = "('pending', 'running')"
_SYNCHRONOUS_COMMIT = ("server", "on", "off", "local", "remote_write", "remote_apply")
_LEASE = "now() + make_interval(secs => %(lease_s)s)"
_SORT_COLUMNS = {"thread_id", "created_at", "updated_at", "status"}
# A TTL's expiry from now, for an SQL expression of its minutes (NULL: no expiry).
_EXPIRY = "now() + make_interval(secs => ({minutes})::float8 * 60)"
# A thread's expiry re-armed by activity, unless a sweeper holds the thread (``{table}``: how
# the statement names the thread's row).
_REARM_OF = (
    "ttl_expires_at = CASE WHEN {table}ttl_claimed_by IS NOT NULL THEN {table}ttl_expires_at "
    "ELSE " + _EXPIRY.format(minutes="{table}ttl_minutes") + " END"
)
_REARM = _REARM_OF.format(table="")
_Conn = psycopg.AsyncConnection[DictRow]
# Executions of a statement on one connection before psycopg prepares it on the server:
# a run's statements repeat on every run, so early; one-off statements never reach it.
_PREPARE_THRESHOLD = 2


def _jsonb(value: Any) -> str:
    return jsonutil.dumps(value).decode()


def _run(row: DictRow) -> RunRecord:
    lease = row["lease_expires_at"]
    return RunRecord(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        assistant_id=row["assistant_id"],
        graph_id=row["graph_id"],
        status=row["status"],
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        metadata=row["metadata"],
        multitask_strategy=row["multitask_strategy"],
        kwargs=row["kwargs"],
        worker_id=row["worker_id"],
        result=row["result"],
        error=row["error"],
        attempt=row["attempt"],
        lease_expires_at=utc(lease) if lease is not None else None,
    )


def _thread_filters(query: ThreadQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of a thread search or count."""
    where = ["metadata @> %s::jsonb"]
    params: list[Any] = [_jsonb(dict(query.metadata or {}))]
    if query.ids:
        where.append("thread_id = ANY(%s)")
        params.append(list(query.ids))
    if query.status:
        where.append("status = %s")
        params.append(query.status)
    return " AND ".join(where), params


class PostgresStore(PostgresAssistants, PostgresCrons, PostgresThreadTTL, Store):
    """The fleet's store (``WORKER_STORE=postgresql://...``). See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        lease_s: float = 30.0,
        pool_size: int = 10,
        prepared_statements: bool = True,
        synchronous_commit: str = "server",
        default_ttl: ThreadTTL | None = None,
        trace: SqlTrace | None = None,
    ) -> None:
        """``default_ttl``: the TTL of threads created without one. ``prepared_statements``:
        whether connections prepare statements they send often (see ``open``).
        ``synchronous_commit``: set on each connection, unless ``server`` (the server's own).
        ``trace``, when given, is called with every SQL statement sent through a cursor
        (``BEGIN``/``COMMIT`` of explicit transactions are not): for diagnostics and tests."""
        if synchronous_commit not in _SYNCHRONOUS_COMMIT:
            raise ValueError(f"unknown synchronous_commit {synchronous_commit!r}")
        self._synchronous_commit = synchronous_commit
        self._url = url
        self._default_ttl = default_ttl
        self._lease_s = lease_s
        self._pool_size = pool_size
        self._prepare_threshold = _PREPARE_THRESHOLD if prepared_statements else None
        self._trace = trace
        self._pool: AsyncConnectionPool[_Conn] | None = None
        self._saver: PooledPostgresSaver | None = None
        self._webhooks = PostgresWebhookStore(lambda: self.pool.connection())

    async def _configure(self, conn: _Conn) -> None:
        """A new pool connection's session settings (autocommit: they hold at once)."""
        await conn.execute(
            "SELECT set_config('synchronous_commit', %s, false)", (self._synchronous_commit,)
        )

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]:
        if self._saver is None:
            raise RuntimeError("store is not open")
        return self._saver

    @property
    def webhooks(self) -> WebhookStore:
        return self._webhooks

    @property
    def pool(self) -> AsyncConnectionPool[_Conn]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def open(self) -> None:
        # What AsyncPostgresSaver needs: autocommit, dict rows. Server-side prepares: a run
        # sends the same few statements each time, and parsing and planning them again was
        # the largest share of the database's work; they are off (None) only for poolers
        # that hand a session's statements to another server connection (PgBouncer in
        # transaction mode before 1.21).
        options: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            "prepare_threshold": self._prepare_threshold,
        }
        if self._trace is not None:
            options["cursor_factory"] = traced_cursor(self._trace)
        pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            kwargs=options,
            configure=self._configure if self._synchronous_commit != "server" else None,
        )
        await pool.open(wait=True, timeout=30.0)
        self._pool = pool
        try:
            async with pool.connection() as conn:
                await self._migrate(conn)
                await _advisory_lock(conn)
                try:
                    saver = PooledPostgresSaver(pool)
                    await saver.setup()
                finally:
                    await conn.execute(
                        "SELECT pg_advisory_unlock(%s)", (migrations.POSTGRES_SETUP_LOCK_KEY,)
                    )
            self._saver = saver
        except BaseException:
            await self.close()
            raise

    @staticmethod
    async def _migrate(conn: _Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.POSTGRES_LOCK_KEY,))
            await conn.execute(migrations.POSTGRES_MIGRATIONS_TABLE_DDL)
            cur = await conn.execute(f"SELECT version FROM {migrations.MIGRATIONS_TABLE}")
            applied = {row["version"] for row in await cur.fetchall()}
            for migration in migrations.POSTGRES:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {migrations.MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )

    async def close(self) -> None:
        await finish_writes(self)
        await finish_writes(self._webhooks)
        self._saver = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _fetch(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[DictRow]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    # threads

    @shielded
    async def create_thread(
        self, thread_id: str, metadata: Mapping[str, Any], *, ttl: ThreadTTL | None = None
    ) -> ThreadRecord:
        ttl = ttl or self._default_ttl
        try:
            (row,) = await self._fetch(
                "INSERT INTO gf_threads (thread_id, created_at, updated_at, metadata, status, "
                "ttl_strategy, ttl_minutes, ttl_expires_at) VALUES (%(thread_id)s, now(), now(), "
                "%(metadata)s::jsonb, 'idle', %(strategy)s, %(minutes)s, "
                f"{_EXPIRY.format(minutes='%(minutes)s')}) RETURNING *",
                {
                    "thread_id": thread_id,
                    "metadata": _jsonb(dict(metadata)),
                    "strategy": ttl.strategy if ttl else None,
                    "minutes": ttl.minutes if ttl else None,
                },
            )
        except psycopg.errors.UniqueViolation as exc:
            raise ThreadExistsError(thread_id) from exc
        return thread_from_row(row)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._fetch("SELECT * FROM gf_threads WHERE thread_id = %s", (thread_id,))
        return thread_from_row(rows[0]) if rows else None

    @shielded
    async def update_thread(
        self,
        thread_id: str,
        *,
        status: ThreadStatus | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: ThreadTTL | None = None,
    ) -> None:
        # Activity re-arms the expiry (right-hand sides read the row as it was, hence the
        # new TTL's minutes first), unless a sweeper holds the thread.
        minutes = "coalesce(%(minutes)s, ttl_minutes)"
        await self._fetch(
            "UPDATE gf_threads SET status = coalesce(%(status)s, status), "
            "metadata = metadata || %(metadata)s::jsonb, "
            "updated_at = CASE WHEN %(changed)s THEN now() ELSE updated_at END, "
            "ttl_strategy = coalesce(%(strategy)s, ttl_strategy), "
            f"ttl_minutes = {minutes}, ttl_expires_at = CASE WHEN ttl_claimed_by IS NOT NULL "
            f"THEN ttl_expires_at ELSE {_EXPIRY.format(minutes=minutes)} END "
            "WHERE thread_id = %(thread_id)s",
            {
                "status": status,
                "metadata": _jsonb(dict(metadata or {})),
                "strategy": ttl.strategy if ttl else None,
                "minutes": ttl.minutes if ttl else None,
                "changed": bool(metadata) or status is not None or ttl is not None,
                "thread_id": thread_id,
            },
        )

    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]:
        where, params = _thread_filters(query)
        if query.sort_by not in _SORT_COLUMNS:
            raise ValueError(f"cannot sort threads by {query.sort_by!r}")
        order = "ASC" if query.sort_order == "asc" else "DESC"
        rows = await self._fetch(
            f"SELECT * FROM gf_threads WHERE {where} "
            f"ORDER BY {query.sort_by} {order}, thread_id {order} LIMIT %s OFFSET %s",
            [*params, query.limit, query.offset],
        )
        return [thread_from_row(row) for row in rows]

    async def count_threads(self, query: ThreadQuery) -> int:
        where, params = _thread_filters(query)
        rows = await self._fetch(f"SELECT count(*) AS n FROM gf_threads WHERE {where}", params)
        return int(rows[0]["n"])

    @shielded
    async def delete_thread(
        self,
        thread_id: str,
        *,
        events: Sequence[WebhookEvent] = (),
        ttl_holder: str | None = None,
    ) -> bool:
        # One statement: the thread, its runs and crons, and LangGraph's checkpoints. With
        # a TTL holder, the rest goes only with the thread: a claim that lapsed (another
        # sweeper took the thread over) deletes nothing.
        tables = ("gf_runs", "gf_crons", "checkpoints", "checkpoint_blobs", "checkpoint_writes")
        deletes = ", ".join(
            f"d_{table} AS (DELETE FROM {table} WHERE thread_id = %(thread)s "
            "AND (%(holder)s::text IS NULL OR EXISTS (SELECT 1 FROM t)))"
            for table in tables
        )
        sql = (
            "WITH t AS (DELETE FROM gf_threads WHERE thread_id = %(thread)s "
            "AND (%(holder)s::text IS NULL OR ttl_claimed_by = %(holder)s) RETURNING 1), "
        )
        sql += deletes
        params = {"thread": thread_id, "holder": ttl_holder}
        existed, made = await self._change(sql, params, events, gate="t")
        self._webhooks.deliveries_written += made
        return existed

    async def thread_storage(self, thread_id: str) -> ThreadStorage:
        return await postgres_thread_storage(self.pool, thread_id)

    async def _change(
        self,
        sql: str,
        params: Mapping[str, Any],
        events: Sequence[WebhookEvent],
        *,
        gate: str,
    ) -> tuple[bool, int]:
        """Run ``sql`` (``WITH`` clauses, one named ``gate``) and write ``events`` when ``gate``
        returned a row, in one transaction; whether it did, and how many deliveries the events
        made. One statement (one round trip) unless an event has targets of its own."""
        ctes = event_ctes(events, gate)
        if ctes is not None:
            more, event_params = ctes
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    f"{sql}, {more} SELECT (SELECT count(*) FROM {gate}) AS changed, "
                    "(SELECT n FROM deliveries) AS made",
                    {**params, **event_params},
                )
                row = await cur.fetchone()
            assert row is not None
            return row["changed"] > 0, int(row["made"])
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"{sql} SELECT (SELECT count(*) FROM {gate}) AS changed", params
            )
            row = await cur.fetchone()
            assert row is not None
            if not row["changed"]:
                return False, 0
            return True, await insert_events(conn, events)

    # runs

    def _run_insert(self, run: RunRecord, *, guarded: bool = False) -> tuple[str, dict[str, Any]]:
        """The ``INSERT`` of ``run`` (overwriting the record of its id), with its parameters;
        ``guarded``: only if the statement's ``a`` CTE has a row."""
        values = {
            "run_id": run.run_id,
            "thread_id": run.thread_id,
            "assistant_id": run.assistant_id,
            "graph_id": run.graph_id,
            "status": run.status,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "metadata": _jsonb(run.metadata),
            "multitask_strategy": run.multitask_strategy,
            "kwargs": _jsonb(run.kwargs),
            "worker_id": run.worker_id,
            "result": None if run.result is None else _jsonb(run.result),
            "error": None if run.error is None else _jsonb(run.error),
            "attempt": run.attempt,
            "active": run.status in ACTIVE_RUN_STATES,
            "lease_s": self._lease_s,
        }
        columns = [c.strip() for c in _RUN_COLUMNS.split(",")]
        placeholders = [
            f"%({c})s::jsonb" if c in ("metadata", "kwargs", "result", "error") else f"%({c})s"
            for c in columns[:-1]
        ]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        row = f"{', '.join(placeholders)}, CASE WHEN %(active)s THEN {_LEASE} END"
        source = f"SELECT {row} WHERE EXISTS (SELECT 1 FROM a)" if guarded else f"VALUES ({row})"
        sql = (
            f"INSERT INTO gf_runs ({_RUN_COLUMNS}) {source} "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}"
        )
        return sql, values

    @shielded
    async def create_run(self, run: RunRecord) -> None:
        await self._fetch(*self._run_insert(run))

    @shielded
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
        insert, params = self._run_insert(run, guarded=assistant is not None)
        ttl = None if temporary_thread else self._default_ttl
        params |= {
            "thread_id": run.thread_id,
            "thread_metadata": _jsonb(dict(thread_metadata)),
            "ttl_strategy": ttl.strategy if ttl else None,
            "ttl_minutes": ttl.minutes if ttl else None,
        }
        # A thread created here gets the default TTL, armed from now; an existing one has its
        # TTL re-armed (activity). In DO UPDATE, gf_threads is the existing row.
        guard = " WHERE EXISTS (SELECT 1 FROM a)" if assistant is not None else ""
        if create_thread:
            row = (
                "%(thread_id)s, now(), now(), %(thread_metadata)s::jsonb, 'busy', "
                "%(ttl_strategy)s, %(ttl_minutes)s::float8, "
                f"{_EXPIRY.format(minutes='%(ttl_minutes)s')}"
            )
            thread = (
                "INSERT INTO gf_threads (thread_id, created_at, updated_at, metadata, status, "
                "ttl_strategy, ttl_minutes, ttl_expires_at) "
                + (f"SELECT {row}{guard} " if guard else f"VALUES ({row}) ")
                + "ON CONFLICT (thread_id) DO UPDATE SET status = 'busy', "
                "metadata = gf_threads.metadata || excluded.metadata, updated_at = now(), "
                f"{_REARM_OF.format(table='gf_threads.')}"
            )
        else:
            thread = (
                "UPDATE gf_threads SET status = 'busy', updated_at = now(), "
                f"metadata = metadata || %(thread_metadata)s::jsonb, {_REARM} "
                "WHERE thread_id = %(thread_id)s"
                + (" AND EXISTS (SELECT 1 FROM a)" if guard else "")
            )
        # One statement: the thread and the run (and the events, gated on the run's row),
        # all gated on the assistant being as read (the a CTE), when one is given.
        sql = f"WITH t AS ({thread}), r AS ({insert} RETURNING 1)"
        if assistant is not None:
            params |= {
                "as_read_id": assistant.assistant_id,
                "as_read_version": assistant.version,
                "as_read_updated": assistant.updated_at,
            }
            sql = (
                "WITH a AS (SELECT 1 FROM gf_assistants WHERE assistant_id = %(as_read_id)s "
                "AND version = %(as_read_version)s AND updated_at = %(as_read_updated)s), "
                + sql[len("WITH ") :]
            )
        written, made = await self._change(sql, params, events, gate="r")
        self._webhooks.deliveries_written += made
        if not written:
            raise AssistantChangedError(run.assistant_id)

    @shielded
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
        worker, attempt = holder if holder is not None else (None, None)
        # An ended run holds no lease: nothing is left to claim. The thread's status and the
        # webhook events change with the run's record, in the same statement: the outbox
        # has them iff the change happened. The thread's status is activity: it re-arms the
        # thread's TTL (unless a sweeper holds it).
        sql = (
            "WITH r AS (UPDATE gf_runs SET status = %(status)s, updated_at = now(), "
            "result = coalesce(%(result)s::jsonb, result), "
            "error = coalesce(%(error)s::jsonb, error), lease_expires_at = CASE WHEN "
            f"%(active)s THEN coalesce(lease_expires_at, {_LEASE}) END "
            "WHERE run_id = %(run_id)s AND (%(worker)s::text IS NULL "
            "OR (worker_id = %(worker)s AND attempt = %(attempt)s)) "
            f"AND (NOT %(if_active)s::boolean OR status IN {_ACTIVE}) RETURNING thread_id), "
            "t AS (UPDATE gf_threads SET status = %(thread_status)s, updated_at = now(), "
            f"{_REARM} WHERE %(thread_status)s::text IS NOT NULL "
            "AND thread_id IN (SELECT thread_id FROM r))"
        )
        params = {
            "status": status,
            "result": None if result is None else _jsonb(result),
            "error": None if error is None else _jsonb(dict(error)),
            "active": status in ACTIVE_RUN_STATES,
            "lease_s": self._lease_s,
            "run_id": run_id,
            "worker": worker,
            "attempt": attempt,
            "thread_status": thread_status,
            "if_active": if_active,
        }
        written, made = await self._change(sql, params, events, gate="r")
        self._webhooks.deliveries_written += made
        return written

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE run_id = %s", (run_id,))
        return _run(rows[0]) if rows else None

    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: RunState | None = None
    ) -> list[RunRecord]:
        rows = await self._fetch(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE thread_id = %s "
            "AND (%s::text IS NULL OR status = %s) "
            "ORDER BY created_at DESC, seq DESC LIMIT %s OFFSET %s",
            (thread_id, status, status, limit, offset),
        )
        return [_run(row) for row in rows]

    @shielded
    async def cancel_on_record(self, run_id: str, action: StopOnRecord) -> bool:
        rows = await self._fetch(
            "UPDATE gf_runs SET status = 'cancelled', stop_action = %s, updated_at = now() "
            f"WHERE run_id = %s AND status IN {_ACTIVE} RETURNING 1",
            (action, run_id),
        )
        return bool(rows)

    async def stop_on_record(self, run_id: str) -> StopOnRecord | None:
        rows = await self._fetch(
            "SELECT coalesce(stop_action, 'interrupt') AS action FROM gf_runs "
            "WHERE run_id = %s AND status = 'cancelled'",
            (run_id,),
        )
        return rows[0]["action"] if rows else None

    @shielded
    async def delete_run(self, run_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("DELETE FROM gf_runs WHERE run_id = %s", (run_id,))
            return cur.rowcount > 0

    async def find_active_runs(self, statuses: Sequence[RunState]) -> list[RunRecord]:
        rows = await self._fetch(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE status = ANY(%s) ORDER BY created_at, seq",
            (list(statuses),),
        )
        return [_run(row) for row in rows]

    async def active_runs_elsewhere(self, thread_id: str, worker_id: str) -> list[RunRecord]:
        rows = await self._fetch(
            f"SELECT {_RUN_COLUMNS} FROM gf_runs WHERE thread_id = %s AND worker_id != %s "
            f"AND status IN {_ACTIVE}",
            (thread_id, worker_id),
        )
        return [_run(row) for row in rows]

    # leases

    @shielded
    async def renew_leases(self, worker_id: str, run_ids: Sequence[str]) -> set[str]:
        if not run_ids:
            return set()
        rows = await self._fetch(
            f"UPDATE gf_runs SET lease_expires_at = {_LEASE} WHERE worker_id = %(worker)s "
            f"AND {holds_lease()} AND run_id = ANY(%(ids)s) RETURNING run_id, status",
            {"lease_s": self._lease_s, "worker": worker_id, "ids": list(run_ids)},
        )
        return {row["run_id"] for row in rows if row["status"] in ACTIVE_RUN_STATES}

    @shielded
    async def claim_expired_runs(
        self,
        worker_id: str,
        graph_ids: Sequence[str],
        *,
        limit: int,
        max_attempts: int,
        abandoned_events: Callable[[RunRecord], Sequence[WebhookEvent]] | None = None,
    ) -> Claim:
        params = {
            "worker": worker_id,
            "graphs": list(graph_ids),
            "limit": limit,
            "max_attempts": max_attempts,
            "lease_s": self._lease_s,
            "error": _jsonb(
                {
                    "error": "RunAbandoned",
                    "message": f"run abandoned after {max_attempts} attempts: each worker "
                    "executing it stopped before it ended",
                }
            ),
        }
        expired = f"status IN {_ACTIVE} AND lease_expires_at < now()"
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE gf_runs SET status = 'error', error = %(error)s::jsonb, "
                f"lease_expires_at = NULL, updated_at = now() WHERE run_id IN (SELECT run_id "
                f"FROM gf_runs WHERE {expired} AND attempt >= %(max_attempts)s "
                f"FOR UPDATE SKIP LOCKED) RETURNING {_RUN_COLUMNS}",
                params,
            )
            abandoned = [_run(row) for row in await cur.fetchall()]
            if abandoned_events is not None:
                for record in abandoned:
                    made = await insert_events(conn, abandoned_events(record))
                    self._webhooks.deliveries_written += made
            if abandoned:
                await conn.execute(
                    "UPDATE gf_threads t SET status = 'error', updated_at = now() "
                    "WHERE t.thread_id = ANY(%s) AND t.status = 'busy' AND NOT EXISTS (SELECT 1 "
                    f"FROM gf_runs r WHERE r.thread_id = t.thread_id AND r.status IN {_ACTIVE})",
                    ([r.thread_id for r in abandoned],),
                )
            claimed: list[RunRecord] = []
            if limit > 0 and graph_ids:
                # The NOT EXISTS keeps a thread's runs in order: only its oldest active run
                # is claimable; the next one becomes so when that one ends.
                cur = await conn.execute(
                    f"UPDATE gf_runs SET worker_id = %(worker)s, lease_expires_at = {_LEASE}, "
                    "attempt = attempt + 1, updated_at = now() WHERE run_id IN (SELECT r.run_id "
                    f"FROM gf_runs r WHERE {holds_lease('r.')} AND r.lease_expires_at < now() "
                    "AND r.graph_id = ANY(%(graphs)s) AND NOT EXISTS (SELECT 1 FROM gf_runs o "
                    f"WHERE o.thread_id = r.thread_id AND {holds_lease('o.')} "
                    "AND o.created_at < r.created_at) "
                    "ORDER BY r.created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                    f"RETURNING {_RUN_COLUMNS}",
                    params,
                )
                claimed = sorted((_run(row) for row in await cur.fetchall()), key=_created)
        return Claim(claimed, abandoned)

    @shielded
    async def record_worker(self, worker_id: str, url: str) -> None:
        await self._fetch(
            "INSERT INTO gf_workers (worker_id, url, updated_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (worker_id) DO UPDATE SET url = excluded.url, updated_at = now() "
            "RETURNING worker_id",
            (worker_id, url),
        )

    async def lease_holders(self, worker_id: str) -> dict[str, str]:
        rows = await self._fetch(
            "SELECT DISTINCT w.worker_id, w.url FROM gf_runs r JOIN gf_workers w ON "
            "w.worker_id = r.worker_id WHERE r.lease_expires_at >= now() AND "
            f"{holds_lease('r.')} "
            "AND r.worker_id != %s",
            (worker_id,),
        )
        return {row["worker_id"]: row["url"] for row in rows}

    @shielded
    async def release_runs(self, worker_id: str, run_ids: Sequence[str] | None = None) -> int:
        if run_ids is not None and not run_ids:
            return 0
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE gf_runs SET lease_expires_at = 'epoch' WHERE worker_id = %s "
                f"AND {holds_lease()} "
                "AND (%s::text[] IS NULL OR run_id = ANY(%s))",
                (worker_id, run_ids and list(run_ids), run_ids and list(run_ids)),
            )
            return cur.rowcount


async def _advisory_lock(conn: _Conn, poll_s: float = 0.05) -> None:
    """Take the session advisory lock, polling rather than blocking.

    The checkpointer's setup creates indexes CONCURRENTLY, which waits for every open
    transaction: a worker blocked inside ``pg_advisory_lock`` would be one, and the two
    would wait for each other forever.
    """
    while True:
        cur = await conn.execute(
            "SELECT pg_try_advisory_lock(%s) AS locked", (migrations.POSTGRES_SETUP_LOCK_KEY,)
        )
        row = await cur.fetchone()
        if row is not None and row["locked"]:
            return
        await asyncio.sleep(poll_s)


def _created(run: RunRecord) -> datetime:
    return run.created_at
