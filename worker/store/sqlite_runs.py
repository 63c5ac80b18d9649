"""The write transactions of a run's life on SQLite, as operations on a connection.

Each operation is one step of a run's life -- begun (created, and started when it starts at
once), status changed (ended, with its thread's new status), its thread deleted (with the
thread's checkpoints), runs claimed from dead workers -- and ``SqliteStore`` hands each to
the store's ``Writer`` (``sqlite_conn``), which runs it on the writer's thread inside a
transaction and commits it, possibly together with other writes that queued up meanwhile.
An operation only executes statements: it never begins or commits, and it raises to undo
its own. Webhook events go to the outbox inside the same operation as the change they
report (``insert_events``).

A thread's TTL (``worker.store.thread_ttl``) is armed when a run creates the thread and
re-armed by each step that writes the thread's status -- a run's beginning, its start, its
end -- inside that same statement, as ``update_thread`` re-arms it for any other activity.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.store.base import (
    ACTIVE_RUN_STATES,
    AssistantChangedError,
    AssistantRecord,
    Claim,
    RunRecord,
    RunState,
    ThreadStatus,
    holds_lease,
)
from worker.store.sqlite_rows import run_from_row, to_json
from worker.store.sqlite_webhooks import insert_events
from worker.store.thread_ttl import ThreadTTL
from worker.store.webhooks import WebhookEvent

RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, graph_id, status, created_at, updated_at, metadata, "
    "multitask_strategy, kwargs, worker_id, result, error, attempt, lease_expires_at"
)
ACTIVE = "('pending', 'running')"
# A thread's expiry re-armed by activity at a Unix time (the one parameter), unless a sweeper
# holds the thread; NULL while it has no TTL.
REARM = (
    "ttl_expires_at = CASE WHEN ttl_claimed_by IS NOT NULL THEN ttl_expires_at "
    "WHEN ttl_minutes IS NULL THEN NULL ELSE ? + ttl_minutes * 60 END"
)


def run_values(run: RunRecord, lease_until: float) -> tuple[Any, ...]:
    """``run`` as the values of ``RUN_COLUMNS``; an active run holds a lease until
    ``lease_until``."""
    return (
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
        lease_until if run.status in ACTIVE_RUN_STATES else None,
    )


def insert_run(conn: sqlite3.Connection, run: RunRecord, lease_until: float) -> None:
    """Insert ``run``, or overwrite the record of its id (a restart)."""
    conn.execute(
        f"INSERT OR REPLACE INTO gf_runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 15)})",
        run_values(run, lease_until),
    )


@dataclass(frozen=True, slots=True)
class BeginRun:
    """A new run on record and its thread busy: ``Store.begin_run``. A thread created here
    gets ``ttl`` (armed from now); an existing one has its TTL re-armed."""

    run: RunRecord
    lease_until: float
    thread_metadata: Mapping[str, Any]
    create_thread: bool
    ttl: ThreadTTL | None
    events: Sequence[WebhookEvent]
    now: datetime
    assistant: AssistantRecord | None = None

    def __call__(self, conn: sqlite3.Connection) -> int:
        """Returns how many webhook deliveries the events made; raises
        ``AssistantChangedError`` (its savepoint undone) when ``assistant`` is not as read."""
        if (
            self.assistant is not None
            and not conn.execute(
                "SELECT 1 FROM gf_assistants WHERE assistant_id = ? AND version = ? "
                "AND updated_at = ?",
                (
                    self.assistant.assistant_id,
                    self.assistant.version,
                    self.assistant.updated_at.isoformat(),
                ),
            ).fetchone()
        ):
            raise AssistantChangedError(self.assistant.assistant_id)
        now, metadata = self.now.isoformat(), to_json(dict(self.thread_metadata))
        at = self.now.timestamp()
        if self.create_thread:
            ttl = self.ttl
            # json_patch merges the run's keys into an existing thread's metadata; in DO
            # UPDATE, bare columns are the existing row's.
            conn.execute(
                "INSERT INTO gf_threads (thread_id, created_at, updated_at, metadata, status, "
                "ttl_strategy, ttl_minutes, ttl_expires_at) VALUES (?, ?, ?, ?, 'busy', ?, ?, ?) "
                "ON CONFLICT (thread_id) DO UPDATE SET status = 'busy', "
                "metadata = json_patch(metadata, excluded.metadata), "
                f"updated_at = excluded.updated_at, {REARM}",
                (
                    self.run.thread_id,
                    now,
                    now,
                    metadata,
                    ttl.strategy if ttl else None,
                    ttl.minutes if ttl else None,
                    ttl.expiry(self.now).timestamp() if ttl else None,
                    at,
                ),
            )
        else:
            conn.execute(
                "UPDATE gf_threads SET status = 'busy', metadata = json_patch(metadata, ?), "
                f"updated_at = ?, {REARM} WHERE thread_id = ?",
                (metadata, now, at, self.run.thread_id),
            )
        insert_run(conn, self.run, self.lease_until)
        return insert_events(conn, self.events, self.now.timestamp())


@dataclass(frozen=True, slots=True)
class SetRunStatus:
    """A run's status change, fenced by ``holder`` and, with ``if_active``, written only over
    a pending or running status: ``Store.set_run_status``."""

    run_id: str
    status: RunState
    result: Any
    error: Mapping[str, Any] | None
    events: Sequence[WebhookEvent]
    holder: tuple[str, int] | None
    thread_status: ThreadStatus | None
    if_active: bool
    lease_until: float
    now: datetime

    def __call__(self, conn: sqlite3.Connection) -> tuple[bool, int]:
        """Whether the record was written, and how many webhook deliveries that made."""
        worker, attempt = self.holder if self.holder is not None else (None, None)
        now = self.now.isoformat()
        # An ended run holds no lease: nothing is left to claim.
        cur = conn.execute(
            "UPDATE gf_runs SET status = ?, updated_at = ?, result = coalesce(?, result), "
            "error = coalesce(?, error), lease_expires_at = CASE WHEN ? THEN "
            "coalesce(lease_expires_at, ?) END WHERE run_id = ? "
            "AND (? IS NULL OR (worker_id = ? AND attempt = ?)) "
            f"AND (NOT ? OR status IN {ACTIVE}) RETURNING thread_id",
            (
                self.status,
                now,
                None if self.result is None else to_json(self.result),
                None if self.error is None else to_json(dict(self.error)),
                self.status in ACTIVE_RUN_STATES,
                self.lease_until,
                self.run_id,
                worker,
                worker,
                attempt,
                self.if_active,
            ),
        )
        row = cur.fetchone()
        if row is None:
            return False, 0
        if self.thread_status is not None:
            conn.execute(
                f"UPDATE gf_threads SET status = ?, updated_at = ?, {REARM} WHERE thread_id = ?",
                (self.thread_status, now, self.now.timestamp(), row[0]),
            )
        # Same transaction as the status: the outbox has the events iff the change happened.
        return True, insert_events(conn, self.events, self.now.timestamp())


@dataclass(frozen=True, slots=True)
class DeleteThread:
    """A thread with its runs, crons and checkpoints: ``Store.delete_thread``; with
    ``ttl_holder``, only while that worker holds the thread's TTL claim."""

    thread_id: str
    events: Sequence[WebhookEvent]
    ttl_holder: str | None
    now: datetime

    def __call__(self, conn: sqlite3.Connection) -> tuple[bool, int]:
        """Whether the thread existed, and how many webhook deliveries the events made."""
        if self.ttl_holder is None:
            cur = conn.execute("DELETE FROM gf_threads WHERE thread_id = ?", (self.thread_id,))
        else:
            cur = conn.execute(
                "DELETE FROM gf_threads WHERE thread_id = ? AND ttl_claimed_by = ?",
                (self.thread_id, self.ttl_holder),
            )
        existed = cur.rowcount > 0
        if self.ttl_holder is not None and not existed:
            return False, 0  # the claim lapsed and another sweeper took the thread over
        for table in ("gf_runs", "gf_crons", "checkpoints", "writes"):
            conn.execute(f"DELETE FROM {table} WHERE thread_id = ?", (self.thread_id,))
        if not existed:
            return False, 0
        return True, insert_events(conn, self.events, self.now.timestamp())


