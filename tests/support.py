"""Helpers every test folder uses: free loopback ports and polling with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS may hand it out again later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0, interval_s: float = 0.02
) -> None:
    """Poll ``check`` until it is true, failing after ``timeout_s``: tests wait for a
    condition, never for a fixed time."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


@contextlib.contextmanager
def fresh_schema(dsn: str) -> Iterator[str]:
    """A Postgres URL whose tables all land in a new schema of the test's own, dropped after."""
    import psycopg
    from psycopg import sql

    schema = f"gf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema_url(dsn, schema)
    finally:
        drop_schema(dsn, schema)


def schema_url(dsn: str, schema: str) -> str:
    """``dsn`` with ``schema`` as its search path."""
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a test's own Postgres schema without ever hanging.

    Fixture teardown runs with the event loop stopped, so a worker of the test that is still
    open may hold a transaction on the schema that cannot finish: after a short lock wait such
    idle transactions are ended (tests run one at a time), then the drop is tried again.
    """
    import psycopg
    from psycopg import sql

    drop = sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '3s'")
        for _ in range(3):
            try:
                conn.execute(drop)
                return
            except psycopg.errors.LockNotAvailable:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state = 'idle in transaction'"
                )
        conn.execute("SET lock_timeout = 0")
        conn.execute(drop)
