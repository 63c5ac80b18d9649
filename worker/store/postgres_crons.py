"""Crons in the Postgres store (a mixin of ``PostgresStore``).

The claim locks due rows ``FOR UPDATE SKIP LOCKED`` inside one ``UPDATE``: workers ticking
at once pass over each other's rows, and each firing goes to exactly one of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import DictRow

from worker import jsonutil
from worker.store.base import shielded
from worker.store.crons import CRON_SORT_KEYS, CronQuery, CronRecord, check_changes

_COLUMNS = (
    "cron_id, assistant_id, thread_id, user_id, schedule, timezone, payload, metadata, "
    "on_run_completed, enabled, end_time, next_run_date, created_at, updated_at"
)
_JSON_COLUMNS = frozenset({"payload", "metadata"})


def _jsonb(value: Any) -> str:
    return jsonutil.dumps(value).decode()


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _cron(row: DictRow) -> CronRecord:
    return CronRecord(
        cron_id=row["cron_id"],
        assistant_id=row["assistant_id"],
        thread_id=row["thread_id"],
        user_id=row["user_id"],
        schedule=row["schedule"],
        timezone=row["timezone"],
        payload=row["payload"],
        metadata=row["metadata"],
        on_run_completed=row["on_run_completed"],
        enabled=row["enabled"],
        end_time=_utc(row["end_time"]),
        next_run_date=row["next_run_date"].astimezone(UTC),
        created_at=row["created_at"].astimezone(UTC),
        updated_at=row["updated_at"].astimezone(UTC),
    )


def _where(query: CronQuery) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.assistant_id is not None:
        clauses.append("assistant_id = %(assistant_id)s")
        params["assistant_id"] = query.assistant_id
    if query.thread_id is not None:
        clauses.append("thread_id = %(thread_id)s")
        params["thread_id"] = query.thread_id
    if query.enabled is not None:
        clauses.append("enabled = %(enabled)s")
        params["enabled"] = query.enabled
    if query.metadata:
        clauses.append("metadata @> %(metadata)s::jsonb")
        params["metadata"] = _jsonb(dict(query.metadata))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class PostgresCrons:
    """Cron storage over the store's pool; see ``worker.store.crons``."""

    async def _fetch(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[DictRow]:
        raise NotImplementedError

    @shielded
    async def create_cron(self, cron: CronRecord) -> None:
        await self._fetch(
            f"INSERT INTO gf_crons ({_COLUMNS}) VALUES (" + ", ".join(["%s"] * 14) + ")",
            (
                cron.cron_id,
                cron.assistant_id,
                cron.thread_id,
                cron.user_id,
                cron.schedule,
                cron.timezone,
                _jsonb(cron.payload),
                _jsonb(cron.metadata),
                cron.on_run_completed,
                cron.enabled,
                cron.end_time,
                cron.next_run_date,
                cron.created_at,
                cron.updated_at,
            ),
        )

    async def get_cron(self, cron_id: str) -> CronRecord | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM gf_crons WHERE cron_id = %s", (cron_id,))
        return _cron(rows[0]) if rows else None

    @shielded
    async def update_cron(self, cron_id: str, changes: Mapping[str, Any]) -> CronRecord | None:
        check_changes(changes)
        if not changes:
            return await self.get_cron(cron_id)
        sets = ", ".join(
            f"{column} = %({column})s::jsonb"
            if column in _JSON_COLUMNS
            else f"{column} = %({column})s"
            for column in changes
        )
        params = {c: _jsonb(v) if c in _JSON_COLUMNS else v for c, v in changes.items()}
        rows = await self._fetch(
            f"UPDATE gf_crons SET {sets} WHERE cron_id = %(cron_id)s RETURNING {_COLUMNS}",
            {**params, "cron_id": cron_id},
        )
        return _cron(rows[0]) if rows else None

    @shielded
    async def delete_cron(self, cron_id: str) -> bool:
        rows = await self._fetch(
            "DELETE FROM gf_crons WHERE cron_id = %s RETURNING cron_id", (cron_id,)
        )
        return bool(rows)

    async def search_crons(self, query: CronQuery) -> list[CronRecord]:
        if query.sort_by not in CRON_SORT_KEYS:
            raise ValueError(f"cannot sort crons by {query.sort_by!r}")
        where, params = _where(query)
        order = "ASC" if query.sort_order == "asc" else "DESC"
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM gf_crons{where} ORDER BY {query.sort_by} {order}, "
            f"cron_id {order} LIMIT %(limit)s OFFSET %(offset)s",
            {**params, "limit": query.limit, "offset": query.offset},
        )
        return [_cron(row) for row in rows]

    async def count_crons(self, query: CronQuery) -> int:
        where, params = _where(query)
        rows = await self._fetch(f"SELECT count(*) AS n FROM gf_crons{where}", params)
        return int(rows[0]["n"])

    @shielded
    async def claim_due_crons(
        self, worker_id: str, *, now: datetime, claim_s: float, limit: int
    ) -> list[CronRecord]:
        rows = await self._fetch(
            "UPDATE gf_crons SET claimed_by = %(worker)s, claim_expires_at = %(until)s "
            "WHERE cron_id IN (SELECT cron_id FROM gf_crons WHERE enabled AND "
            "next_run_date <= %(now)s AND (end_time IS NULL OR end_time >= %(now)s) AND "
            "(claim_expires_at IS NULL OR claim_expires_at < %(now)s) "
            "ORDER BY next_run_date LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_COLUMNS}",
            {
                "worker": worker_id,
                "until": now + timedelta(seconds=claim_s),
                "now": now,
                "limit": limit,
            },
        )
        return sorted((_cron(row) for row in rows), key=lambda c: c.next_run_date)

    @shielded
    async def finish_cron_fire(
        self, cron_id: str, worker_id: str, *, due: datetime, next_run_date: datetime
    ) -> bool:
        rows = await self._fetch(
            "UPDATE gf_crons SET next_run_date = %s, claimed_by = NULL, claim_expires_at = NULL "
            "WHERE cron_id = %s AND claimed_by = %s AND next_run_date = %s RETURNING cron_id",
            (next_run_date, cron_id, worker_id, due),
        )
        return bool(rows)

    @shielded
    async def release_cron_claim(self, cron_id: str, worker_id: str) -> None:
        await self._fetch(
            "UPDATE gf_crons SET claimed_by = NULL, claim_expires_at = NULL "
            "WHERE cron_id = %s AND claimed_by = %s",
            (cron_id, worker_id),
        )
