"""Both stores: each step of a run's life is one write, with its thread and its events; a
thread's TTL is armed and restarted inside those writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from worker.store import Store, create_store
from worker.store.assistants import new_assistant
from worker.store.base import (
    AssistantChangedError,
    AssistantPatch,
    RunRecord,
    RunState,
    ThreadRecord,
)
from worker.store.thread_ttl import ThreadTTL
from worker.store.webhooks import HookRecord, WebhookEvent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DEFAULT_TTL = ThreadTTL("delete", 60)


@pytest.fixture
async def ttl_store(store_url: str) -> AsyncIterator[Store]:
    """A store whose threads get ``DEFAULT_TTL`` when created without one (langgraph.json)."""
    store = create_store(store_url, default_ttl=DEFAULT_TTL)
    await store.open()
    yield store
    await store.close()


def _run(run_id: str, thread_id: str, status: RunState = "running") -> RunRecord:
    now = datetime.now(UTC)
    return RunRecord(run_id, thread_id, "a", "g", status, now, now, {}, "enqueue", {}, "w1")


def _event(event_id: str, event_type: str) -> WebhookEvent:
    return WebhookEvent(event_id, event_type, "r1", {"run_id": "r1"}, datetime.now(UTC))


async def _hook(store: Store, event_type: str) -> None:
    now = datetime.now(UTC)
    await store.webhooks.create_hook(
        HookRecord(
            "h", "https://x.test/", [event_type], {}, "whsec_k", None, True, None, None, now, now
        )
    )


async def _claimed_events(store: Store) -> list[str]:
    claimed = await store.webhooks.claim_deliveries("w1", limit=10, lease_s=30, exclude_targets=[])
    return sorted(d.event_id for d in claimed)


async def test_a_run_begins_on_a_thread_it_creates(store: Store) -> None:
    await _hook(store, "graph.started")
    written = store.webhooks.deliveries_written
    await store.begin_run(
        _run("r1", "t1"),
        thread_metadata={"graph_id": "g", "assistant_id": "a"},
        create_thread=True,
        events=[_event("msg_started", "graph.started"), _event("msg_other", "graph.failed")],
    )
    thread = await store.get_thread("t1")
    assert thread is not None
    assert (thread.status, thread.metadata) == ("busy", {"graph_id": "g", "assistant_id": "a"})
    record = await store.get_run("r1")
    assert record is not None
    assert record.status == "running"
    assert record.lease_expires_at is not None
    # Only the event a hook wants makes a delivery; the count tells the dispatcher so.
    assert store.webhooks.deliveries_written == written + 1
    assert await _claimed_events(store) == ["msg_started"]


async def test_a_run_begins_on_an_existing_thread_merging_its_metadata(store: Store) -> None:
    await store.create_thread("t1", {"mine": 1, "graph_id": "old"})
    await store.begin_run(_run("r1", "t1", "pending"), thread_metadata={"graph_id": "g"})
    thread = await store.get_thread("t1")
    assert thread is not None
    assert (thread.status, thread.metadata) == ("busy", {"mine": 1, "graph_id": "g"})
    # Asked to create a thread that exists (two requests at once): the same thread.
    await store.begin_run(_run("r2", "t1", "pending"), thread_metadata={"x": 2}, create_thread=True)
    thread = await store.get_thread("t1")
    assert thread is not None
    assert thread.metadata == {"mine": 1, "graph_id": "g", "x": 2}
    assert [r.run_id for r in await store.list_runs("t1", limit=10, offset=0)] == ["r2", "r1"]


async def test_a_run_ends_with_its_thread_status_unless_fenced_out(store: Store) -> None:
    await store.begin_run(_run("r1", "t1"), thread_metadata={}, create_thread=True)
    fenced = await store.set_run_status(
        "r1", "success", result={"x": 1}, holder=("w2", 1), thread_status="idle"
    )
    assert fenced is False
    thread = await store.get_thread("t1")
    assert thread is not None
    assert thread.status == "busy"
    ended = await store.set_run_status(
        "r1", "error", error={"error": "E"}, holder=("w1", 1), thread_status="error"
    )
    assert ended is True
    record, thread = await store.get_run("r1"), await store.get_thread("t1")
    assert record is not None
    assert thread is not None
    assert (record.status, record.error, record.lease_expires_at) == ("error", {"error": "E"}, None)
    assert thread.status == "error"


async def test_a_thread_goes_with_its_runs_checkpoints_and_the_events_of_its_end(
    store: Store,
) -> None:
    await _hook(store, "graph.completed")
    await store.begin_run(_run("r1", "t1"), thread_metadata={}, create_thread=True)
    config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    put = await store.checkpointer.aput(config, empty_checkpoint(), {}, {})
    await store.checkpointer.aput_writes(put, [("x", 1)], task_id="k")
    assert await store.delete_thread("t1", events=[_event("msg_end", "graph.completed")])
    assert await store.get_thread("t1") is None
    assert await store.get_run("r1") is None
    assert await store.checkpointer.aget_tuple(config) is None
    assert await _claimed_events(store) == ["msg_end"]
    # Gone already: nothing deleted, no event.
    assert not await store.delete_thread("t1", events=[_event("msg_late", "graph.completed")])
    assert await _claimed_events(store) == []


async def _thread(store: Store, thread_id: str) -> ThreadRecord:
    thread = await store.get_thread(thread_id)
    assert thread is not None
    return thread


async def _disarm(store: Store, thread_id: str) -> None:
    """Leave ``thread_id``'s TTL disarmed (as after a keep_latest sweep): claimed as expired
    a day from now, then finished."""
    later = datetime.now(UTC) + timedelta(days=1)
    claimed = await store.claim_expired_threads("sweeper", now=later, claim_s=60, limit=100)
    assert thread_id in {t.thread_id for t in claimed}
    for thread in claimed:
        assert await store.finish_thread_ttl(thread.thread_id, "sweeper")
    assert (await _thread(store, thread_id)).ttl_expires_at is None


def _armed_from_now(thread: ThreadRecord, before: datetime) -> bool:
    """Whether ``thread``'s expiry is its TTL counted from a moment since ``before``."""
    assert thread.ttl is not None
    assert thread.ttl_expires_at is not None
    earliest = before + timedelta(minutes=thread.ttl.minutes) - timedelta(seconds=5)
    latest = datetime.now(UTC) + timedelta(minutes=thread.ttl.minutes) + timedelta(seconds=5)
    return earliest <= thread.ttl_expires_at <= latest


