"""Both stores: a run's status change and its webhook events are written together, each
delivery has one claimant at a time, and attempts, retries and hook health are recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from worker.store import Store
from worker.store.base import RunRecord
from worker.store.webhooks import AttemptResult, Delivery, HookRecord, Target, WebhookEvent

pytestmark = pytest.mark.integration


def _hook(hook_id: str, events: list[str], *, enabled: bool = True) -> HookRecord:
    now = datetime.now(UTC)
    url = "https://x.test/" + hook_id
    return HookRecord(
        hook_id, url, events, {"X-A": "1"}, "whsec_k", None, enabled, None, None, now, now
    )


def _event(event_id: str, event_type: str, *targets: Target) -> WebhookEvent:
    return WebhookEvent(event_id, event_type, "r1", {"run_id": "r1"}, datetime.now(UTC), targets)


async def _with_run(store: Store) -> None:
    now = datetime.now(UTC)
    await store.create_run(
        RunRecord("r1", "t", "a", "g", "running", now, now, {}, "enqueue", {}, "w1")
    )


async def test_a_status_change_writes_its_events_and_their_deliveries(store: Store) -> None:
    hooks = store.webhooks
    await hooks.create_hook(_hook("done", ["graph.completed"]))
    await hooks.create_hook(_hook("start", ["graph.started"]))
    await hooks.create_hook(_hook("off", ["graph.completed"], enabled=False))
    await _with_run(store)
    event = _event("msg_1", "graph.completed", Target("config", "https://c.test/"))
    await store.set_run_status("r1", "success", events=[event])
    record = await store.get_run("r1")
    assert record is not None
    assert record.status == "success"
    claimed = await hooks.claim_deliveries("w1", limit=10, lease_s=30, exclude_targets=[])
    assert sorted((d.kind, d.hook_id, d.url) for d in claimed) == [
        ("config", None, "https://c.test/"),
        ("hook", "done", "https://x.test/done"),
    ]
    by_kind = {d.kind: d for d in claimed}
    assert by_kind["hook"].headers == {"X-A": "1"}
    assert by_kind["hook"].secret == "whsec_k"
    assert by_kind["config"].secret is None
    assert {d.event_id for d in claimed} == {"msg_1"}
    assert all(d.attempts == 1 for d in claimed)
    stats = await hooks.outbox_stats()
    assert stats.pending == 2
    assert stats.oldest_pending_at is not None


async def test_each_delivery_has_one_claimant_until_its_lease_expires(store: Store) -> None:
    hooks = store.webhooks
    await hooks.add_events([_event("msg_1", "x", Target("run", "https://r.test/"))])
    first, second = await asyncio.gather(
        hooks.claim_deliveries("w1", limit=5, lease_s=0.5, exclude_targets=[]),
        hooks.claim_deliveries("w2", limit=5, lease_s=0.5, exclude_targets=[]),
    )
    assert len(first) + len(second) == 1
    # The holder dies: once its lease lapses, the delivery is claimed again, one more attempt.
    again: list[Delivery] = []

    async def reclaimed() -> bool:
        again.extend(await hooks.claim_deliveries("w3", limit=5, lease_s=30, exclude_targets=[]))
        return bool(again)

    for _ in range(100):
        if await reclaimed():
            break
        await asyncio.sleep(0.05)
    (delivery,) = again
    assert delivery.attempts == 2
    # The first holder's late answer counts for nothing: the delivery is w3's now.
    stale = AttemptResult(delivery.delivery_id, "delivered", 200, 0.1, None, None)
    assert await hooks.finish_attempt("w1", stale, disable_after_s=0) is None
    assert (await hooks.outbox_stats()).pending == 1


async def test_retries_wait_their_delay_and_excluded_receivers_wait_their_turn(
    store: Store,
) -> None:
    hooks = store.webhooks
    await hooks.add_events([_event("msg_1", "x", Target("run", "https://r.test/"))])
    busy = ["run:https://r.test/"]
    assert await hooks.claim_deliveries("w1", limit=5, lease_s=30, exclude_targets=busy) == []
    (delivery,) = await hooks.claim_deliveries("w1", limit=5, lease_s=30, exclude_targets=[])
    retry = AttemptResult(delivery.delivery_id, "pending", 503, 0.1, "HTTP 503", 3600.0)
    await hooks.finish_attempt("w1", retry, disable_after_s=0)
    assert await hooks.claim_deliveries("w1", limit=5, lease_s=30, exclude_targets=[]) == []
    assert (await hooks.outbox_stats()).pending == 1


async def test_attempts_are_listed_and_a_hook_failing_too_long_is_disabled(store: Store) -> None:
    hooks = store.webhooks
    await hooks.create_hook(_hook("h", ["graph.failed"]))
    await hooks.add_events([_event("msg_1", "graph.failed"), _event("msg_2", "graph.failed")])
    claimed = await hooks.claim_deliveries("w1", limit=5, lease_s=30, exclude_targets=[])
    assert len(claimed) == 2
    failure = AttemptResult(claimed[0].delivery_id, "pending", 500, 0.2, "HTTP 500", 0.0)
    assert await hooks.finish_attempt("w1", failure, disable_after_s=3600) is None
    failure = AttemptResult(claimed[1].delivery_id, "pending", 500, 0.2, "HTTP 500", 0.0)
    reason = await hooks.finish_attempt("w1", failure, disable_after_s=1e-6)
    assert reason is not None
    assert "HTTP 500" in reason
    hook = await hooks.get_hook("h")
    assert hook is not None
    assert (hook.enabled, hook.disabled_reason) == (False, reason)
    assert (await hooks.outbox_stats()).pending == 0  # its deliveries were failed with it
    attempts = await hooks.list_attempts("h", limit=10)
    assert [(a.event_id, a.status, a.status_code) for a in attempts] == [
        ("msg_2", "pending", 500),
        ("msg_1", "pending", 500),
    ]
    assert attempts[0].event_type == "graph.failed"
    enabled = await hooks.update_hook("h", {"enabled": True})
    assert enabled is not None
    assert (enabled.enabled, enabled.disabled_reason, enabled.failing_since) == (True, None, None)
    assert await hooks.delete_hook("h")
    assert await hooks.get_hook("h") is None
    assert not await hooks.delete_hook("h")


async def test_ended_deliveries_are_pruned_and_pending_ones_kept(store: Store) -> None:
    hooks = store.webhooks
    await hooks.add_events([_event("msg_1", "x", Target("run", "https://r.test/"))])
    await hooks.add_events([_event("msg_2", "x", Target("run", "https://s.test/"))])
    claimed = await hooks.claim_deliveries("w1", limit=1, lease_s=30, exclude_targets=[])
    done = AttemptResult(claimed[0].delivery_id, "delivered", 204, 0.1, None, None)
    await hooks.finish_attempt("w1", done, disable_after_s=0)
    assert await hooks.prune(3600.0) == 0  # ended too recently
    assert await hooks.prune(0.0) == 1
    assert await hooks.prune(0.0) == 0
    assert (await hooks.outbox_stats()).pending == 1
