"""The thread TTL sweep: claim expired threads, delete or prune each. Every worker runs one.

The claim protocol (``worker.store.thread_ttl``) makes each expired thread swept by exactly
one worker of the fleet, also when a worker dies mid-sweep. This loop only observes the
clock, calls the store, and acts on each claimed thread:

- ``delete``: its active runs are stopped first (``stop_thread``, as ``DELETE /threads/{id}``
  does: wherever they execute), then the thread goes with its runs, crons and checkpoints,
  only while this worker's claim holds;
- ``keep_latest``: every checkpoint but the latest of each namespace is pruned (the code of
  ``POST /threads/prune``), then the expiry is disarmed until the thread's next activity. A
  thread that became busy since the claim is left for later (the run's end re-arms it).

A thread that fails keeps its claim until it lapses (``claim_s``): then a sweep, of any
worker, tries again; within one sweep nothing is retried in a loop.

Expiry is compared with this worker's (injected) clock, so tests can drive it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog

from worker.store.base import Store, ThreadRecord
from worker.store.checkpoint_ops import keep_latest

log = structlog.get_logger("worker.ttl")

# stop_thread(thread_id): cancel the thread's active runs and wait for them to end.
StopThread = Callable[[str], Awaitable[None]]
Outcome = Literal["deleted", "pruned", "skipped", "failed"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did: threads deleted, pruned, left (taken over or busy), failed."""

    deleted: int = 0
    pruned: int = 0
    skipped: int = 0
    failed: int = 0


class ThreadTTLSweeper:
    """Sweeps the fleet's expired threads from this worker; ``sweep()`` is one pass.

    One pass claims ``batch_size`` threads at a time, at most ``limit`` in all (the rest wait
    for the next pass or another worker). ``claim_s`` must outlast stopping a thread's runs;
    while ``paused()`` (the worker drains) nothing is claimed.
    """

    def __init__(
        self,
        *,
        store: Store,
        stop_thread: StopThread,
        worker_id: str,
        interval_s: float,
        claim_s: float,
        limit: int = 1000,
        batch_size: int = 100,
        clock: Callable[[], datetime] = _utcnow,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = store
        self._stop_thread = stop_thread
        self._worker_id = worker_id
        self._interval_s = interval_s
        self._claim_s = claim_s
        self._limit = limit
        self._batch_size = batch_size
        self._clock = clock
        self._paused = paused

    async def sweep(self) -> SweepResult:
        """Claim the threads expired now and act on each; counts of what happened."""
        counts: dict[Outcome, int] = {"deleted": 0, "pruned": 0, "skipped": 0, "failed": 0}
        handled = 0
        while handled < self._limit and not self._paused():
            wanted = min(self._batch_size, self._limit - handled)
            claimed = await self._store.claim_expired_threads(
                self._worker_id, now=self._clock(), claim_s=self._claim_s, limit=wanted
            )
            for thread in claimed:
                counts[await self._sweep_one(thread)] += 1
            handled += len(claimed)
            if len(claimed) < wanted:
                break
        return SweepResult(**counts)

    async def _sweep_one(self, thread: ThreadRecord) -> Outcome:
        thread_id = thread.thread_id
        strategy = thread.ttl.strategy if thread.ttl is not None else "delete"
        try:
            if strategy == "delete":
                return await self._delete(thread_id)
            return await self._prune(thread_id)
        except Exception as exc:
            # The claim stays until it lapses; then the thread is tried again.
            log.warning(
                "thread_ttl_failed",
                thread_id=thread_id,
                strategy=strategy,
                error=f"{type(exc).__name__}: {exc}",
            )
            return "failed"

    async def _delete(self, thread_id: str) -> Outcome:
        await self._stop_thread(thread_id)
        if not await self._store.delete_thread(thread_id, ttl_holder=self._worker_id):
            return "skipped"  # the claim lapsed meanwhile: another worker has the thread
        log.info("thread_ttl_deleted", thread_id=thread_id)
        return "deleted"

    async def _prune(self, thread_id: str) -> Outcome:
        current = await self._store.get_thread(thread_id)
        if current is None:
            return "skipped"
        if current.status == "busy":
            # A run started since the claim: pruning under it could drop what it writes.
            # Its end re-arms the expiry; until then the thread is not claimable.
            await self._store.release_thread_ttl_claim(thread_id, self._worker_id)
            return "skipped"
        # Shielded: a shutdown cancelling the sweep stops waiting for the prune, not the
        # prune (one transaction on the stores' savers, two steps on any other).
        await asyncio.shield(keep_latest(self._store.checkpointer, thread_id))
        if not await self._store.finish_thread_ttl(thread_id, self._worker_id):
            return "skipped"
        log.info("thread_ttl_pruned", thread_id=thread_id)
        return "pruned"

    async def run_forever(self) -> None:
        """Sweep every ``interval_s`` until cancelled; a failing sweep is logged, not fatal."""
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("thread_ttl_sweep_failed")
            await asyncio.sleep(self._interval_s)