async def test_a_thread_a_run_creates_gets_the_default_ttl_unless_it_is_temporary(
    ttl_store: Store,
) -> None:
    before = datetime.now(UTC)
    await ttl_store.begin_run(_run("r1", "t1"), thread_metadata={}, create_thread=True)
    created = await _thread(ttl_store, "t1")
    assert created.ttl == DEFAULT_TTL
    assert _armed_from_now(created, before)
    # A stateless run's thread, deleted when the run ends, needs none.
    await ttl_store.begin_run(
        _run("r2", "t2"), thread_metadata={}, create_thread=True, temporary_thread=True
    )
    temporary = await _thread(ttl_store, "t2")
    assert (temporary.ttl, temporary.ttl_expires_at) == (None, None)


async def test_a_runs_begin_start_and_end_restart_its_threads_ttl(ttl_store: Store) -> None:
    store = ttl_store
    await store.create_thread("t1", {})
    await _disarm(store, "t1")
    before = datetime.now(UTC)
    await store.begin_run(_run("r1", "t1", "pending"), thread_metadata={"graph_id": "g"})
    assert _armed_from_now(await _thread(store, "t1"), before)
    await _disarm(store, "t1")
    assert await store.set_run_status(
        "r1", "running", holder=("w1", 1), if_active=True, thread_status="busy"
    )
    assert _armed_from_now(await _thread(store, "t1"), before)
    await _disarm(store, "t1")
    assert await store.set_run_status("r1", "success", holder=("w1", 1), thread_status="idle")
    ended = await _thread(store, "t1")
    assert ended.status == "idle"
    assert _armed_from_now(ended, before)
    # A write the record refuses (the run ended: not active) touches neither the run nor
    # the thread, whose TTL stays as it was.
    await _disarm(store, "t1")
    refused = await store.set_run_status(
        "r1", "running", holder=("w1", 1), if_active=True, thread_status="busy"
    )
    assert refused is False
    record, thread = await store.get_run("r1"), await _thread(store, "t1")
    assert record is not None
    assert (record.status, thread.status, thread.ttl_expires_at) == ("success", "idle", None)


