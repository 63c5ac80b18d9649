"""Persistence behind a small interface (``Store``); ``create_store`` picks the backend."""

from __future__ import annotations

from worker.store.base import Store
from worker.store.sqlite import SqliteStore


def create_store(url: str) -> Store:
    """The store for ``url`` (``sqlite://...``; Postgres arrives with a later issue)."""
    if url.startswith("sqlite://"):
        return SqliteStore(url)
    raise ValueError(f"unsupported store URL {url!r}: expected sqlite:///path")


__all__ = ["Store", "create_store"]
