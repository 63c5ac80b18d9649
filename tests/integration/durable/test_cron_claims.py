"""Both stores: cron records, and the claim that gives each firing to exactly one worker.

Two store objects on one database stand for two workers; the scheduler runs with a fake
clock and a fake ``fire`` that records run ids, so the claim protocol is tested without
waiting for wall-clock minutes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from worker.crons.scheduler import CronScheduler
from worker.store import Store
from worker.store.crons import CronQuery, CronRecord, fire_run_id

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _cron(cron_id: str, *, due: datetime = T0, **changes: object) -> CronRecord:
    values: dict[str, object] = {
        "cron_id": cron_id,
        "assistant_id": "assistant-1",
        "thread_id": None,
        "schedule": "*/5 * * * *",
        "timezone": None,
        "payload": {"assistant_id": "assistant-1", "input": {"n": 1}},
        "metadata": {"team": "a"},
        "on_run_completed": "delete",
        "enabled": True,
        "end_time": None,
        "next_run_date": due,
        "created_at": T0 - timedelta(hours=1),
        "updated_at": T0 - timedelta(hours=1),
    }
    values.update(changes)
    return CronRecord(**values)  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Runs:
    """A fake run table: ``fire`` is idempotent per run id, as the real one is."""

    def __init__(self) -> None:
        self.created: Counter[str] = Counter()
        self.fail = False

    async def fire(self, cron: CronRecord, due: datetime, run_id: str) -> None:
        if self.fail:
            raise RuntimeError("at capacity")
        if run_id not in self.created:
            self.created[run_id] += 1


def _scheduler(store: Store, runs: Runs, worker_id: str, clock: Clock) -> CronScheduler:
    return CronScheduler(
        store=store, fire=runs.fire, worker_id=worker_id, interval_s=1.0, claim_s=30.0, clock=clock
    )


async def test_records_round_trip_and_queries(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.create_cron(_cron("c1", thread_id="t1", on_run_completed=None))
    await a.create_cron(_cron("c2", metadata={"team": "b"}, enabled=False))
    await a.create_cron(_cron("c3", created_at=T0))
    seen = await b.get_cron("c1")
    assert seen == _cron("c1", thread_id="t1", on_run_completed=None)
    assert await b.get_cron("missing") is None
    assert [c.cron_id for c in await b.search_crons(CronQuery())] == ["c3", "c2", "c1"]
    assert [c.cron_id for c in await b.search_crons(CronQuery(thread_id="t1"))] == ["c1"]
    assert [c.cron_id for c in await b.search_crons(CronQuery(enabled=False))] == ["c2"]
    by_team = await b.search_crons(CronQuery(metadata={"team": "a"}, sort_order="asc"))
    assert [c.cron_id for c in by_team] == ["c1", "c3"]
    assert [c.cron_id for c in await b.search_crons(CronQuery(limit=1, offset=1))] == ["c2"]
    assert await b.count_crons(CronQuery(metadata={"team": "a"})) == 2
    updated = await b.update_cron("c1", {"enabled": False, "metadata": {"team": "z"}})
    assert updated is not None
    assert (updated.enabled, updated.metadata) == (False, {"team": "z"})
    assert await b.update_cron("missing", {"enabled": False}) is None
    assert await a.delete_cron("c1") is True
    assert await a.delete_cron("c1") is False
    assert await b.count_crons(CronQuery()) == 2


async def test_of_two_workers_ticking_at_once_exactly_one_fires_each_cron(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    for i in range(6):
        await a.create_cron(_cron(f"c{i}"))
    await a.create_cron(_cron("later", due=T0 + timedelta(minutes=1)))
    await a.create_cron(_cron("off", enabled=False))
    await a.create_cron(_cron("ended", end_time=T0 - timedelta(seconds=1)))
    runs, clock = Runs(), Clock(T0 + timedelta(seconds=1))
    fired = await asyncio.gather(
        _scheduler(a, runs, "a", clock).tick(), _scheduler(b, runs, "b", clock).tick()
    )
    assert sum(fired) == 6
    assert len(runs.created) == 6
    assert set(runs.created.values()) == {1}
    # Each fired cron moved to its next time; nothing is due until then.
    for i in range(6):
        cron = await a.get_cron(f"c{i}")
        assert cron is not None
        assert cron.next_run_date == T0 + timedelta(minutes=5)
    assert await _scheduler(b, runs, "b", clock).tick() == 0


async def test_a_worker_dead_after_its_claim_delays_the_firing_but_never_loses_it(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.create_cron(_cron("c"))
    clock, runs = Clock(T0), Runs()
    # Worker a claims, then dies before creating the run.
    claimed = await a.claim_due_crons("a", now=clock.now, claim_s=30.0, limit=10)
    assert [c.cron_id for c in claimed] == ["c"]
    assert await _scheduler(b, runs, "b", clock).tick() == 0  # a's claim still holds
    clock.now = T0 + timedelta(seconds=31)
    assert await _scheduler(b, runs, "b", clock).tick() == 1
    assert sum(runs.created.values()) == 1
    # The dead worker's late finish changes nothing: the claim is no longer its.
    assert not await a.finish_cron_fire("c", "a", due=T0, next_run_date=T0)


async def test_a_worker_dead_after_creating_the_run_is_not_fired_twice(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.create_cron(_cron("c"))
    clock, runs = Clock(T0), Runs()
    # Worker a claims and creates the run, then dies before advancing the cron.
    (claimed,) = await a.claim_due_crons("a", now=clock.now, claim_s=30.0, limit=10)
    dying = _scheduler(a, runs, "a", clock)
    await runs.fire(claimed, T0, _run_id_of(claimed))
    clock.now = T0 + timedelta(seconds=31)
    assert await _scheduler(b, runs, "b", clock).tick() == 1
    assert list(runs.created.values()) == [1]  # same run id: b did not create a second run
    cron = await b.get_cron("c")
    assert cron is not None
    assert cron.next_run_date == T0 + timedelta(minutes=5)
    assert await dying.tick() == 0


def _run_id_of(cron: CronRecord) -> str:
    return fire_run_id(cron.cron_id, cron.next_run_date)


async def test_a_failed_fire_leaves_the_cron_due_for_the_next_tick(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.create_cron(_cron("c"))
    clock, runs = Clock(T0), Runs()
    runs.fail = True
    assert await _scheduler(a, runs, "a", clock).tick() == 0
    runs.fail = False
    # Released, not advanced: another worker fires it at once.
    assert await _scheduler(b, runs, "b", clock).tick() == 1
    assert sum(runs.created.values()) == 1


async def test_deleting_a_thread_deletes_its_crons(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    await a.create_thread("t1", {})
    await a.create_cron(_cron("on-thread", thread_id="t1", on_run_completed=None))
    await a.create_cron(_cron("stateless"))
    assert await a.delete_thread("t1")
    assert [c.cron_id for c in await a.search_crons(CronQuery())] == ["stateless"]


async def test_a_paused_scheduler_claims_nothing(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.create_cron(_cron("c"))
    clock, runs = Clock(T0), Runs()
    draining = CronScheduler(
        store=a,
        fire=runs.fire,
        worker_id="a",
        interval_s=1.0,
        claim_s=30.0,
        clock=clock,
        paused=lambda: True,
    )
    assert await draining.tick() == 0
    # Nothing held: another worker fires it at once.
    assert await _scheduler(b, runs, "b", clock).tick() == 1
