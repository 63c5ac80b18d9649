"""Versioned schema migrations of the worker's own tables, for each store backend.

A migration is ``(version, name, statements)``; a store applies, in one transaction under a
lock, those whose version is not yet in its ``gf_schema_migrations`` table, and records them
there. Starting twice, or two workers starting at once, applies each migration exactly once.
Released migrations never change: a schema change is a new version.

(LangGraph's checkpoint tables are not here: each checkpointer migrates its own.)
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS_TABLE = "gf_schema_migrations"

SQLITE_MIGRATIONS_TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""

# Version 1 is the schema files made before migrations existed had, hence IF NOT EXISTS.
SQLITE: tuple[Migration, ...] = (
    Migration(
        1,
        "records",
        (
            """CREATE TABLE IF NOT EXISTS gf_assistants (
                assistant_id TEXT PRIMARY KEY,
                graph_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS gf_threads (
                thread_id TEXT PRIMARY KEY,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                metadata TEXT NOT NULL,
                status TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS gf_runs (
                run_id TEXT PRIMARY KEY,
                thread_id TEXT NOT NULL,
                assistant_id TEXT NOT NULL,
                graph_id TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                metadata TEXT NOT NULL,
                multitask_strategy TEXT NOT NULL,
                kwargs TEXT NOT NULL,
                worker_id TEXT NOT NULL,
                result TEXT,
                error TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS gf_runs_thread ON gf_runs (thread_id, created_at)",
            "CREATE INDEX IF NOT EXISTS gf_runs_worker_status ON gf_runs (worker_id, status)",
        ),
    ),
    Migration(
        2,
        "run leases",
        (
            "ALTER TABLE gf_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
            # Unix seconds (REAL): the processes sharing a SQLite file share one clock.
            "ALTER TABLE gf_runs ADD COLUMN lease_expires_at REAL",
            "CREATE INDEX gf_runs_lease ON gf_runs (status, lease_expires_at)",
            # Active runs of a worker that predates leases: claimable at once.
            "UPDATE gf_runs SET lease_expires_at = 0 WHERE status IN ('pending', 'running')",
        ),
    ),
    Migration(
        3,
        "worker addresses",
        (
            # Where each lease holder can be reached: a sweeper that finds the address
            # refusing connections takes the holder's runs without waiting for their leases.
            """CREATE TABLE gf_workers (
                worker_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
        ),
    ),
)

POSTGRES_MIGRATIONS_TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

# Any constants work; they only have to be the same for every worker of a database. Two
# keys: a worker waiting to migrate (inside a transaction) must not wait for the lock of a
# worker setting up the checkpointer, whose CREATE INDEX CONCURRENTLY waits for open
# transactions.
POSTGRES_LOCK_KEY = 0x6766_6C74  # "gflt"
POSTGRES_SETUP_LOCK_KEY = 0x6766_6C75

POSTGRES: tuple[Migration, ...] = (
    Migration(
        1,
        "records and run leases",
        (
            """CREATE TABLE gf_assistants (
                assistant_id TEXT PRIMARY KEY,
                graph_id TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE gf_threads (
                thread_id TEXT PRIMARY KEY,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                metadata JSONB NOT NULL,
                status TEXT NOT NULL
            )""",
            """CREATE TABLE gf_runs (
                run_id TEXT PRIMARY KEY,
                seq BIGINT GENERATED ALWAYS AS IDENTITY,
                thread_id TEXT NOT NULL,
                assistant_id TEXT NOT NULL,
                graph_id TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                metadata JSONB NOT NULL,
                multitask_strategy TEXT NOT NULL,
                kwargs JSONB NOT NULL,
                worker_id TEXT NOT NULL,
                result JSONB,
                error JSONB,
                attempt INTEGER NOT NULL DEFAULT 1,
                lease_expires_at TIMESTAMPTZ
            )""",
            "CREATE INDEX gf_runs_thread ON gf_runs (thread_id, created_at)",
            "CREATE INDEX gf_runs_lease ON gf_runs (lease_expires_at) "
            "WHERE status IN ('pending', 'running')",
            "CREATE INDEX gf_threads_metadata ON gf_threads USING gin (metadata jsonb_path_ops)",
        ),
    ),
    Migration(
        2,
        "worker addresses",
        (
            """CREATE TABLE gf_workers (
                worker_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )""",
        ),
    ),
)