@dataclass(frozen=True, slots=True)
class ClaimExpiredRuns:
    """Runs whose lease expired, taken over or given up: ``Store.claim_expired_runs``."""

    worker_id: str
    graph_ids: Sequence[str]
    limit: int
    max_attempts: int
    abandoned_events: Callable[[RunRecord], Sequence[WebhookEvent]] | None
    lease_until: float
    now: datetime

    def __call__(self, conn: sqlite3.Connection) -> tuple[Claim, int]:
        """The claim, and how many webhook deliveries the abandoned runs' events made."""
        now = self.now
        expired = f"status IN {ACTIVE} AND lease_expires_at < ?"
        error = to_json(
            {
                "error": "RunAbandoned",
                "message": f"run abandoned after {self.max_attempts} attempts: each worker "
                "executing it stopped before it ended",
            }
        )
        rows = conn.execute(
            f"UPDATE gf_runs SET status = 'error', error = ?, lease_expires_at = NULL, "
            f"updated_at = ? WHERE {expired} AND attempt >= ? RETURNING {RUN_COLUMNS}",
            (error, now.isoformat(), now.timestamp(), self.max_attempts),
        ).fetchall()
        abandoned = [run_from_row(row) for row in rows]
        deliveries = 0
        if self.abandoned_events is not None:
            for record in abandoned:
                deliveries += insert_events(conn, self.abandoned_events(record), now.timestamp())
        claimed: list[RunRecord] = []
        if self.limit > 0 and self.graph_ids:
            graphs = ", ".join("?" for _ in self.graph_ids)
            # The NOT EXISTS keeps a thread's runs in order: only its oldest active run is
            # claimable; the next one becomes so when that one ends.
            rows = conn.execute(
                f"UPDATE gf_runs SET worker_id = ?, lease_expires_at = ?, attempt = attempt + 1, "
                f"updated_at = ? WHERE run_id IN (SELECT r.run_id FROM gf_runs r WHERE "
                f"{holds_lease('r.')} AND r.lease_expires_at < ? AND r.graph_id IN ({graphs}) "
                f"AND NOT EXISTS (SELECT 1 FROM gf_runs o WHERE o.thread_id = r.thread_id AND "
                f"{holds_lease('o.')} AND o.created_at < r.created_at) "
                "ORDER BY r.created_at LIMIT ?) "
                f"RETURNING {RUN_COLUMNS}",
                (
                    self.worker_id,
                    self.lease_until,
                    now.isoformat(),
                    now.timestamp(),
                    *self.graph_ids,
                    self.limit,
                ),
            ).fetchall()
            claimed = sorted((run_from_row(row) for row in rows), key=lambda r: r.created_at)
        if abandoned:
            conn.execute(
                "UPDATE gf_threads SET status = 'error', updated_at = ? WHERE status = 'busy' "
                f"AND thread_id IN ({', '.join('?' for _ in abandoned)}) AND thread_id NOT IN "
                f"(SELECT thread_id FROM gf_runs WHERE status IN {ACTIVE})",
                (now.isoformat(), *(r.thread_id for r in abandoned)),
            )
        return Claim(claimed, abandoned), deliveries
