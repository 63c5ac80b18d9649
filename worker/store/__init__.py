"""Persistence behind a small interface (``Store``); ``create_store`` picks the backend.

The bottom layer: may import ``worker.jsonutil`` and ``common``, never ``worker.runs``,
``worker.api`` or anything built on them.
"""

from __future__ import annotations

from worker.store.base import SqlTrace, Store
from worker.store.postgres import PostgresStore
from worker.store.sqlite import SqliteStore, Synchronous
from worker.store.thread_ttl import ThreadTTL

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def create_store(
    url: str,
    *,
    lease_s: float = 30.0,
    pool_size: int = 10,
    prepared_statements: bool = True,
    sqlite_synchronous: Synchronous = "normal",
    postgres_synchronous_commit: str = "server",
    default_ttl: ThreadTTL | None = None,
    trace: SqlTrace | None = None,
) -> Store:
    """The store for ``url``: ``sqlite:///path`` or ``postgresql://...``; ``default_ttl`` is
    the TTL of threads created without one (langgraph.json ``checkpointer.ttl``);
    ``prepared_statements``: whether a Postgres store prepares its frequent statements;
    ``postgres_synchronous_commit``: its connections' ``synchronous_commit`` (``server``: as
    the server says); ``trace`` hears every SQL statement it runs (diagnostics, tests)."""
    if url.startswith("sqlite://"):
        return SqliteStore(
            url,
            lease_s=lease_s,
            synchronous=sqlite_synchronous,
            default_ttl=default_ttl,
            trace=trace,
        )
    if url.startswith(POSTGRES_SCHEMES):
        return PostgresStore(
            url,
            lease_s=lease_s,
            pool_size=pool_size,
            prepared_statements=prepared_statements,
            synchronous_commit=postgres_synchronous_commit,
            default_ttl=default_ttl,
            trace=trace,
        )
    raise ValueError(f"unsupported store URL {url!r}: expected sqlite:///path or postgresql://...")


__all__ = ["Store", "create_store"]
