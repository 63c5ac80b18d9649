"""Both stores: each step of a run's life is one write, with its thread and its events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from worker.store import Store, create_store
from worker.store.base import RunRecord, RunState
from worker.store.webhooks import HookRecord, WebhookEvent

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path}/w.sqlite"
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    store = create_store(url)
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
