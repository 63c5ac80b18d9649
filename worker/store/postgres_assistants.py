"""Assistants in the Postgres store (``gf_assistants`` and ``gf_assistant_versions``).

A write that reads first (a patch reads the current version to make the next) locks the
assistant's row (``FOR UPDATE``) in its transaction: workers patching the same assistant at
once make versions one after the other. Metadata filters are ``@>`` (containment), which
the GIN index of migration 2 serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from worker import jsonutil
from worker.store.assistants import apply_patch, restore_version
from worker.store.base import (
    AssistantExistsError,
    AssistantPatch,
    AssistantQuery,
    AssistantRecord,
    AssistantVersion,
    shielded,
)

_Conn = psycopg.AsyncConnection[DictRow]
_COLUMNS = (
    "assistant_id, graph_id, created_at, updated_at, config, context, metadata, name, "
    "description, version"
)
_VERSION_COLUMNS = (
    "assistant_id, version, graph_id, config, context, metadata, name, description, created_at"
)
# Names and graph ids sort case-insensitively, as the LangGraph Server sorts them.
_SORT_SQL = {
    "assistant_id": "assistant_id",
    "graph_id": "lower(graph_id)",
    "name": "lower(name)",
    "created_at": "created_at",
    "updated_at": "updated_at",
}


def _jsonb(value: Any) -> str:
    return jsonutil.dumps(value).decode()


def _assistant(row: DictRow) -> AssistantRecord:
    return AssistantRecord(
        assistant_id=row["assistant_id"],
        graph_id=row["graph_id"],
        created_at=row["created_at"].astimezone(UTC),
        updated_at=row["updated_at"].astimezone(UTC),
        config=row["config"],
        context=row["context"],
        metadata=row["metadata"],
        name=row["name"],
        description=row["description"],
        version=row["version"],
    )


def _version(row: DictRow) -> AssistantVersion:
    return AssistantVersion(
        assistant_id=row["assistant_id"],
        version=row["version"],
        graph_id=row["graph_id"],
        config=row["config"],
        context=row["context"],
        metadata=row["metadata"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"].astimezone(UTC),
    )


def _assistant_params(a: AssistantRecord) -> dict[str, Any]:
    return {
        "assistant_id": a.assistant_id,
        "graph_id": a.graph_id,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "config": _jsonb(a.config),
        "context": _jsonb(a.context),
        "metadata": _jsonb(a.metadata),
        "name": a.name,
        "description": a.description,
        "version": a.version,
    }


_INSERT_VERSION = (
    f"INSERT INTO gf_assistant_versions ({_VERSION_COLUMNS}) VALUES (%(assistant_id)s, "
    "%(version)s, %(graph_id)s, %(config)s::jsonb, %(context)s::jsonb, %(metadata)s::jsonb, "
    "%(name)s, %(description)s, %(updated_at)s) ON CONFLICT DO NOTHING"
)
_UPDATE_ASSISTANT = (
    "UPDATE gf_assistants SET graph_id = %(graph_id)s, updated_at = %(updated_at)s, "
    "config = %(config)s::jsonb, context = %(context)s::jsonb, metadata = %(metadata)s::jsonb, "
    "name = %(name)s, description = %(description)s, version = %(version)s "
    "WHERE assistant_id = %(assistant_id)s"
)


def _where(query: AssistantQuery) -> tuple[str, list[Any]]:
    where = ["metadata @> %s::jsonb"]
    params: list[Any] = [_jsonb(dict(query.metadata or {}))]
    if query.graph_id is not None:
        where.append("graph_id = %s")
        params.append(query.graph_id)
    if query.name:
        where.append("strpos(lower(name), lower(%s)) > 0")
        params.append(query.name)
    return " AND ".join(where), params


class PostgresAssistants:
    """The assistant methods of ``PostgresStore`` (which provides the pool)."""

    @property
    def pool(self) -> AsyncConnectionPool[_Conn]:
        raise NotImplementedError

    async def _rows(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[DictRow]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    @staticmethod
    async def _locked(conn: _Conn, assistant_id: str) -> AssistantRecord | None:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM gf_assistants WHERE assistant_id = %s FOR UPDATE",
            (assistant_id,),
        )
        row = await cur.fetchone()
        return _assistant(row) if row else None

    @shielded
    async def create_assistant(
        self, assistant: AssistantRecord, *, if_exists: Literal["raise", "do_nothing"] = "raise"
    ) -> AssistantRecord:
        params = _assistant_params(assistant)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                f"INSERT INTO gf_assistants ({_COLUMNS}) VALUES (%(assistant_id)s, "
                "%(graph_id)s, %(created_at)s, %(updated_at)s, %(config)s::jsonb, "
                "%(context)s::jsonb, %(metadata)s::jsonb, %(name)s, %(description)s, "
                "%(version)s) ON CONFLICT (assistant_id) DO NOTHING",
                params,
            )
            created = cur.rowcount > 0
            if created:
                await conn.execute(_INSERT_VERSION, params)
        if created:
            return assistant
        if if_exists == "raise":
            raise AssistantExistsError(assistant.assistant_id)
        existing = await self.get_assistant(assistant.assistant_id)
        # Deleted between the insert and this read: as if it had never existed.
        return existing if existing is not None else await self.create_assistant(assistant)

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None:
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM gf_assistants WHERE assistant_id = %s", (assistant_id,)
        )
        return _assistant(rows[0]) if rows else None

    @shielded
    async def patch_assistant(
        self, assistant_id: str, patch: AssistantPatch
    ) -> AssistantRecord | None:
        async with self.pool.connection() as conn, conn.transaction():
            current = await self._locked(conn, assistant_id)
            if current is None:
                return None
            cur = await conn.execute(
                "SELECT max(version) AS latest FROM gf_assistant_versions WHERE assistant_id = %s",
                (assistant_id,),
            )
            row = await cur.fetchone()
            latest = row["latest"] if row and row["latest"] is not None else current.version
            patched = apply_patch(current, patch, version=latest + 1, now=datetime.now(UTC))
            params = _assistant_params(patched)
            await conn.execute(_INSERT_VERSION, params)
            await conn.execute(_UPDATE_ASSISTANT, params)
        return patched

    @shielded
    async def delete_assistant(self, assistant_id: str) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM gf_assistants WHERE assistant_id = %s", (assistant_id,)
            )
            existed = cur.rowcount > 0
            await conn.execute(
                "DELETE FROM gf_assistant_versions WHERE assistant_id = %s", (assistant_id,)
            )
        return existed

    async def search_assistants(self, query: AssistantQuery) -> list[AssistantRecord]:
        where, params = _where(query)
        order = "ASC" if query.sort_order == "asc" else "DESC"
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM gf_assistants WHERE {where} "
            f"ORDER BY {_SORT_SQL[query.sort_by]} {order}, assistant_id {order} "
            "LIMIT %s OFFSET %s",
            [*params, query.limit, query.offset],
        )
        return [_assistant(row) for row in rows]

    async def count_assistants(self, query: AssistantQuery) -> int:
        where, params = _where(query)
        (row,) = await self._rows(f"SELECT count(*) AS n FROM gf_assistants WHERE {where}", params)
        return int(row["n"])

    async def list_assistant_versions(
        self,
        assistant_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[AssistantVersion]:
        rows = await self._rows(
            f"SELECT {_VERSION_COLUMNS} FROM gf_assistant_versions WHERE assistant_id = %s "
            "AND metadata @> %s::jsonb ORDER BY version DESC LIMIT %s OFFSET %s",
            (assistant_id, _jsonb(dict(metadata or {})), limit, offset),
        )
        return [_version(row) for row in rows]

    @shielded
    async def set_assistant_version(
        self, assistant_id: str, version: int
    ) -> AssistantRecord | None:
        async with self.pool.connection() as conn, conn.transaction():
            current = await self._locked(conn, assistant_id)
            if current is None:
                return None
            cur = await conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM gf_assistant_versions "
                "WHERE assistant_id = %s AND version = %s",
                (assistant_id, version),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            restored = restore_version(current, _version(row), now=datetime.now(UTC))
            await conn.execute(_UPDATE_ASSISTANT, _assistant_params(restored))
        return restored
