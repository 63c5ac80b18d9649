"""Both stores: migrations run twice are harmless; an expired lease has exactly one claimant."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest

from worker.store import Store, create_store
from worker.store.base import RunRecord
from worker.store.migrations import POSTGRES, SQLITE

pytestmark = pytest.mark.integration


def _run(run_id: str, worker: str) -> RunRecord:
    now = datetime.now(UTC)
    return RunRecord(
        run_id=run_id,
        thread_id="t",
        assistant_id="a",
        graph_id="g",
        status="running",
        created_at=now,
        updated_at=now,
        metadata={},
        multitask_strategy="enqueue",
        kwargs={},
        worker_id=worker,
    )


async def _versions(url: str) -> list[int]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [row[0] for row in conn.execute("SELECT version FROM gf_schema_migrations")]
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT version FROM gf_schema_migrations ORDER BY version")
        return [row[0] for row in await cur.fetchall()]


async def test_migrations_run_twice_are_harmless(store_url: str) -> None:
    first = create_store(store_url)
    await first.open()
    try:
        await first.create_thread("kept", {"k": 1})
    finally:
        await first.close()
    # Twice more, two of them at once: each version is applied once, the data stays.
    again = [create_store(store_url) for _ in range(2)]
    await asyncio.gather(*(s.open() for s in again))
    try:
        thread = await again[0].get_thread("kept")
        assert thread is not None
        assert thread.metadata == {"k": 1}
    finally:
        await asyncio.gather(*(s.close() for s in again))
    expected = SQLITE if store_url.startswith("sqlite") else POSTGRES
    assert await _versions(store_url) == [m.version for m in expected]


async def test_an_expired_lease_has_exactly_one_claimant(store_url: str) -> None:
    stores: list[Store] = [create_store(store_url, lease_s=30) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await stores[0].create_thread("t", {})
        await stores[0].create_run(_run("r1", "w0"))
        # A live lease is nobody else's.
        nothing = await stores[1].claim_expired_runs("w1", ["g"], limit=5, max_attempts=3)
        assert (nothing.claimed, nothing.abandoned) == ([], [])
        assert await stores[0].renew_leases("w0", ["r1"]) == {"r1"}
        await stores[0].release_runs("w0")  # as a worker shutting down does
        holder = "w0"
        for attempt in (2, 3):
            claims = await asyncio.gather(
                *(
                    s.claim_expired_runs(f"w{i}", ["g"], limit=5, max_attempts=3)
                    for i, s in enumerate(stores)
                )
            )
            winners = [c.claimed[0] for c in claims if c.claimed]
            assert len(winners) == 1
            assert winners[0].attempt == attempt
            assert winners[0].lease_expires_at is not None
            # The winner holds it now: the previous holder cannot renew it.
            if winners[0].worker_id != holder:
                assert await stores[0].renew_leases(holder, ["r1"]) == set()
            holder = winners[0].worker_id
            assert await stores[0].release_runs(holder) == 1
        # The third execution was cut short too: with 3 attempts, the run is given up.
        final = await stores[1].claim_expired_runs("w1", ["g"], limit=5, max_attempts=3)
        assert final.claimed == []
        assert [r.run_id for r in final.abandoned] == ["r1"]
        record = await stores[2].get_run("r1")
        assert record is not None
        assert record.status == "error"
        assert record.error is not None
        assert "abandoned after 3 attempts" in record.error["message"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_lease_holders_are_the_other_workers_with_live_leases_and_their_urls(
    store_url: str,
) -> None:
    store = create_store(store_url, lease_s=30)
    await store.open()
    try:
        await store.create_thread("t", {})
        await store.record_worker("w0", "http://10.0.0.1:8000")
        await store.record_worker("w0", "http://10.0.0.9:8000")  # a restart elsewhere
        await store.record_worker("w1", "http://10.0.0.2:8000")
        await store.record_worker("idle", "http://10.0.0.3:8000")
        await store.create_run(_run("r0", "w0"))
        await store.create_run(_run("r0b", "w0"))
        await store.create_run(_run("r1", "w1"))
        await store.create_run(_run("r2", "unrecorded"))
        assert await store.renew_leases("w0", ["r0", "r0b"]) == {"r0", "r0b"}
        assert await store.renew_leases("w1", ["r1"]) == {"r1"}
        assert await store.renew_leases("unrecorded", ["r2"]) == {"r2"}
        assert await store.lease_holders("w1") == {"w0": "http://10.0.0.9:8000"}
        # Released leases (and ended runs) hold nothing: their workers are not asked about.
        assert await store.release_runs("w0") == 2
        await store.set_run_status("r1", "success")
        assert await store.lease_holders("me") == {}
    finally:
        await store.close()


async def test_a_status_write_is_fenced_by_the_holder_and_its_attempt(store_url: str) -> None:
    store = create_store(store_url, lease_s=30)
    await store.open()
    try:
        await store.create_thread("t", {})
        await store.create_run(_run("r1", "w0"))
        await store.release_runs("w0")
        claim = await store.claim_expired_runs("w1", ["g"], limit=1, max_attempts=3)
        assert [(r.worker_id, r.attempt) for r in claim.claimed] == [("w1", 2)]
        # The first holder, slow rather than dead, tries to report: nothing changes.
        assert not await store.set_run_status("r1", "success", result={"x": 1}, holder=("w0", 1))
        # Nor can the new holder write as an attempt it does not hold.
        assert not await store.set_run_status("r1", "success", holder=("w1", 1))
        record = await store.get_run("r1")
        assert record is not None
        assert (record.status, record.result) == ("running", None)
        assert await store.set_run_status("r1", "success", result={"x": 2}, holder=("w1", 2))
        record = await store.get_run("r1")
        assert record is not None
        assert (record.status, record.result) == ("success", {"x": 2})
    finally:
        await store.close()


async def test_a_cancel_on_record_leaves_an_ended_run_as_it_is(store_url: str) -> None:
    """A cancel's mark never overwrites an outcome; a run cancelled on record cannot be made
    running again by its holder, and its record says what the cancel asked for."""
    store = create_store(store_url, lease_s=30)
    await store.open()
    try:
        await store.create_thread("t", {})
        await store.create_run(_run("r1", "w0"))
        assert await store.stop_on_record("r1") is None
        assert await store.cancel_on_record("r1", "rollback")
        assert not await store.set_run_status("r1", "running", holder=("w0", 1), if_active=True)
        assert not await store.cancel_on_record("r1", "interrupt")
        record = await store.get_run("r1")
        assert record is not None
        assert record.status == "cancelled"
        assert await store.stop_on_record("r1") == "rollback"  # the first mark stands
        await store.create_run(_run("r2", "w0"))
        assert await store.set_run_status("r2", "success", result={"x": 1}, holder=("w0", 1))
        assert not await store.cancel_on_record("r2", "interrupt")
        assert not await store.set_run_status("r2", "cancelled", if_active=True)
        record = await store.get_run("r2")
        assert record is not None
        assert (record.status, record.result) == ("success", {"x": 1})
        assert await store.stop_on_record("r2") is None
        # Cancelled by a status write (no action on record): an interrupt.
        await store.create_run(_run("r3", "w0"))
        assert await store.set_run_status("r3", "cancelled", if_active=True)
        assert await store.stop_on_record("r3") == "interrupt"
    finally:
        await store.close()


async def test_a_cancel_on_record_keeps_the_lease_until_its_holder_ends_the_run(
    store_url: str,
) -> None:
    """A holder that dies before it reads the cancel leaves its lease to lapse: the run is then
    claimed (to be ended as asked, not resumed), after the runs before it on its thread; once
    ended it holds nothing, and no release makes it claimable again."""
    store = create_store(store_url, lease_s=30)
    await store.open()
    try:
        await store.create_thread("t", {})
        await store.record_worker("w0", "http://10.0.0.1:8000")
        await store.create_run(_run("r1", "w0"))
        await store.create_run(_run("r2", "w0"))
        assert await store.cancel_on_record("r2", "rollback")
        marked = await store.get_run("r2")
        assert marked is not None
        assert marked.lease_expires_at is not None
        # Its holder, alive, keeps the lease but learns the run is no longer its to execute.
        assert await store.renew_leases("w0", ["r1", "r2"]) == {"r1"}
        renewed = await store.get_run("r2")
        assert renewed is not None
        assert renewed.lease_expires_at is not None
        assert renewed.lease_expires_at > marked.lease_expires_at
        assert await store.lease_holders("w1") == {"w0": "http://10.0.0.1:8000"}
        assert await store.release_runs("w0") == 2  # the holder is found dead
        first = await store.claim_expired_runs("w1", ["g"], limit=5, max_attempts=3)
        assert [r.run_id for r in first.claimed] == ["r1"]  # r2 waits for the run before it
        assert await store.set_run_status("r1", "success", holder=("w1", 2))
        second = await store.claim_expired_runs("w1", ["g"], limit=5, max_attempts=3)
        assert [(r.run_id, r.status, r.attempt) for r in second.claimed] == [("r2", "cancelled", 2)]
        assert await store.stop_on_record("r2") == "rollback"
        assert await store.set_run_status("r2", "cancelled", holder=("w1", 2))
        ended = await store.get_run("r2")
        assert ended is not None
        assert ended.lease_expires_at is None
        assert await store.release_runs("w1") == 0
        again = await store.claim_expired_runs("w2", ["g"], limit=5, max_attempts=3)
        assert (again.claimed, again.abandoned) == ([], [])
    finally:
        await store.close()