async def test_a_begin_on_a_thread_a_sweeper_holds_leaves_its_expiry(ttl_store: Store) -> None:
    store = ttl_store
    await store.create_thread("t1", {})
    later = datetime.now(UTC) + timedelta(days=1)
    (claimed,) = await store.claim_expired_threads("sweeper", now=later, claim_s=60, limit=1)
    await store.begin_run(_run("r1", "t1"), thread_metadata={}, create_thread=True)
    assert (await _thread(store, "t1")).ttl_expires_at == claimed.ttl_expires_at


async def test_a_sweepers_delete_goes_with_the_events_only_under_its_claim(
    ttl_store: Store,
) -> None:
    store = ttl_store
    await _hook(store, "graph.completed")
    await store.begin_run(_run("r1", "t1"), thread_metadata={}, create_thread=True)
    later = datetime.now(UTC) + timedelta(days=1)
    assert await store.claim_expired_threads("w1", now=later, claim_s=60, limit=1)
    fenced = await store.delete_thread(
        "t1", events=[_event("msg_w2", "graph.completed")], ttl_holder="w2"
    )
    assert fenced is False
    assert await store.get_thread("t1") is not None
    assert await store.get_run("r1") is not None  # nothing of the thread went
    assert await _claimed_events(store) == []
    assert await store.delete_thread(
        "t1", events=[_event("msg_w1", "graph.completed")], ttl_holder="w1"
    )
    assert (await store.get_thread("t1"), await store.get_run("r1")) == (None, None)
    assert await _claimed_events(store) == ["msg_w1"]


@pytest.mark.parametrize("create_thread", [True, False])
async def test_a_run_made_from_an_assistant_changed_since_is_not_written(
    store: Store, create_thread: bool
) -> None:
    """``begin_run(assistant=...)`` writes the run only if the assistant is still as read."""
    now = datetime.now(UTC)
    read = await store.create_assistant(
        new_assistant(assistant_id="a", graph_id="g", now=now, context={"x": 1})
    )
    if not create_thread:
        await store.create_thread("t1", {})
    await store.begin_run(
        _run("r1", "t1"), thread_metadata={}, create_thread=create_thread, assistant=read
    )
    assert await store.get_run("r1") is not None
    await store.set_run_status("r1", "success", thread_status="idle")
    # Changed on another worker, then deleted: a run made from the first read is refused
    # each time, and neither it nor its thread's change is written.
    await store.patch_assistant("a", AssistantPatch(context={"x": 2}))
    for _ in range(2):
        with pytest.raises(AssistantChangedError):
            await store.begin_run(
                _run("r2", "t2" if create_thread else "t1"),
                thread_metadata={"run": 2},
                create_thread=create_thread,
                assistant=read,
            )
        assert await store.get_run("r2") is None
        if create_thread:
            assert await store.get_thread("t2") is None
        else:
            thread = await store.get_thread("t1")
            assert thread is not None
            assert (thread.status, thread.metadata) == ("idle", {})
        await store.delete_assistant("a")
    # As read again, it is written.
    again = await store.create_assistant(new_assistant(assistant_id="a", graph_id="g", now=now))
    await store.begin_run(_run("r3", "t3"), thread_metadata={}, create_thread=True, assistant=again)
    assert await store.get_run("r3") is not None
