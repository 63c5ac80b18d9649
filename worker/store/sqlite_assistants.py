"""Assistants in the SQLite store (``gf_assistants`` and ``gf_assistant_versions``).

A write that reads first (a patch reads the current version to make the next) starts with
a write statement: with the connection's IMMEDIATE transactions that takes the file's write
lock before the read, so two processes patching at once make versions one after the other.
Within this process, one lock orders these writes (they share one connection).

Searches filter by graph in SQL and by name and metadata here: the rules stay exactly the
LangGraph Server's (case-insensitive substring, nested metadata containment), and a
machine's assistants are few.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import aiosqlite

from worker import jsonutil
from worker.store.assistants import (
    apply_patch,
    metadata_contains,
    restore_version,
    sync_config_context,
    version_of,
)
from worker.store.base import (
    AssistantExistsError,
    AssistantPatch,
    AssistantQuery,
    AssistantRecord,
    AssistantVersion,
    shielded,
)
from worker.store.sqlite_rows import to_json, ts
from worker.store.sqlite_serial import Serial, serial

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


def _assistant(row: aiosqlite.Row) -> AssistantRecord:
    return AssistantRecord(
        assistant_id=row[0],
        graph_id=row[1],
        created_at=ts(row[2]),
        updated_at=ts(row[3]),
        config=jsonutil.loads(row[4]),
        context=jsonutil.loads(row[5]),
        metadata=jsonutil.loads(row[6]),
        name=row[7],
        description=row[8],
        version=row[9],
    )


def _version(row: aiosqlite.Row) -> AssistantVersion:
    return AssistantVersion(
        assistant_id=row[0],
        version=row[1],
        graph_id=row[2],
        config=jsonutil.loads(row[3]),
        context=jsonutil.loads(row[4]),
        metadata=jsonutil.loads(row[5]),
        name=row[6],
        description=row[7],
        created_at=ts(row[8]),
    )


def _matches(assistant: AssistantRecord, query: AssistantQuery) -> bool:
    if query.name and query.name.lower() not in assistant.name.lower():
        return False
    return not query.metadata or metadata_contains(assistant.metadata, query.metadata)


class SqliteAssistants:
    """The assistant methods of ``SqliteStore`` (which provides the connection and clock)."""

    _clock: Callable[[], datetime]
    _serial: Serial

    @property
    def _conn(self) -> aiosqlite.Connection:
        raise NotImplementedError

    async def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def _assistant_writes(self) -> AsyncIterator[None]:
        """An assistant write (under the ``serial`` lock): committed at the end, rolled
        back on error (a transaction left open would keep the file locked for every process)."""
        try:
            yield
        except BaseException:
            await self._conn.rollback()
            raise
        await self._conn.commit()

    async def _write_assistant(self, assistant: AssistantRecord, *, insert: bool) -> None:
        a = assistant
        values = (
            a.graph_id,
            a.created_at.isoformat(),
            a.updated_at.isoformat(),
            to_json(a.config),
            to_json(a.context),
            to_json(a.metadata),
            a.name,
            a.description,
            a.version,
        )
        if insert:
            await self._conn.execute(
                f"INSERT INTO gf_assistants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (a.assistant_id, *values),
            )
        else:
            await self._conn.execute(
                "UPDATE gf_assistants SET graph_id = ?, created_at = ?, updated_at = ?, "
                "config = ?, context = ?, metadata = ?, name = ?, description = ?, version = ? "
                "WHERE assistant_id = ?",
                (*values, a.assistant_id),
            )

    async def _write_version(self, version: AssistantVersion) -> None:
        v = version
        await self._conn.execute(
            f"INSERT OR REPLACE INTO gf_assistant_versions ({_VERSION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                v.assistant_id,
                v.version,
                v.graph_id,
                to_json(v.config),
                to_json(v.context),
                to_json(v.metadata),
                v.name,
                v.description,
                v.created_at.isoformat(),
            ),
        )

    async def _lock_assistant(self, assistant_id: str) -> AssistantRecord | None:
        """Take the file's write lock (a no-op write), then read the assistant."""
        await self._conn.execute(
            "UPDATE gf_assistants SET version = version WHERE assistant_id = ?", (assistant_id,)
        )
        return await self.get_assistant(assistant_id)

    @shielded
    async def create_assistant(
        self, assistant: AssistantRecord, *, if_exists: Literal["raise", "do_nothing"] = "raise"
    ) -> AssistantRecord:
        async with self._assistant_writes():
            existing = await self._lock_assistant(assistant.assistant_id)
            if existing is None:
                await self._write_assistant(assistant, insert=True)
                await self._write_version(version_of(assistant))
        if existing is None:
            return assistant
        if if_exists == "raise":
            raise AssistantExistsError(assistant.assistant_id)
        return existing

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None:
        rows = await self._select(
            f"SELECT {_COLUMNS} FROM gf_assistants WHERE assistant_id = ?", (assistant_id,)
        )
        return _assistant(rows[0]) if rows else None

    @shielded
    @serial
    async def patch_assistant(
        self, assistant_id: str, patch: AssistantPatch
    ) -> AssistantRecord | None:
        sync_config_context(patch.config, patch.context)  # refused before any write
        async with self._assistant_writes():
            current = await self._lock_assistant(assistant_id)
            patched = None
            if current is not None:
                async with self._conn.execute(
                    "SELECT max(version) FROM gf_assistant_versions WHERE assistant_id = ?",
                    (assistant_id,),
                ) as cur:
                    row = await cur.fetchone()
                latest = row[0] if row and row[0] is not None else current.version
                patched = apply_patch(current, patch, version=latest + 1, now=self._clock())
                await self._write_version(version_of(patched))
                await self._write_assistant(patched, insert=False)
        return patched

    @shielded
    @serial
    async def delete_assistant(self, assistant_id: str) -> bool:
        async with self._assistant_writes():
            cur = await self._conn.execute(
                "DELETE FROM gf_assistants WHERE assistant_id = ?", (assistant_id,)
            )
            existed = cur.rowcount > 0
            await self._conn.execute(
                "DELETE FROM gf_assistant_versions WHERE assistant_id = ?", (assistant_id,)
            )
        return existed

    async def _filtered(self, query: AssistantQuery) -> list[AssistantRecord]:
        order = "ASC" if query.sort_order == "asc" else "DESC"
        sort = _SORT_SQL[query.sort_by]
        sql = f"SELECT {_COLUMNS} FROM gf_assistants"
        params: list[Any] = []
        if query.graph_id is not None:
            sql += " WHERE graph_id = ?"
            params.append(query.graph_id)
        sql += f" ORDER BY {sort} {order}, assistant_id {order}"
        async with self._conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [a for a in map(_assistant, rows) if _matches(a, query)]

    async def search_assistants(self, query: AssistantQuery) -> list[AssistantRecord]:
        found = await self._filtered(query)
        return found[query.offset : query.offset + query.limit]

    async def count_assistants(self, query: AssistantQuery) -> int:
        return len(await self._filtered(query))

    @serial
    async def list_assistant_versions(
        self,
        assistant_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[AssistantVersion]:
        async with self._conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM gf_assistant_versions WHERE assistant_id = ? "
            "ORDER BY version DESC",
            (assistant_id,),
        ) as cur:
            rows = await cur.fetchall()
        versions = [_version(row) for row in rows]
        if metadata:
            versions = [v for v in versions if metadata_contains(v.metadata, metadata)]
        return versions[offset : offset + limit]

    @shielded
    @serial
    async def set_assistant_version(
        self, assistant_id: str, version: int
    ) -> AssistantRecord | None:
        async with self._assistant_writes():
            current = await self._lock_assistant(assistant_id)
            restored = None
            if current is not None:
                async with self._conn.execute(
                    f"SELECT {_VERSION_COLUMNS} FROM gf_assistant_versions "
                    "WHERE assistant_id = ? AND version = ?",
                    (assistant_id, version),
                ) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    restored = restore_version(current, _version(row), now=self._clock())
                    await self._write_assistant(restored, insert=False)
        return restored
