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

SQLITE_STORE_VECTORS_DDL = (
    """CREATE TABLE IF NOT EXISTS gf_store_vectors (
        prefix TEXT NOT NULL,
        key TEXT NOT NULL,
        field_name TEXT NOT NULL,
        embedding TEXT NOT NULL,
        PRIMARY KEY (prefix, key, field_name)
    )""",
)

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
        "assistants with config, context, metadata and versions",
        (
            "ALTER TABLE gf_assistants ADD COLUMN config TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE gf_assistants ADD COLUMN context TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE gf_assistants ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE gf_assistants ADD COLUMN name TEXT NOT NULL DEFAULT 'Untitled'",
            "ALTER TABLE gf_assistants ADD COLUMN description TEXT",
            "ALTER TABLE gf_assistants ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
            # Every assistant before this version was a graph's default one.
            'UPDATE gf_assistants SET name = graph_id, metadata = \'{"created_by": "system"}\'',
            """CREATE TABLE gf_assistant_versions (
                assistant_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                graph_id TEXT NOT NULL,
                config TEXT NOT NULL,
                context TEXT NOT NULL,
                metadata TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT,
                created_at TEXT NOT NULL,
                PRIMARY KEY (assistant_id, version)
            )""",
            "INSERT INTO gf_assistant_versions SELECT assistant_id, 1, graph_id, config, "
            "context, metadata, name, description, created_at FROM gf_assistants",
            "CREATE INDEX gf_assistants_created ON gf_assistants (created_at)",
        ),
    ),
    # crons
    Migration(
        5,
        "crons",
        (
            # Times compared by the claim are Unix seconds (REAL), as run leases are.
            """CREATE TABLE gf_crons (
                cron_id TEXT PRIMARY KEY,
                assistant_id TEXT NOT NULL,
                thread_id TEXT,
                user_id TEXT,
                schedule TEXT NOT NULL,
                timezone TEXT,
                payload TEXT NOT NULL,
                metadata TEXT NOT NULL,
                on_run_completed TEXT,
                enabled INTEGER NOT NULL,
                end_time REAL,
                next_run_date REAL NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                claimed_by TEXT,
                claim_expires_at REAL
            )""",
            "CREATE INDEX gf_crons_due ON gf_crons (enabled, next_run_date)",
            "CREATE INDEX gf_crons_thread ON gf_crons (thread_id)",
        ),
    ),
    # The embeddings of LangGraph store items (langgraph.json store.index).
    Migration(6, "store vectors", SQLITE_STORE_VECTORS_DDL),
    Migration(
        7,
        "webhooks: hooks, outbox, attempts",
        (
            # Times in Unix seconds (REAL), like run leases.
            """CREATE TABLE gf_webhooks (
                hook_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                events TEXT NOT NULL,
                headers TEXT NOT NULL,
                secret TEXT NOT NULL,
                description TEXT,
                enabled INTEGER NOT NULL,
                disabled_reason TEXT,
                failing_since REAL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            """CREATE TABLE gf_webhook_events (
                event_id TEXT PRIMARY KEY,
                event_type TEXT NOT NULL,
                run_id TEXT,
                data TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
            """CREATE TABLE gf_webhook_deliveries (
                delivery_id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                hook_id TEXT,
                url TEXT,
                target_key TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_attempt_at REAL NOT NULL,
                lease_expires_at REAL,
                worker_id TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                last_status_code INTEGER,
                last_error TEXT
            )""",
            "CREATE INDEX gf_webhook_deliveries_due ON gf_webhook_deliveries "
            "(status, next_attempt_at)",
            "CREATE INDEX gf_webhook_deliveries_hook ON gf_webhook_deliveries (hook_id, status)",
            """CREATE TABLE gf_webhook_attempts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                delivery_id TEXT NOT NULL,
                hook_id TEXT,
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                status TEXT NOT NULL,
                status_code INTEGER,
                duration_s REAL NOT NULL,
                error TEXT,
                next_attempt_at REAL,
                attempted_at REAL NOT NULL
            )""",
            "CREATE INDEX gf_webhook_attempts_hook ON gf_webhook_attempts (hook_id, id)",
        ),
    ),
    Migration(
        8,
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
    Migration(
        9,
        "thread TTLs",
        (
            # See worker.store.thread_ttl. Times in Unix seconds (REAL), like run leases.
            "ALTER TABLE gf_threads ADD COLUMN ttl_strategy TEXT",
            "ALTER TABLE gf_threads ADD COLUMN ttl_minutes REAL",
            "ALTER TABLE gf_threads ADD COLUMN ttl_expires_at REAL",
            "ALTER TABLE gf_threads ADD COLUMN ttl_claimed_by TEXT",
            "ALTER TABLE gf_threads ADD COLUMN ttl_claim_expires_at REAL",
            "CREATE INDEX gf_threads_ttl ON gf_threads (ttl_expires_at) "
            "WHERE ttl_expires_at IS NOT NULL",
        ),
    ),
    Migration(
        10,
        "stop action on record",
        # What a cancel written to a run's record asks its holder to do (interrupt or
        # rollback): the holder reads it when the cancel's command did not reach it.
        ("ALTER TABLE gf_runs ADD COLUMN stop_action TEXT",),
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
        "assistants with config, context, metadata and versions",
        (
            "ALTER TABLE gf_assistants ADD COLUMN config JSONB NOT NULL DEFAULT '{}'",
            "ALTER TABLE gf_assistants ADD COLUMN context JSONB NOT NULL DEFAULT '{}'",
            "ALTER TABLE gf_assistants ADD COLUMN metadata JSONB NOT NULL DEFAULT '{}'",
            "ALTER TABLE gf_assistants ADD COLUMN name TEXT NOT NULL DEFAULT 'Untitled'",
            "ALTER TABLE gf_assistants ADD COLUMN description TEXT",
            "ALTER TABLE gf_assistants ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
            # Every assistant before this version was a graph's default one.
            'UPDATE gf_assistants SET name = graph_id, metadata = \'{"created_by": "system"}\'',
            """CREATE TABLE gf_assistant_versions (
                assistant_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                graph_id TEXT NOT NULL,
                config JSONB NOT NULL,
                context JSONB NOT NULL,
                metadata JSONB NOT NULL,
                name TEXT NOT NULL,
                description TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (assistant_id, version)
            )""",
            "INSERT INTO gf_assistant_versions SELECT assistant_id, 1, graph_id, config, "
            "context, metadata, name, description, created_at FROM gf_assistants",
            "CREATE INDEX gf_assistants_metadata ON gf_assistants "
            "USING gin (metadata jsonb_path_ops)",
        ),
    ),
    # crons
    Migration(
        4,
        "crons",
        (
            """CREATE TABLE gf_crons (
                cron_id TEXT PRIMARY KEY,
                assistant_id TEXT NOT NULL,
                thread_id TEXT,
                user_id TEXT,
                schedule TEXT NOT NULL,
                timezone TEXT,
                payload JSONB NOT NULL,
                metadata JSONB NOT NULL,
                on_run_completed TEXT,
                enabled BOOLEAN NOT NULL,
                end_time TIMESTAMPTZ,
                next_run_date TIMESTAMPTZ NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                claimed_by TEXT,
                claim_expires_at TIMESTAMPTZ
            )""",
            "CREATE INDEX gf_crons_due ON gf_crons (next_run_date) WHERE enabled",
            "CREATE INDEX gf_crons_thread ON gf_crons (thread_id)",
            "CREATE INDEX gf_crons_metadata ON gf_crons USING gin (metadata jsonb_path_ops)",
        ),
    ),
    Migration(
        5,
        "store vectors",
        (
            """CREATE TABLE gf_store_vectors (
                prefix TEXT NOT NULL,
                key TEXT NOT NULL,
                field_name TEXT NOT NULL,
                embedding TEXT NOT NULL,
                PRIMARY KEY (prefix, key, field_name)
            )""",
        ),
    ),
    Migration(
        6,
        "webhooks: hooks, outbox, attempts",
        (
            """CREATE TABLE gf_webhooks (
                hook_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                events JSONB NOT NULL,
                headers JSONB NOT NULL,
                secret TEXT NOT NULL,
                description TEXT,
                enabled BOOLEAN NOT NULL,
                disabled_reason TEXT,
                failing_since TIMESTAMPTZ,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE gf_webhook_events (
                event_id TEXT PRIMARY KEY,
                event_type TEXT NOT NULL,
                run_id TEXT,
                data JSONB NOT NULL,
                created_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE gf_webhook_deliveries (
                delivery_id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                hook_id TEXT,
                url TEXT,
                target_key TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_attempt_at TIMESTAMPTZ NOT NULL,
                lease_expires_at TIMESTAMPTZ,
                worker_id TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                last_status_code INTEGER,
                last_error TEXT
            )""",
            "CREATE INDEX gf_webhook_deliveries_due ON gf_webhook_deliveries (next_attempt_at) "
            "WHERE status = 'pending'",
            "CREATE INDEX gf_webhook_deliveries_hook ON gf_webhook_deliveries (hook_id, status)",
            """CREATE TABLE gf_webhook_attempts (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                delivery_id TEXT NOT NULL,
                hook_id TEXT,
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                status TEXT NOT NULL,
                status_code INTEGER,
                duration_s DOUBLE PRECISION NOT NULL,
                error TEXT,
                next_attempt_at TIMESTAMPTZ,
                attempted_at TIMESTAMPTZ NOT NULL
            )""",
            "CREATE INDEX gf_webhook_attempts_hook ON gf_webhook_attempts (hook_id, id)",
        ),
    ),
    Migration(
        7,
        "worker addresses",
        (
            """CREATE TABLE gf_workers (
                worker_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL
            )""",
        ),
    ),
    Migration(
        8,
        "thread TTLs",
        (
            # See worker.store.thread_ttl.
            "ALTER TABLE gf_threads ADD COLUMN ttl_strategy TEXT",
            "ALTER TABLE gf_threads ADD COLUMN ttl_minutes DOUBLE PRECISION",
            "ALTER TABLE gf_threads ADD COLUMN ttl_expires_at TIMESTAMPTZ",
            "ALTER TABLE gf_threads ADD COLUMN ttl_claimed_by TEXT",
            "ALTER TABLE gf_threads ADD COLUMN ttl_claim_expires_at TIMESTAMPTZ",
            "CREATE INDEX gf_threads_ttl ON gf_threads (ttl_expires_at) "
            "WHERE ttl_expires_at IS NOT NULL",
        ),
    ),
    Migration(
        9,
        "stop action on record",
        (
            # What a cancel written to a run's record asks its holder to do (interrupt or
            # rollback): the holder reads it when the cancel's command did not reach it.
            "ALTER TABLE gf_runs ADD COLUMN stop_action TEXT",
            # A run holds a lease while it is active, and a cancelled one until its holder
            # ends it: a lapsed lease of either is the sweeper's to take.
            "DROP INDEX gf_runs_lease",
            "CREATE INDEX gf_runs_lease ON gf_runs (lease_expires_at) "
            "WHERE lease_expires_at IS NOT NULL",
        ),
    ),
)
