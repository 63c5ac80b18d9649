"""What a run costs the Postgres store, counted (not timed): statements sent, and write
transactions as the server saw them.

Statements are those the store's cursors send (its ``sql_trace``). Write transactions are
counted by the server: a statement-level trigger on every table a run writes logs the id of
the transaction that wrote, in the test's own schema. Each write of a run's life is one
statement, so one transaction, with no ``BEGIN``/``COMMIT`` round trips around it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.integration.worker.test_statement_counts import GRAPHS, QUIET, _run, _settled
from tests.sql_log import SqlLog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TABLES = (
    "gf_threads",
    "gf_runs",
    "gf_crons",
    "gf_webhook_events",
    "gf_webhook_deliveries",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
)


def _watch_writes(url: str) -> None:
    """Log the transaction id of every statement that writes a run's tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE gf_test_writes (txid BIGINT, tab TEXT)")
        conn.execute(
            "CREATE FUNCTION gf_test_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO gf_test_writes VALUES (txid_current(), TG_TABLE_NAME); RETURN NULL; "
            "END $$"
        )
        for table in TABLES:
            conn.execute(
                f"CREATE TRIGGER gf_test_log AFTER INSERT OR UPDATE OR DELETE ON {table} "  # type: ignore[arg-type]
                "FOR EACH STATEMENT EXECUTE FUNCTION gf_test_log()"
            )


def _write_transactions(url: str) -> list[set[str]]:
    """The tables each logged transaction wrote, in order; the log is emptied."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("DELETE FROM gf_test_writes RETURNING txid, tab").fetchall()
    by_txid: dict[int, set[str]] = {}
    for txid, table in sorted(rows):
        by_txid.setdefault(txid, set()).add(table)
    return list(by_txid.values())


async def _worker(make_worker: WorkerFactory, pg_url: str, log: SqlLog) -> Worker:
    worker = await make_worker(graphs=GRAPHS, store=pg_url, sql_trace=log, **QUIET)
    _watch_writes(pg_url)
    return worker


async def test_a_stateless_run_on_postgres(
    make_worker: WorkerFactory, pg_url: str, tmp_path: Path
) -> None:
    log = SqlLog()
    worker = await _worker(make_worker, pg_url, log)
    async with worker.client() as client:
        await _run(client, None, tmp_path)
        await _settled(log)
        log.clear()
        _write_transactions(pg_url)
        await _run(client, None, tmp_path)
    # Its checkpoints (at exit only) stay in the worker's memory: none is read or written.
    # The assistant comes from the worker's cache, checked by the statement that begins the
    # run (still as read?), not read before it.
    assert log.shapes() == Counter(
        {
            # begun: thread, run and start events in one statement
            "WITH gf_threads+gf_runs+gf_webhook_events+gf_webhook_deliveries": 1,
            # ended: everything of the thread and the end's events, in one statement
            "WITH gf_threads+gf_runs+gf_crons+checkpoints+checkpoint_blobs+checkpoint_writes"
            "+gf_webhook_events+gf_webhook_deliveries": 1,
        }
    )
    written = _write_transactions(pg_url)
    assert len(written) == 2, written
    assert {"gf_threads", "gf_runs"} <= written[0]
    assert {"gf_threads", "gf_runs"} <= written[1]


async def test_a_run_on_a_thread_on_postgres(
    make_worker: WorkerFactory, pg_url: str, tmp_path: Path
) -> None:
    log = SqlLog()
    worker = await _worker(make_worker, pg_url, log)
    async with worker.client() as client:
        thread_id = (await client.threads.create())["thread_id"]
        await _run(client, thread_id, tmp_path)
        await _settled(log)
        log.clear()
        _write_transactions(pg_url)
        await _run(client, thread_id, tmp_path)
    shapes = log.shapes()
    assert {shape: n for shape, n in shapes.items() if "checkpoint" not in shape} == {
        # the thread; other workers' runs on it (the assistant is the worker's cached one)
        "SELECT gf_threads": 1,
        "SELECT gf_runs": 1,
        "WITH gf_threads+gf_runs+gf_webhook_events+gf_webhook_deliveries": 1,
        "WITH gf_runs+gf_threads+gf_webhook_events+gf_webhook_deliveries": 1,
    }
    written = _write_transactions(pg_url)
    records = [tables for tables in written if tables & {"gf_runs", "gf_threads"}]
    assert len(records) == 2, written
    assert all(not (tables & {"checkpoints"}) for tables in records)
