"""Postgres tables of webhooks: hooks, the outbox (events and deliveries), attempts.

Times are the database's ``now()``, as for run leases. ``insert_events`` runs on the
connection its caller passes, inside the caller's transaction (a run's status change).
Claims lock candidate rows ``FOR UPDATE SKIP LOCKED``: each delivery goes to one worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow

from worker import jsonutil
from worker.store.base import shielded
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
_EDITABLE = {"url", "events", "headers", "description", "enabled"}
_Conn = psycopg.AsyncConnection[DictRow]
_PENDING = "'pending', 0, now(), NULL, NULL, %(created)s, now(), NULL, NULL"
# An event's data in an INSERT that may write no row (no hook wants the event; the change it
# reports did not happen): a text parameter, so the server parses it as JSON only for a row it
# writes. As ``%s::jsonb`` the parameter is jsonb and parsed at bind time, whether or not the
# row is written, for every run, though most runs have no hook to receive their events.
_LAZY_DATA = "%({param})s::text::jsonb"


def _jsonb(value: Any) -> str:
    return jsonutil.dumps(value).decode()


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _hook(row: DictRow) -> HookRecord:
    return HookRecord(
        hook_id=row["hook_id"],
        url=row["url"],
        events=row["events"],
        headers=row["headers"],
        secret=row["secret"],
        description=row["description"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        failing_since=_utc(row["failing_since"]),
        created_at=row["created_at"].astimezone(UTC),
        updated_at=row["updated_at"].astimezone(UTC),
    )


async def insert_events(conn: _Conn, events: Sequence[WebhookEvent]) -> int:
    """Insert ``events`` and their deliveries on ``conn``, inside the caller's transaction;
    returns how many deliveries were made.

    An event nobody is to receive (no targets of its own, no enabled hook subscribed to
    it) is not written: it would only wait for the pruning of events left without a
    delivery. Such an event costs one statement.
    """
    made = 0
    for event in events:
        params: dict[str, Any] = {
            "id": event.event_id,
            "type": event.event_type,
            "run": event.run_id,
            "data": _jsonb(event.data),
            "created": event.created_at,
            "hook": event.hook_only,
        }
        if event.hook_only is not None:
            hooks = "hook_id = %(hook)s"
        elif event.to_hooks:
            hooks = "enabled AND events ? %(type)s"
        else:
            hooks = ""
        row = "%(id)s, %(type)s, %(run)s, %(data)s::jsonb, %(created)s"
        if not event.targets:
            if not hooks:
                continue
            # One statement: the event row only if some hook gets it, and its deliveries.
            lazy = f"%(id)s, %(type)s, %(run)s, {_LAZY_DATA.format(param='data')}, %(created)s"
            cur = await conn.execute(
                f"WITH h AS (SELECT hook_id FROM gf_webhooks WHERE {hooks}), "
                f"e AS (INSERT INTO gf_webhook_events SELECT {lazy} WHERE EXISTS "
                "(SELECT 1 FROM h) RETURNING event_id) "
                "INSERT INTO gf_webhook_deliveries SELECT e.event_id || '.' || h.hook_id, "
                f"e.event_id, 'hook', h.hook_id, NULL, h.hook_id, {_PENDING} FROM e, h",
                params,
            )
            made += max(cur.rowcount, 0)
            continue
        await conn.execute(f"INSERT INTO gf_webhook_events VALUES ({row})", params)
        if hooks:
            cur = await conn.execute(
                "INSERT INTO gf_webhook_deliveries SELECT %(id)s || '.' || hook_id, %(id)s, "
                f"'hook', hook_id, NULL, hook_id, {_PENDING} FROM gf_webhooks WHERE {hooks}",
                params,
            )
            made += max(cur.rowcount, 0)
        for i, target in enumerate(event.targets):
            await conn.execute(
                "INSERT INTO gf_webhook_deliveries VALUES (%(delivery)s, %(id)s, %(kind)s, NULL, "
                f"%(url)s, %(key)s, {_PENDING})",
                params
                | {
                    "delivery": f"{event.event_id}.{target.kind}{i}",
                    "kind": target.kind,
                    "url": target.url,
                    "key": f"{target.kind}:{target.url}",
                },
            )
            made += 1
    return made


def event_ctes(events: Sequence[WebhookEvent], gate: str) -> tuple[str, dict[str, Any]] | None:
    """Common table expressions that write ``events`` and their deliveries within the
    statement of the change they report, when the CTE named ``gate`` returns a row, and a
    ``deliveries`` CTE with how many deliveries they made; with their parameters.

    None when an event has targets of its own (``insert_events`` then writes them in the
    caller's transaction). As ``insert_events``, an event no hook gets is not written.
    """
    if any(event.targets for event in events):
        return None
    ctes: list[str] = []
    counts = ["0"]
    params: dict[str, Any] = {}
    for i, event in enumerate(events):
        if event.hook_only is None and not event.to_hooks:
            continue
        p = f"ev{i}_"
        params |= {
            p + "id": event.event_id,
            p + "type": event.event_type,
            p + "run": event.run_id,
            p + "data": _jsonb(event.data),
            p + "created": event.created_at,
            p + "hook": event.hook_only,
        }
        hooks = (
            f"hook_id = %({p}hook)s"
            if event.hook_only is not None
            else f"enabled AND events ? %({p}type)s"
        )
        pending = _PENDING.replace("%(created)s", f"%({p}created)s")
        ctes += [
            f"{p}h AS (SELECT hook_id FROM gf_webhooks WHERE {hooks})",
            f"{p}e AS (INSERT INTO gf_webhook_events SELECT %({p}id)s, %({p}type)s, %({p}run)s, "
            f"{_LAZY_DATA.format(param=p + 'data')}, %({p}created)s WHERE EXISTS "
            f"(SELECT 1 FROM {gate}) AND "
            f"EXISTS (SELECT 1 FROM {p}h) RETURNING event_id)",
            f"{p}d AS (INSERT INTO gf_webhook_deliveries SELECT e.event_id || '.' || h.hook_id, "
            f"e.event_id, 'hook', h.hook_id, NULL, h.hook_id, {pending} FROM {p}e e, {p}h h "
            "RETURNING 1)",
        ]
        counts.append(f"(SELECT count(*) FROM {p}d)")
    ctes.append(f"deliveries AS (SELECT {' + '.join(counts)} AS n)")
    return ", ".join(ctes), params


class PostgresWebhookStore(WebhookStore):
    """Webhook records in the Postgres store; ``connection()`` lends a pooled connection."""

    def __init__(self, connection: Callable[[], AbstractAsyncContextManager[_Conn]]) -> None:
        self._connection = connection

    async def _fetch(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[DictRow]:
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    @shielded
    async def create_hook(self, hook: HookRecord) -> None:
        await self._fetch(
            "INSERT INTO gf_webhooks VALUES (%s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, NULL, "
            "%s, %s)",
            (
                hook.hook_id,
                hook.url,
                _jsonb(hook.events),
                _jsonb(hook.headers),
                hook.secret,
                hook.description,
                hook.enabled,
                hook.disabled_reason,
                hook.created_at,
                hook.updated_at,
            ),
        )

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        rows = await self._fetch("SELECT * FROM gf_webhooks WHERE hook_id = %s", (hook_id,))
        return _hook(rows[0]) if rows else None

    async def list_hooks(self) -> list[HookRecord]:
        rows = await self._fetch("SELECT * FROM gf_webhooks ORDER BY created_at, hook_id", ())
        return [_hook(row) for row in rows]

    @shielded
    async def update_hook(self, hook_id: str, changes: Mapping[str, Any]) -> HookRecord | None:
        sets, params = ["updated_at = now()"], []
        for key, value in changes.items():
            if key not in _EDITABLE:
                raise ValueError(f"cannot change {key!r} of a hook")
            if key in ("events", "headers"):
                sets.append(f"{key} = %s::jsonb")
                params.append(_jsonb(value))
            else:
                sets.append(f"{key} = %s")
                params.append(value)
        if changes.get("enabled") is True:
            sets += ["disabled_reason = NULL", "failing_since = NULL"]
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"UPDATE gf_webhooks SET {', '.join(sets)} WHERE hook_id = %s RETURNING *",
                (*params, hook_id),
            )
            row = await cur.fetchone()
            if row is not None and changes.get("enabled") is False:
                await _fail_pending(conn, hook_id, "hook disabled")
        return _hook(row) if row is not None else None

    @shielded
    async def delete_hook(self, hook_id: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute("DELETE FROM gf_webhooks WHERE hook_id = %s", (hook_id,))
            await conn.execute(
                "DELETE FROM gf_webhook_deliveries WHERE hook_id = %s AND status = 'pending'",
                (hook_id,),
            )
            return cur.rowcount > 0

    @shielded
    async def add_events(self, events: Sequence[WebhookEvent]) -> None:
        async with self._connection() as conn, conn.transaction():
            self.deliveries_written += await insert_events(conn, events)

    @shielded
    async def claim_deliveries(
        self, worker_id: str, *, limit: int, lease_s: float, exclude_targets: Sequence[str]
    ) -> list[Delivery]:
        rows = await self._fetch(
            "WITH claimed AS (UPDATE gf_webhook_deliveries SET worker_id = %(worker)s, "
            "lease_expires_at = now() + make_interval(secs => %(lease_s)s), "
            "attempts = attempts + 1, updated_at = now() WHERE delivery_id IN (SELECT "
            "delivery_id FROM gf_webhook_deliveries WHERE status = 'pending' AND "
            "next_attempt_at <= now() AND coalesce(lease_expires_at, 'epoch') < now() AND "
            "NOT (target_key = ANY(%(excluded)s)) ORDER BY next_attempt_at LIMIT %(limit)s "
            "FOR UPDATE SKIP LOCKED) RETURNING *) "
            "SELECT c.delivery_id, c.event_id, e.event_type, c.kind, c.hook_id, "
            "coalesce(h.url, c.url) AS url, e.data, e.created_at, c.attempts, h.headers, "
            "h.secret FROM claimed c JOIN gf_webhook_events e USING (event_id) "
            "LEFT JOIN gf_webhooks h ON h.hook_id = c.hook_id ORDER BY c.next_attempt_at",
            {
                "worker": worker_id,
                "lease_s": lease_s,
                "excluded": list(exclude_targets),
                "limit": limit,
            },
        )
        return [
            Delivery(
                delivery_id=row["delivery_id"],
                event_id=row["event_id"],
                event_type=row["event_type"],
                kind=row["kind"],
                hook_id=row["hook_id"],
                url=row["url"],
                data=row["data"],
                event_created_at=row["created_at"].astimezone(UTC),
                attempts=row["attempts"],
                headers=row["headers"] or {},
                secret=row["secret"],
            )
            for row in rows
            if row["url"] is not None
        ]

    @shielded
    async def finish_attempt(
        self, worker_id: str, result: AttemptResult, *, disable_after_s: float
    ) -> str | None:
        params = {
            "status": result.status,
            "retry_s": result.retry_in_s,
            "code": result.status_code,
            "error": result.error,
            "duration": result.duration_s,
            "id": result.delivery_id,
            "worker": worker_id,
        }
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE gf_webhook_deliveries SET status = %(status)s, next_attempt_at = CASE "
                "WHEN %(retry_s)s::float8 IS NULL THEN next_attempt_at ELSE now() + "
                "make_interval(secs => %(retry_s)s::float8) END, lease_expires_at = NULL, "
                "last_status_code = %(code)s, last_error = %(error)s, updated_at = now() "
                "WHERE delivery_id = %(id)s AND worker_id = %(worker)s AND status = 'pending' "
                "RETURNING hook_id, event_id, attempts, next_attempt_at",
                params,
            )
            row = await cur.fetchone()
            if row is None:
                return None  # the lease lapsed and another worker has it: its record counts
            await conn.execute(
                "INSERT INTO gf_webhook_attempts (delivery_id, hook_id, event_id, event_type, "
                "attempt, status, status_code, duration_s, error, next_attempt_at, attempted_at) "
                "SELECT %(id)s, %(hook)s, event_id, event_type, %(attempt)s, %(status)s, "
                "%(code)s, %(duration)s, %(error)s, %(next)s, now() FROM gf_webhook_events "
                "WHERE event_id = %(event)s",
                params
                | {
                    "hook": row["hook_id"],
                    "attempt": row["attempts"],
                    "event": row["event_id"],
                    "next": row["next_attempt_at"] if result.retry_in_s is not None else None,
                },
            )
            if row["hook_id"] is None:
                return None
            return await _hook_health(conn, row["hook_id"], result, disable_after_s)

    async def list_attempts(self, hook_id: str, *, limit: int) -> list[AttemptRecord]:
        rows = await self._fetch(
            "SELECT * FROM gf_webhook_attempts WHERE hook_id = %s ORDER BY id DESC LIMIT %s",
            (hook_id, limit),
        )
        return [
            AttemptRecord(
                delivery_id=row["delivery_id"],
                event_id=row["event_id"],
                event_type=row["event_type"],
                attempt=row["attempt"],
                status=row["status"],
                status_code=row["status_code"],
                duration_s=row["duration_s"],
                error=row["error"],
                next_attempt_at=_utc(row["next_attempt_at"]),
                attempted_at=row["attempted_at"].astimezone(UTC),
            )
            for row in rows
        ]

    @shielded
    async def prune(self, older_than_s: float) -> int:
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM gf_webhook_deliveries WHERE status != 'pending' AND "
                "updated_at < now() - make_interval(secs => %s)",
                (older_than_s,),
            )
            await conn.execute(
                "DELETE FROM gf_webhook_events e WHERE NOT EXISTS (SELECT 1 FROM "
                "gf_webhook_deliveries d WHERE d.event_id = e.event_id)"
            )
            return cur.rowcount

    async def outbox_stats(self) -> OutboxStats:
        (row,) = await self._fetch(
            "SELECT count(*) AS pending, min(created_at) AS oldest FROM gf_webhook_deliveries "
            "WHERE status = 'pending'",
            (),
        )
        return OutboxStats(pending=row["pending"], oldest_pending_at=_utc(row["oldest"]))


async def _hook_health(
    conn: _Conn, hook_id: str, result: AttemptResult, disable_after_s: float
) -> str | None:
    await conn.execute(
        "DELETE FROM gf_webhook_attempts WHERE hook_id = %(hook)s AND id <= (SELECT id FROM "
        "gf_webhook_attempts WHERE hook_id = %(hook)s ORDER BY id DESC LIMIT 1 OFFSET %(keep)s)",
        {"hook": hook_id, "keep": KEEP_ATTEMPTS_PER_HOOK},
    )
    if result.status == "delivered":
        await conn.execute(
            "UPDATE gf_webhooks SET failing_since = NULL WHERE hook_id = %s", (hook_id,)
        )
        return None
    await conn.execute(
        "UPDATE gf_webhooks SET failing_since = coalesce(failing_since, now()) WHERE hook_id = %s",
        (hook_id,),
    )
    if disable_after_s <= 0:
        return None
    reason = (
        f"disabled after failing for more than {disable_after_s:g} s "
        f"(last error: {result.error or result.status_code})"
    )
    cur = await conn.execute(
        "UPDATE gf_webhooks SET enabled = false, disabled_reason = %s, updated_at = now() "
        "WHERE hook_id = %s AND enabled AND failing_since <= now() - make_interval(secs => %s) "
        "RETURNING hook_id",
        (reason, hook_id, disable_after_s),
    )
    if await cur.fetchone() is None:
        return None
    await _fail_pending(conn, hook_id, "hook disabled")
    return reason


async def _fail_pending(conn: _Conn, hook_id: str, error: str) -> None:
    await conn.execute(
        "UPDATE gf_webhook_deliveries SET status = 'failed', last_error = %s, "
        "lease_expires_at = NULL, updated_at = now() WHERE hook_id = %s AND status = 'pending'",
        (error, hook_id),
    )
