"""LangGraph's long-term memory store (``BaseStore``) in the worker's own database.

``open_memory`` opens LangGraph's ``AsyncSqliteStore`` on the SQLite file of the records and
checkpoints, or ``AsyncPostgresStore`` on the Postgres store's pool, and sets it up once per
database (under the same locks as the rest of the schema, so workers starting together do
not race). Graphs receive it (``get_store()``, a ``store`` parameter in nodes) and the
``/store`` API serves it, so every worker of a fleet sees the same items.

``langgraph.json`` ``store.ttl`` (``default_ttl`` and ``sweep_interval_minutes`` in minutes,
``refresh_on_read``) is handed to LangGraph's store, which expires items and sweeps them as
the official server's store does. With ``store.index``, the store is wrapped in
``worker.store.memory_index.IndexedStore`` for semantic search.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from worker.store import migrations
from worker.store.base import Store
from worker.store.memory_index import IndexedStore, resolve_embeddings
from worker.store.memory_vectors import PostgresVectors, SqliteVectors
from worker.store.postgres import PostgresStore
from worker.store.postgres import _advisory_lock as advisory_lock
from worker.store.sqlite import BUSY_TIMEOUT_MS, SqliteStore
from worker.store.sqlite_rows import file_lock


class MemoryConfigError(ValueError):
    """The ``store`` section of langgraph.json is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """The ``store`` section of a langgraph.json: ``index`` and ``ttl``, as written there."""

    index: dict[str, Any] | None = None
    ttl: dict[str, Any] | None = None
    base_dir: Path = Path(".")


def read_memory_config(config_path: Path) -> MemoryConfig:
    """The ``store`` section of the langgraph.json at ``config_path`` (empty when absent)."""
    try:
        doc = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return MemoryConfig(base_dir=config_path.resolve().parent)
    section = doc.get("store") if isinstance(doc, dict) else None
    if section is None:
        return MemoryConfig(base_dir=config_path.resolve().parent)
    if not isinstance(section, dict):
        raise MemoryConfigError(f'{config_path}: "store" must be an object')
    index, ttl = section.get("index"), section.get("ttl")
    if index is not None and (not isinstance(index, dict) or "dims" not in index):
        raise MemoryConfigError(f'{config_path}: "store.index" needs "dims" and "embed"')
    if index is not None and "embed" not in index:
        raise MemoryConfigError(f'{config_path}: "store.index" needs "dims" and "embed"')
    if ttl is not None and not isinstance(ttl, dict):
        raise MemoryConfigError(f'{config_path}: "store.ttl" must be an object')
    return MemoryConfig(index=index, ttl=ttl, base_dir=config_path.resolve().parent)


def _ttl(config: MemoryConfig) -> TTLConfig | None:
    if not config.ttl:
        return None
    ttl: TTLConfig = {"refresh_on_read": bool(config.ttl.get("refresh_on_read", True))}
    if config.ttl.get("default_ttl") is not None:
        ttl["default_ttl"] = float(config.ttl["default_ttl"])
    if config.ttl.get("sweep_interval_minutes") is not None:
        ttl["sweep_interval_minutes"] = int(config.ttl["sweep_interval_minutes"])
    return ttl


@contextlib.asynccontextmanager
async def _sqlite_memory(
    store: SqliteStore,
    ttl: TTLConfig | None,
    embeddings: Embeddings | None,
    fields: list[str] | None,
) -> AsyncIterator[BaseStore]:
    path = store.path
    # Autocommit: AsyncSqliteStore opens its own transactions.
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        memory = AsyncSqliteStore(conn, ttl=ttl)
        if path == ":memory:":
            await memory.setup()
        else:
            async with file_lock(path + ".open-lock"):
                await memory.setup()
        if embeddings is None:
            yield memory
        else:
            if path == ":memory:":  # a separate in-memory database: it needs the table
                for statement in migrations.SQLITE_STORE_VECTORS_DDL:
                    await conn.execute(statement)
            vectors = SqliteVectors(conn, memory.lock)
            yield IndexedStore(memory, vectors, embeddings, fields)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _postgres_memory(
    store: PostgresStore,
    ttl: TTLConfig | None,
    embeddings: Embeddings | None,
    fields: list[str] | None,
) -> AsyncIterator[BaseStore]:
    memory = AsyncPostgresStore(store.pool, ttl=ttl)
    # setup() has no locking of its own: one worker of the fleet migrates at a time. The lock
    # is polled, never waited for inside a statement: another worker's CREATE INDEX
    # CONCURRENTLY would wait for that statement, and both would wait forever.
    async with store.pool.connection() as conn:
        await advisory_lock(conn)
        try:
            await memory.setup()
        finally:
            await conn.execute(
                "SELECT pg_advisory_unlock(%s)", (migrations.POSTGRES_SETUP_LOCK_KEY,)
            )
    if embeddings is None:
        yield memory
    else:
        yield IndexedStore(memory, PostgresVectors(store.pool), embeddings, fields)


@contextlib.asynccontextmanager
async def open_memory(store: Store, config: MemoryConfig) -> AsyncIterator[BaseStore]:
    """LangGraph's store in ``store``'s database, set up; TTL sweeping runs while open."""
    ttl = _ttl(config)
    embeddings, fields = None, None
    if config.index:
        embeddings = resolve_embeddings(config.index["embed"], config.base_dir)
        fields = config.index.get("fields")
    opened: contextlib.AbstractAsyncContextManager[BaseStore]
    if isinstance(store, SqliteStore):
        opened = _sqlite_memory(store, ttl, embeddings, fields)
    elif isinstance(store, PostgresStore):
        opened = _postgres_memory(store, ttl, embeddings, fields)
    else:
        raise TypeError(f"no LangGraph store for {type(store).__name__}")
    async with opened as memory:
        if ttl and ttl.get("sweep_interval_minutes"):
            await memory.start_ttl_sweeper()  # type: ignore[attr-defined]
        try:
            yield memory
        finally:
            if ttl and ttl.get("sweep_interval_minutes"):
                await memory.stop_ttl_sweeper(5.0)  # type: ignore[attr-defined]
