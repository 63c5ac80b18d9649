"""The vectors of ``IndexedStore``: one row per (namespace, key, field) in the worker's
database, as JSON lists of floats (no vector extension needed)."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from typing import Any

import aiosqlite
from psycopg_pool import AsyncConnectionPool

from worker import jsonutil

Vectors = dict[tuple[tuple[str, ...], str], list[list[float]]]
_SEP = "."  # LangGraph's own namespace separator: labels never contain it


def _prefix(namespace: Sequence[str]) -> str:
    return _SEP.join(namespace)


class VectorTable(abc.ABC):
    @abc.abstractmethod
    async def replace(
        self, namespace: tuple[str, ...], key: str, vectors: list[tuple[str, list[float]]]
    ) -> None:
        """The vectors of one item become ``vectors`` (field path, embedding)."""

    @abc.abstractmethod
    async def delete(self, namespace: tuple[str, ...], key: str) -> None: ...

    @abc.abstractmethod
    async def load(self, namespace_prefix: tuple[str, ...]) -> Vectors:
        """Every vector of the items under ``namespace_prefix``, by (namespace, key)."""


def _collect(rows: Sequence[Any]) -> Vectors:
    out: Vectors = {}
    for prefix, key, embedding in rows:
        namespace = tuple(prefix.split(_SEP)) if prefix else ()
        out.setdefault((namespace, key), []).append(jsonutil.loads(embedding))
    return out


class SqliteVectors(VectorTable):
    """On the memory store's connection, under its lock (it runs its own transactions)."""

    def __init__(self, conn: aiosqlite.Connection, lock: asyncio.Lock) -> None:
        self._conn = conn
        self._lock = lock

    async def replace(
        self, namespace: tuple[str, ...], key: str, vectors: list[tuple[str, list[float]]]
    ) -> None:
        prefix = _prefix(namespace)
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                await self._conn.execute(
                    "DELETE FROM gf_store_vectors WHERE prefix = ? AND key = ?", (prefix, key)
                )
                await self._conn.executemany(
                    "INSERT INTO gf_store_vectors VALUES (?, ?, ?, ?)",
                    [(prefix, key, f, jsonutil.dumps(v).decode()) for f, v in vectors],
                )
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def delete(self, namespace: tuple[str, ...], key: str) -> None:
        async with self._lock:
            await self._conn.execute(
                "DELETE FROM gf_store_vectors WHERE prefix = ? AND key = ?",
                (_prefix(namespace), key),
            )

    async def load(self, namespace_prefix: tuple[str, ...]) -> Vectors:
        prefix = _prefix(namespace_prefix)
        async with self._lock:
            rows = await self._conn.execute_fetchall(
                "SELECT prefix, key, embedding FROM gf_store_vectors WHERE ? = '' OR "
                "prefix = ? OR substr(prefix, 1, ?) = ?",
                (prefix, prefix, len(prefix) + 1, prefix + _SEP),
            )
        return _collect(list(rows))


class PostgresVectors(VectorTable):
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def replace(
        self, namespace: tuple[str, ...], key: str, vectors: list[tuple[str, list[float]]]
    ) -> None:
        prefix = _prefix(namespace)
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM gf_store_vectors WHERE prefix = %s AND key = %s", (prefix, key)
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO gf_store_vectors VALUES (%s, %s, %s, %s)",
                    [(prefix, key, f, jsonutil.dumps(v).decode()) for f, v in vectors],
                )

    async def delete(self, namespace: tuple[str, ...], key: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM gf_store_vectors WHERE prefix = %s AND key = %s",
                (_prefix(namespace), key),
            )

    async def load(self, namespace_prefix: tuple[str, ...]) -> Vectors:
        prefix = _prefix(namespace_prefix)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT prefix, key, embedding FROM gf_store_vectors WHERE %(p)s = '' OR "
                "prefix = %(p)s OR left(prefix, %(n)s) = %(pd)s",
                {"p": prefix, "n": len(prefix) + 1, "pd": prefix + _SEP},
            )
            rows = await cur.fetchall()
        return _collect([(r["prefix"], r["key"], r["embedding"]) for r in rows])
