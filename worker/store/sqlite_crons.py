"""Crons in the SQLite store (a mixin of ``SqliteStore``).

The claim is one ``UPDATE ... RETURNING``: SQLite takes the file's write lock before the
statement reads, so of processes claiming at once the second sees the first one's claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from worker import jsonutil
from worker.store.base import shielded
from worker.store.crons import CRON_SORT_KEYS, CronQuery, CronRecord, check_changes
from worker.store.sqlite_rows import json_path_key, to_json, ts
from worker.store.sqlite_serial import Serial, serial

_COLUMNS = (
    "cron_id, assistant_id, thread_id, user_id, schedule, timezone, payload, metadata, "
    "on_run_completed, enabled, end_time, next_run_date, created_at, updated_at"
)
_JSON_COLUMNS = frozenset({"payload", "metadata"})
# Due now (three times the same Unix time): enabled, time come, not ended, not held.
_DUE = (
    "enabled = 1 AND next_run_date <= ? AND (end_time IS NULL OR end_time >= ?) AND "
    "(claim_expires_at IS NULL OR claim_expires_at < ?)"
)
_UNIX_COLUMNS = frozenset({"end_time", "next_run_date"})


def _unix(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _from_unix(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _cron(row: aiosqlite.Row) -> CronRecord:
    next_run = _from_unix(row[11])
    assert next_run is not None
    return CronRecord(
        cron_id=row[0],
        assistant_id=row[1],
        thread_id=row[2],
        user_id=row[3],
        schedule=row[4],
        timezone=row[5],
        payload=jsonutil.loads(row[6]),
        metadata=jsonutil.loads(row[7]),
        on_run_completed=row[8],
        enabled=bool(row[9]),
        end_time=_from_unix(row[10]),
        next_run_date=next_run,
        created_at=ts(row[12]),
        updated_at=ts(row[13]),
    )


def _column_value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return to_json(value)
    if column in _UNIX_COLUMNS:
        return _unix(value)
    if column == "updated_at":
        return value.isoformat()
    return value


def _where(query: CronQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.assistant_id is not None:
        clauses.append("assistant_id = ?")
        params.append(query.assistant_id)
    if query.thread_id is not None:
        clauses.append("thread_id = ?")
        params.append(query.thread_id)
    if query.enabled is not None:
        clauses.append("enabled = ?")
        params.append(int(query.enabled))
    for key, value in (query.metadata or {}).items():
        clauses.append("json_extract(metadata, ?) = json_extract(?, '$')")
        params += ["$." + json_path_key(key), to_json(value)]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class SqliteCrons:
    """Cron storage over the store's records connection; see ``worker.store.crons``."""

    _serial: Serial

    @property
    def _conn(self) -> aiosqlite.Connection:
        raise NotImplementedError

    @shielded
    @serial
    async def create_cron(self, cron: CronRecord) -> None:
        await self._conn.execute(
            f"INSERT INTO gf_crons ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
            (
                cron.cron_id,
                cron.assistant_id,
                cron.thread_id,
                cron.user_id,
                cron.schedule,
                cron.timezone,
                to_json(cron.payload),
                to_json(cron.metadata),
                cron.on_run_completed,
                int(cron.enabled),
                _unix(cron.end_time),
                _unix(cron.next_run_date),
                cron.created_at.isoformat(),
                cron.updated_at.isoformat(),
            ),
        )
        await self._conn.commit()

    @serial
    async def get_cron(self, cron_id: str) -> CronRecord | None:
        async with self._conn.execute(
            f"SELECT {_COLUMNS} FROM gf_crons WHERE cron_id = ?", (cron_id,)
        ) as cur:
            row = await cur.fetchone()
        return _cron(row) if row else None

    @shielded
    @serial
    async def update_cron(self, cron_id: str, changes: Mapping[str, Any]) -> CronRecord | None:
        check_changes(changes)
        if changes:
            sets = ", ".join(f"{column} = ?" for column in changes)
            values = [_column_value(column, value) for column, value in changes.items()]
            await self._conn.execute(
                f"UPDATE gf_crons SET {sets} WHERE cron_id = ?", (*values, cron_id)
            )
            await self._conn.commit()
        return await self.get_cron(cron_id)

    @shielded
    @serial
    async def delete_cron(self, cron_id: str) -> bool:
        cur = await self._conn.execute("DELETE FROM gf_crons WHERE cron_id = ?", (cron_id,))
        await self._conn.commit()
        return cur.rowcount > 0

    @serial
    async def search_crons(self, query: CronQuery) -> list[CronRecord]:
        if query.sort_by not in CRON_SORT_KEYS:
            raise ValueError(f"cannot sort crons by {query.sort_by!r}")
        where, params = _where(query)
        order = "ASC" if query.sort_order == "asc" else "DESC"
        sql = (
            f"SELECT {_COLUMNS} FROM gf_crons{where} "
            f"ORDER BY {query.sort_by} {order}, cron_id {order} LIMIT ? OFFSET ?"
        )
        async with self._conn.execute(sql, (*params, query.limit, query.offset)) as cur:
            return [_cron(row) for row in await cur.fetchall()]

    @serial
    async def count_crons(self, query: CronQuery) -> int:
        where, params = _where(query)
        async with self._conn.execute(f"SELECT count(*) FROM gf_crons{where}", params) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @shielded
    @serial
    async def claim_due_crons(
        self, worker_id: str, *, now: datetime, claim_s: float, limit: int
    ) -> list[CronRecord]:
        at = now.timestamp()
        # A plain read first: most ticks find nothing due, and an UPDATE would take the
        # file's write lock (which every worker process shares) for nothing.
        async with self._conn.execute(
            f"SELECT 1 FROM gf_crons WHERE {_DUE} LIMIT 1", (at,) * 3
        ) as cur:
            if await cur.fetchone() is None:
                return []
        # execute_fetchall reads the RETURNING rows to the end before the commit.
        rows = await self._conn.execute_fetchall(
            "UPDATE gf_crons SET claimed_by = ?, claim_expires_at = ? WHERE cron_id IN ("
            f"SELECT cron_id FROM gf_crons WHERE {_DUE} "
            f"ORDER BY next_run_date LIMIT ?) RETURNING {_COLUMNS}",
            (worker_id, at + claim_s, at, at, at, limit),
        )
        await self._conn.commit()
        return sorted((_cron(row) for row in rows), key=lambda c: c.next_run_date)

    @shielded
    @serial
    async def finish_cron_fire(
        self, cron_id: str, worker_id: str, *, due: datetime, next_run_date: datetime
    ) -> bool:
        cur = await self._conn.execute(
            "UPDATE gf_crons SET next_run_date = ?, claimed_by = NULL, claim_expires_at = NULL "
            "WHERE cron_id = ? AND claimed_by = ? AND abs(next_run_date - ?) < 0.001",
            (next_run_date.timestamp(), cron_id, worker_id, due.timestamp()),
        )
        await self._conn.commit()
        return cur.rowcount > 0

    @shielded
    @serial
    async def release_cron_claim(self, cron_id: str, worker_id: str) -> None:
        await self._conn.execute(
            "UPDATE gf_crons SET claimed_by = NULL, claim_expires_at = NULL "
            "WHERE cron_id = ? AND claimed_by = ?",
            (cron_id, worker_id),
        )
        await self._conn.commit()
