"""Both stores: thread TTLs and the claim that sweeps each expired thread exactly once.

Two store objects on one database stand for two workers; the sweepers run with fake clocks
and a fake ``stop_thread``, so the protocol is tested without waiting for wall-clock minutes.
Expiries are set by the store (SQLite: its clock; Postgres: the database's ``now()``), so the
sweepers' clocks start at the real time and jump ahead.
"""

from __future__ import annotations

import asyncio
import operator
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph

from worker.store import Store
from worker.store.thread_ttl import ThreadTTL
from worker.ttl.sweeper import SweepResult, ThreadTTLSweeper

pytestmark = pytest.mark.integration
CLAIM_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Stops:
    """A fake ``stop_thread`` counting the threads it stopped."""

    def __init__(self) -> None:
        self.stopped: Counter[str] = Counter()

    async def __call__(self, thread_id: str) -> None:
        await asyncio.sleep(0)  # a real stop awaits: let the other sweeper interleave
        self.stopped[thread_id] += 1


def _sweeper(store: Store, stops: Stops, worker_id: str, clock: Clock) -> ThreadTTLSweeper:
    return ThreadTTLSweeper(
        store=store,
        stop_thread=stops,
        worker_id=worker_id,
        interval_s=1.0,
        claim_s=CLAIM_S,
        batch_size=3,
        clock=clock,
    )


async def test_a_ttl_is_stored_armed_and_re_armed_by_activity(stores: tuple[Store, Store]) -> None:
    a, b = stores
    before = datetime.now(UTC)
    created = await a.create_thread("t", {"k": 1}, ttl=ThreadTTL("keep_latest", 10))
    seen = await b.get_thread("t")
    assert seen is not None
    assert seen.ttl == ThreadTTL("keep_latest", 10)
    assert seen.ttl_expires_at == created.ttl_expires_at
    assert seen.ttl_expires_at is not None
    assert before + timedelta(minutes=9) < seen.ttl_expires_at < before + timedelta(minutes=11)
    await b.update_thread("t", ttl=ThreadTTL("delete", 60))
    patched = await a.get_thread("t")
    assert patched is not None
    assert patched.ttl == ThreadTTL("delete", 60)
    assert patched.ttl_expires_at is not None
    assert patched.ttl_expires_at > before + timedelta(minutes=59)
    assert patched.metadata == {"k": 1}
    plain = await a.create_thread("plain", {})
    assert (plain.ttl, plain.ttl_expires_at) == (None, None)


async def test_each_expired_thread_is_swept_once_by_two_workers(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    for n in range(10):
        await a.create_thread(f"t{n}", {}, ttl=ThreadTTL("delete", 1))
    await a.create_thread("later", {}, ttl=ThreadTTL("delete", 60))
    await a.create_thread("never", {})
    clock, stops = Clock(), Stops()
    clock.now += timedelta(minutes=2)
    results = await asyncio.gather(
        _sweeper(a, stops, "w1", clock).sweep(), _sweeper(b, stops, "w2", clock).sweep()
    )
    assert sum(r.deleted for r in results) == 10
    assert stops.stopped == Counter({f"t{n}": 1 for n in range(10)})
    for n in range(10):
        assert await a.get_thread(f"t{n}") is None
    assert await a.get_thread("later") is not None
    assert await a.get_thread("never") is not None


async def test_a_dead_sweepers_claim_lapses_to_another_worker(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.create_thread("t", {}, ttl=ThreadTTL("delete", 1))
    clock = Clock()
    clock.now += timedelta(minutes=2)
    held = await a.claim_expired_threads("w1", now=clock(), claim_s=CLAIM_S, limit=10)
    assert [t.thread_id for t in held] == ["t"]
    survivor = _sweeper(b, Stops(), "w2", clock)
    assert await survivor.sweep() == SweepResult()
    assert not await b.delete_thread("t", ttl_holder="w2")
    clock.now += timedelta(seconds=CLAIM_S + 1)
    assert await survivor.sweep() == SweepResult(deleted=1)
    assert not await a.finish_thread_ttl("t", "w1")


class Count(TypedDict, total=False):
    # A list: Postgres' saver keeps primitive values inline and lists in checkpoint_blobs.
    items: Annotated[list[int], operator.add]


def _counter(store: Store) -> Any:
    def step(state: Count) -> Count:
        return {"items": [len(state.get("items", []))]}

    builder = StateGraph(Count)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    return builder.compile(checkpointer=store.checkpointer)


async def test_keep_latest_prunes_once_and_keeps_the_state(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.create_thread("t", {}, ttl=ThreadTTL("keep_latest", 1))
    await a.create_thread("busy", {}, ttl=ThreadTTL("keep_latest", 1))
    await a.update_thread("busy", status="busy")
    graph = _counter(a)
    config: Any = {"configurable": {"thread_id": "t"}}
    for _ in range(3):
        await graph.ainvoke({}, config)
    clock = Clock()
    clock.now += timedelta(minutes=2)
    results = await asyncio.gather(
        _sweeper(a, Stops(), "w1", clock).sweep(), _sweeper(b, Stops(), "w2", clock).sweep()
    )
    assert sum(r.pruned for r in results) == 1
    history = [s async for s in graph.aget_state_history(config)]
    assert [h.values for h in history] == [{"items": [0, 1, 2]}]
    thread = await b.get_thread("t")
    assert thread is not None
    assert thread.ttl_expires_at is None
    # The busy one waits for its run to end; that end re-arms its expiry.
    busy = await b.get_thread("busy")
    assert busy is not None
    assert busy.ttl_expires_at is not None


async def test_storage_counts_the_rows_of_a_thread(stores: tuple[Store, Store]) -> None:
    a, _ = stores
    await a.create_thread("t", {})
    empty = await a.thread_storage("t")
    assert (empty.checkpoint_count, empty.total_bytes, empty.by_channel) == (0, 0, {})
    graph = _counter(a)
    config: Any = {"configurable": {"thread_id": "t"}}
    for _ in range(2):
        await graph.ainvoke({}, config)
    checkpoints = len([s async for s in graph.aget_state_history(config)])
    report = await a.thread_storage("t")
    assert report.checkpoint_count == checkpoints
    assert report.checkpoint_bytes > 0
    assert report.by_channel["items"].versions >= 2
    assert report.by_channel["items"].bytes > 0
    assert report.write_count > 0
    assert report.total_bytes == (
        report.checkpoint_bytes + report.channel_bytes + report.write_bytes
    )
    assert (await a.thread_storage("other")).total_bytes == 0
