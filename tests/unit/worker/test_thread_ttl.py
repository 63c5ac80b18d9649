"""Thread TTLs without a server: langgraph.json's ``checkpointer.ttl``, the expiry and its
re-arming, and the sweep, driven by injected clocks on a SQLite store (no sleeping).

Two store objects on one file stand for two workers of a fleet.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph

from worker.store.sqlite import SqliteStore
from worker.store.thread_ttl import (
    MAX_TTL_MINUTES,
    ThreadTTL,
    TTLConfig,
    TTLConfigError,
    parse_ttl_config,
    read_ttl_config,
)
from worker.ttl.sweeper import SweepResult, ThreadTTLSweeper

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLAIM_S = 90.0


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (None, TTLConfig()),
        ({}, TTLConfig()),
        ({"default_ttl": 60}, TTLConfig(default=ThreadTTL("delete", 60.0))),
        (
            {"strategy": "keep_latest", "default_ttl": 1.5, "sweep_interval_minutes": 2},
            TTLConfig(default=ThreadTTL("keep_latest", 1.5), sweep_interval_s=120.0),
        ),
        ({"sweep_limit": 50}, TTLConfig(sweep_limit=50)),
        ({"default_ttl": 1e12}, TTLConfig(default=ThreadTTL("delete", MAX_TTL_MINUTES))),
    ],
)
def test_checkpointer_ttl_is_read_as_the_official_server_reads_it(
    section: Any, expected: TTLConfig
) -> None:
    assert parse_ttl_config(Path("langgraph.json"), section) == expected


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ([], "must be an object"),
        ({"strategy": "archive"}, "strategy"),
        ({"default_ttl": "60"}, "default_ttl"),
        ({"default_ttl": True}, "default_ttl"),
        ({"sweep_interval_minutes": 0}, "sweep_interval_minutes"),
        ({"sweep_limit": 2.5}, "sweep_limit"),
    ],
)
def test_a_malformed_checkpointer_ttl_is_refused_naming_the_key(section: Any, needle: str) -> None:
    with pytest.raises(TTLConfigError, match=needle):
        parse_ttl_config(Path("langgraph.json"), section)


def test_read_ttl_config_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {}, "checkpointer": {"ttl": {"default_ttl": 5}}}))
    assert read_ttl_config(path).default == ThreadTTL("delete", 5.0)
    path.write_text(json.dumps({"graphs": {}}))
    assert read_ttl_config(path) == TTLConfig()
    assert read_ttl_config(tmp_path / "missing.json") == TTLConfig()


def test_a_ttl_is_finite_and_bounded() -> None:
    assert ThreadTTL.of("delete", 10).expiry(T0) == T0 + timedelta(minutes=10)
    assert ThreadTTL.of("delete", -1).expiry(T0) < T0  # run out already
    assert ThreadTTL.of("keep_latest", 1e300).minutes == MAX_TTL_MINUTES
    with pytest.raises(ValueError, match="finite"):
        ThreadTTL.of("delete", float("inf"))


# the store and the sweep


class State(TypedDict, total=False):
    n: int


def _counter(store: SqliteStore) -> Any:
    def step(state: State) -> State:
        return {"n": state.get("n", 0) + 1}

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    return builder.compile(checkpointer=store.checkpointer)


class Stops:
    """A fake ``stop_thread``: records the threads it was asked to stop."""

    def __init__(self) -> None:
        self.stopped: list[str] = []
        self.fail = False

    async def __call__(self, thread_id: str) -> None:
        if self.fail:
            raise RuntimeError("relay unreachable")
        self.stopped.append(thread_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def stores(tmp_path: Path, clock: Clock) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    url = f"sqlite:///{tmp_path}/fleet.sqlite"
    a, b = SqliteStore(url, clock=clock), SqliteStore(url, clock=clock)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def _sweeper(store: SqliteStore, clock: Clock, stops: Stops, worker: str) -> ThreadTTLSweeper:
    return ThreadTTLSweeper(
        store=store,
        stop_thread=stops,
        worker_id=worker,
        interval_s=1.0,
        claim_s=CLAIM_S,
        batch_size=2,
        clock=clock,
    )


async def test_a_thread_expires_its_ttl_after_its_last_activity(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    store, _ = stores
    stops = Stops()
    sweeper = _sweeper(store, clock, stops, "w1")
    created = await store.create_thread("t", {}, ttl=ThreadTTL("delete", 10))
    assert created.ttl_expires_at == T0 + timedelta(minutes=10)
    clock.advance(minutes=8)
    await store.update_thread("t", status="busy")  # a run starts: the clock restarts
    clock.advance(minutes=8)
    assert await sweeper.sweep() == SweepResult()
    thread = await store.get_thread("t")
    assert thread is not None
    assert thread.ttl == ThreadTTL("delete", 10)
    assert thread.ttl_expires_at == T0 + timedelta(minutes=18)
    clock.advance(minutes=2)
    assert await sweeper.sweep() == SweepResult(deleted=1)
    assert await store.get_thread("t") is None
    assert stops.stopped == ["t"]  # its runs were stopped before it went


async def test_a_patch_sets_a_ttl_from_now_and_a_thread_without_one_never_expires(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    store, _ = stores
    sweeper = _sweeper(store, clock, Stops(), "w1")
    await store.create_thread("kept", {})
    await store.create_thread("patched", {})
    clock.advance(days=400)
    await store.update_thread("patched", ttl=ThreadTTL("delete", 1))
    assert await sweeper.sweep() == SweepResult()
    clock.advance(minutes=1)
    assert await sweeper.sweep() == SweepResult(deleted=1)
    assert await store.get_thread("patched") is None
    assert await store.get_thread("kept") is not None


async def test_the_default_ttl_applies_to_threads_created_without_one(
    tmp_path: Path, clock: Clock
) -> None:
    store = SqliteStore(
        f"sqlite:///{tmp_path}/d.sqlite", clock=clock, default_ttl=ThreadTTL("keep_latest", 30)
    )
    await store.open()
    try:
        assert (await store.create_thread("a", {})).ttl == ThreadTTL("keep_latest", 30)
        own = await store.create_thread("b", {}, ttl=ThreadTTL("delete", 5))
        assert own.ttl == ThreadTTL("delete", 5)
    finally:
        await store.close()


async def test_keep_latest_prunes_to_the_latest_checkpoint_and_waits_for_new_activity(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    store, _ = stores
    sweeper = _sweeper(store, clock, Stops(), "w1")
    await store.create_thread("t", {}, ttl=ThreadTTL("keep_latest", 5))
    graph = _counter(store)
    config: Any = {"configurable": {"thread_id": "t"}}
    for _ in range(3):
        await graph.ainvoke({}, config)
    assert len([s async for s in graph.aget_state_history(config)]) > 2
    clock.advance(minutes=5)
    assert await sweeper.sweep() == SweepResult(pruned=1)
    history = [s async for s in graph.aget_state_history(config)]
    assert len(history) == 1
    assert history[0].values == {"n": 3}
    thread = await store.get_thread("t")
    assert thread is not None
    assert thread.ttl_expires_at is None  # disarmed: nothing more to prune
    clock.advance(days=30)
    assert await sweeper.sweep() == SweepResult()
    await store.update_thread("t", status="idle")  # new activity re-arms it
    thread = await store.get_thread("t")
    assert thread is not None
    assert thread.ttl_expires_at == clock.now + timedelta(minutes=5)


async def test_a_busy_keep_latest_thread_waits_and_a_busy_delete_thread_goes(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    store, _ = stores
    stops = Stops()
    sweeper = _sweeper(store, clock, stops, "w1")
    await store.create_thread("pruned", {}, ttl=ThreadTTL("keep_latest", 1))
    await store.create_thread("deleted", {}, ttl=ThreadTTL("delete", 1))
    await store.update_thread("pruned", status="busy")
    await store.update_thread("deleted", status="busy")
    clock.advance(minutes=2)
    assert await sweeper.sweep() == SweepResult(deleted=1)
    assert stops.stopped == ["deleted"]
    assert await store.get_thread("pruned") is not None


async def test_each_expired_thread_is_swept_by_one_worker(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    a, b = stores
    stops = Stops()
    for n in range(7):
        await a.create_thread(f"t{n}", {}, ttl=ThreadTTL("delete", 1))
    clock.advance(minutes=1)
    # Interleaved as two workers would: each claims two at a time.
    first, second = _sweeper(a, clock, stops, "w1"), _sweeper(b, clock, stops, "w2")
    results = [await first.sweep(), await second.sweep()]
    assert sum(r.deleted for r in results) == 7
    assert sorted(stops.stopped) == [f"t{n}" for n in range(7)]


async def test_a_claim_holds_other_sweepers_off_until_it_lapses(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    a, b = stores
    await a.create_thread("t", {}, ttl=ThreadTTL("delete", 1))
    clock.advance(minutes=1)
    held = await a.claim_expired_threads("w1", now=clock(), claim_s=CLAIM_S, limit=10)
    assert [t.thread_id for t in held] == ["t"]
    # w1 dies here. Activity while it holds the claim does not re-arm the expiry.
    await b.update_thread("t", metadata={"x": 1})
    survivor = _sweeper(b, clock, Stops(), "w2")
    assert await survivor.sweep() == SweepResult()
    assert not await b.delete_thread("t", ttl_holder="w2")  # fenced: not its claim
    assert await b.get_thread("t") is not None
    clock.advance(seconds=CLAIM_S + 1)
    assert await survivor.sweep() == SweepResult(deleted=1)
    assert not await a.delete_thread("t", ttl_holder="w1")  # w1's late delete does nothing


async def test_a_failed_thread_is_not_retried_until_its_claim_lapses(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    store, _ = stores
    stops = Stops()
    sweeper = _sweeper(store, clock, stops, "w1")
    await store.create_thread("t", {}, ttl=ThreadTTL("delete", 1))
    clock.advance(minutes=1)
    stops.fail = True
    assert await sweeper.sweep() == SweepResult(failed=1)
    stops.fail = False
    assert await sweeper.sweep() == SweepResult()
    clock.advance(seconds=CLAIM_S + 1)
    assert await sweeper.sweep() == SweepResult(deleted=1)


async def test_a_draining_worker_sweeps_nothing(
    stores: tuple[SqliteStore, SqliteStore], clock: Clock
) -> None:
    store, _ = stores
    await store.create_thread("t", {}, ttl=ThreadTTL("delete", 1))
    clock.advance(minutes=1)
    sweeper = ThreadTTLSweeper(
        store=store,
        stop_thread=Stops(),
        worker_id="w1",
        interval_s=1.0,
        claim_s=CLAIM_S,
        clock=clock,
        paused=lambda: True,
    )
    assert await sweeper.sweep() == SweepResult()
    assert await store.get_thread("t") is not None
