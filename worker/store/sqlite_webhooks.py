"""SQLite tables of webhooks: hooks, the outbox (events and deliveries), attempts.

Times are Unix seconds (REAL), as for run leases: the processes sharing a SQLite file share
one clock. Events are written by the store's writer (``sqlite_conn.Writer``):
``insert_events`` runs inside the operation of the change it reports (a run's status
change, ``sqlite_runs``) and commits with it. The rest runs on the store's records
connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from worker import jsonutil
from worker.store.base import shielded
from worker.store.sqlite_conn import Writer
from worker.store.sqlite_rows import to_json
from worker.store.sqlite_serial import Serial, serial
from worker.store.webhooks import (
    AttemptRecord,
    AttemptResult,
    Delivery,
    HookRecord,
    OutboxStats,
    WebhookEvent,
    WebhookStore,
)

KEEP_ATTEMPTS_PER_HOOK = 100
_HOOK_COLUMNS = (
    "hook_id, url, events, headers, secret, description, enabled, disabled_reason, "
    "failing_since, created_at, updated_at"
)
_EDITABLE = {"url", "events", "headers", "description", "enabled"}


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _hook(row: Any) -> HookRecord:
    return HookRecord(
        hook_id=row[0],
        url=row[1],
        events=jsonutil.loads(row[2]),
        headers=jsonutil.loads(row[3]),
        secret=row[4],
        description=row[5],
        enabled=bool(row[6]),
        disabled_reason=row[7],
        failing_since=_time(row[8]),
        created_at=datetime.fromtimestamp(row[9], UTC),
        updated_at=datetime.fromtimestamp(row[10], UTC),
    )


def insert_events(conn: sqlite3.Connection, events: Sequence[WebhookEvent], now_s: float) -> int:
    """Insert ``events`` and their deliveries on ``conn``, inside the caller's transaction;
    returns how many deliveries were made.

    An event nobody is to receive (no targets of its own, no enabled hook subscribed to
    it) is not written: it would only wait for the pruning of events left without a
    delivery.
    """
    made = 0
    for event in events:
        created_s = event.created_at.timestamp()
        row = (event.event_id, event.event_type, event.run_id, to_json(event.data), created_s)
        pending = "'pending', 0, ?, NULL, NULL, ?, ?, NULL, NULL"
        deliveries = (event.event_id, event.event_id, now_s, created_s, now_s)
        if event.targets:
            conn.execute("INSERT INTO gf_webhook_events VALUES (?, ?, ?, ?, ?)", row)
        params: tuple[str, ...] = ()
        if event.hook_only is not None:
            hooks, params = "hook_id = ?", (event.hook_only,)
        elif event.to_hooks:
            hooks = "enabled = 1 AND EXISTS (SELECT 1 FROM json_each(events) WHERE value = ?)"
            params = (event.event_type,)
        else:
            hooks = ""
        if hooks and not event.targets:
            # The event row only if some hook gets it (one statement when none does).
            cur = conn.execute(
                "INSERT INTO gf_webhook_events SELECT ?, ?, ?, ?, ? WHERE EXISTS "
                f"(SELECT 1 FROM gf_webhooks WHERE {hooks})",
                (*row, *params),
            )
            if not cur.rowcount:
                continue
        if hooks:
            cur = conn.execute(
                f"INSERT INTO gf_webhook_deliveries SELECT ? || '.' || hook_id, ?, 'hook', "
                f"hook_id, NULL, hook_id, {pending} FROM gf_webhooks WHERE {hooks}",
                (*deliveries, *params),
            )
            made += cur.rowcount
        for i, target in enumerate(event.targets):
            conn.execute(
                f"INSERT INTO gf_webhook_deliveries VALUES (?, ?, ?, NULL, ?, ?, {pending})",
                (
                    f"{event.event_id}.{target.kind}{i}",
                    event.event_id,
                    target.kind,
                    target.url,
                    f"{target.kind}:{target.url}",
                    now_s,
                    created_s,
                    now_s,
                ),
            )
            made += 1
    return made


class SqliteWebhookStore(WebhookStore):
    """Webhook records on the SQLite store's connection (``conn()``, used under its
    ``serial`` lock) and its writer (``writer()``, events), times from ``clock``."""

    def __init__(
        self,
        conn: Callable[[], aiosqlite.Connection],
        writer: Callable[[], Writer],
        clock: Callable[[], datetime],
        serial: Serial,
    ) -> None:
        self._conn = conn
        self._writer = writer
        self._clock = clock
        self._serial = serial

    def _now_s(self) -> float:
        return self._clock().timestamp()

    @shielded
    @serial
    async def create_hook(self, hook: HookRecord) -> None:
        await self._conn().execute(
            f"INSERT INTO gf_webhooks ({_HOOK_COLUMNS}) VALUES ({', '.join('?' * 11)})",
            (
                hook.hook_id,
                hook.url,
                to_json(hook.events),
                to_json(hook.headers),
                hook.secret,
                hook.description,
                int(hook.enabled),
                hook.disabled_reason,
                None,
                hook.created_at.timestamp(),
                hook.updated_at.timestamp(),
            ),
        )
        await self._conn().commit()

    @serial
    async def get_hook(self, hook_id: str) -> HookRecord | None:
        async with self._conn().execute(
            f"SELECT {_HOOK_COLUMNS} FROM gf_webhooks WHERE hook_id = ?", (hook_id,)
        ) as cur:
            row = await cur.fetchone()
        return _hook(row) if row else None

    @serial
    async def list_hooks(self) -> list[HookRecord]:
        async with self._conn().execute(
            f"SELECT {_HOOK_COLUMNS} FROM gf_webhooks ORDER BY created_at, hook_id"
        ) as cur:
            return [_hook(row) for row in await cur.fetchall()]

    @shielded
    @serial
    async def update_hook(self, hook_id: str, changes: Mapping[str, Any]) -> HookRecord | None:
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [self._now_s()]
        for key, value in changes.items():
            if key not in _EDITABLE:
                raise ValueError(f"cannot change {key!r} of a hook")
            sets.append(f"{key} = ?")
            params.append(to_json(value) if key in ("events", "headers") else value)
        if changes.get("enabled") is True:
            sets += ["disabled_reason = NULL", "failing_since = NULL"]
        conn = self._conn()
        cur = await conn.execute(
            f"UPDATE gf_webhooks SET {', '.join(sets)} WHERE hook_id = ?", (*params, hook_id)
        )
        if cur.rowcount and changes.get("enabled") is False:
            await _fail_pending(conn, hook_id, "hook disabled", self._now_s())
        await conn.commit()
        return await self.get_hook(hook_id) if cur.rowcount else None

    @shielded
    @serial
    async def delete_hook(self, hook_id: str) -> bool:
        conn = self._conn()
        cur = await conn.execute("DELETE FROM gf_webhooks WHERE hook_id = ?", (hook_id,))
        await conn.execute(
            "DELETE FROM gf_webhook_deliveries WHERE hook_id = ? AND status = 'pending'",
            (hook_id,),
        )
        await conn.commit()
        return cur.rowcount > 0

    async def add_events(self, events: Sequence[WebhookEvent]) -> None:
        now_s = self._now_s()
        made = await self._writer().write(lambda conn: insert_events(conn, events, now_s))
        self.deliveries_written += made

    @shielded
    @serial
    async def claim_deliveries(
        self, worker_id: str, *, limit: int, lease_s: float, exclude_targets: Sequence[str]
    ) -> list[Delivery]:
        now_s = self._now_s()
        excluded = ", ".join("?" for _ in exclude_targets)
        conn = self._conn()
        # One UPDATE ... RETURNING: SQLite takes the write lock before reading, so two
        # processes claiming at once never both get a delivery.
        rows = await conn.execute_fetchall(
            "UPDATE gf_webhook_deliveries SET worker_id = ?, lease_expires_at = ?, "
            "attempts = attempts + 1, updated_at = ? WHERE delivery_id IN (SELECT delivery_id "
            "FROM gf_webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? AND "
            f"coalesce(lease_expires_at, 0) < ? AND target_key NOT IN ({excluded}) "
            "ORDER BY next_attempt_at LIMIT ?) RETURNING delivery_id",
            (worker_id, now_s + lease_s, now_s, now_s, now_s, *exclude_targets, limit),
        )
        await conn.commit()
        if not rows:
            return []
        ids = [row[0] for row in rows]
        async with conn.execute(
            "SELECT d.delivery_id, d.event_id, e.event_type, d.kind, d.hook_id, "
            "coalesce(h.url, d.url), e.data, e.created_at, d.attempts, h.headers, h.secret "
            "FROM gf_webhook_deliveries d JOIN gf_webhook_events e USING (event_id) "
            "LEFT JOIN gf_webhooks h ON h.hook_id = d.hook_id "
            f"WHERE d.delivery_id IN ({', '.join('?' for _ in ids)}) ORDER BY d.next_attempt_at",
            ids,
        ) as cur:
            found = await cur.fetchall()
        return [
            Delivery(
                delivery_id=row[0],
                event_id=row[1],
                event_type=row[2],
                kind=row[3],
                hook_id=row[4],
                url=row[5],
                data=jsonutil.loads(row[6]),
                event_created_at=datetime.fromtimestamp(row[7], UTC),
                attempts=row[8],
                headers=jsonutil.loads(row[9]) if row[9] else {},
                secret=row[10],
            )
            for row in found
            if row[5] is not None
        ]

    @shielded
    @serial
    async def finish_attempt(
        self, worker_id: str, result: AttemptResult, *, disable_after_s: float
    ) -> str | None:
        now_s = self._now_s()
        conn = self._conn()
        next_s = None if result.retry_in_s is None else now_s + result.retry_in_s
        rows = await _fetchall(
            conn,
            "UPDATE gf_webhook_deliveries SET status = ?, next_attempt_at = "
            "coalesce(?, next_attempt_at), lease_expires_at = NULL, last_status_code = ?, "
            "last_error = ?, updated_at = ? WHERE delivery_id = ? AND worker_id = ? AND "
            "status = 'pending' RETURNING hook_id, event_id, attempts",
            (
                result.status,
                next_s,
                result.status_code,
                result.error,
                now_s,
                result.delivery_id,
                worker_id,
            ),
        )
        if not rows:
            await conn.commit()
            return None  # the lease lapsed and another worker has it: its record counts
        hook_id, event_id, attempt = rows[0]
        await conn.execute(
            "INSERT INTO gf_webhook_attempts (delivery_id, hook_id, event_id, event_type, "
            "attempt, status, status_code, duration_s, error, next_attempt_at, attempted_at) "
            "SELECT ?, ?, ?, event_type, ?, ?, ?, ?, ?, ?, ? FROM gf_webhook_events "
            "WHERE event_id = ?",
            (
                result.delivery_id,
                hook_id,
                event_id,
                attempt,
                result.status,
                result.status_code,
                result.duration_s,
                result.error,
                next_s,
                now_s,
                event_id,
            ),
        )
        disabled = None
        if hook_id is not None:
            disabled = await self._hook_health(conn, hook_id, result, now_s, disable_after_s)
        await conn.commit()
        return disabled

    @staticmethod
    async def _hook_health(
        conn: aiosqlite.Connection,
        hook_id: str,
        result: AttemptResult,
        now_s: float,
        disable_after_s: float,
    ) -> str | None:
        await conn.execute(
            "DELETE FROM gf_webhook_attempts WHERE hook_id = ? AND id <= (SELECT id FROM "
            "gf_webhook_attempts WHERE hook_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (hook_id, hook_id, KEEP_ATTEMPTS_PER_HOOK),
        )
        if result.status == "delivered":
            await conn.execute(
                "UPDATE gf_webhooks SET failing_since = NULL WHERE hook_id = ?", (hook_id,)
            )
            return None
        await conn.execute(
            "UPDATE gf_webhooks SET failing_since = coalesce(failing_since, ?) WHERE hook_id = ?",
            (now_s, hook_id),
        )
        if disable_after_s <= 0:
            return None
        reason = (
            f"disabled after failing for more than {disable_after_s:g} s "
            f"(last error: {result.error or result.status_code})"
        )
        rows = await conn.execute_fetchall(
            "UPDATE gf_webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? "
            "WHERE hook_id = ? AND enabled = 1 AND failing_since <= ? RETURNING hook_id",
            (reason, now_s, hook_id, now_s - disable_after_s),
        )
        if not rows:
            return None
        await _fail_pending(conn, hook_id, "hook disabled", now_s)
        return reason

    @serial
    async def list_attempts(self, hook_id: str, *, limit: int) -> list[AttemptRecord]:
        async with self._conn().execute(
            "SELECT delivery_id, event_id, event_type, attempt, status, status_code, "
            "duration_s, error, next_attempt_at, attempted_at FROM gf_webhook_attempts "
            "WHERE hook_id = ? ORDER BY id DESC LIMIT ?",
            (hook_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [
            AttemptRecord(
                delivery_id=row[0],
                event_id=row[1],
                event_type=row[2],
                attempt=row[3],
                status=row[4],
                status_code=row[5],
                duration_s=row[6],
                error=row[7],
                next_attempt_at=_time(row[8]),
                attempted_at=datetime.fromtimestamp(row[9], UTC),
            )
            for row in rows
        ]

    @shielded
    @serial
    async def prune(self, older_than_s: float) -> int:
        conn = self._conn()
        cur = await conn.execute(
            "DELETE FROM gf_webhook_deliveries WHERE status != 'pending' AND updated_at < ?",
            (self._now_s() - older_than_s,),
        )
        await conn.execute(
            "DELETE FROM gf_webhook_events WHERE NOT EXISTS (SELECT 1 FROM "
            "gf_webhook_deliveries d WHERE d.event_id = gf_webhook_events.event_id)"
        )
        await conn.commit()
        return cur.rowcount

    @serial
    async def outbox_stats(self) -> OutboxStats:
        async with self._conn().execute(
            "SELECT count(*), min(created_at) FROM gf_webhook_deliveries WHERE status = 'pending'"
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return OutboxStats(pending=row[0], oldest_pending_at=_time(row[1]))


async def _fail_pending(conn: aiosqlite.Connection, hook_id: str, error: str, now_s: float) -> None:
    await conn.execute(
        "UPDATE gf_webhook_deliveries SET status = 'failed', last_error = ?, "
        "lease_expires_at = NULL, updated_at = ? WHERE hook_id = ? AND status = 'pending'",
        (error, now_s, hook_id),
    )


async def _fetchall(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    # execute_fetchall runs a statement to its end in one call: a RETURNING statement left
    # half-read would make a commit by another coroutine on this connection fail.
    return list(await conn.execute_fetchall(sql, params))
