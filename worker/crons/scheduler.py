"""The cron tick: claim due crons, fire each one, advance it. Every worker runs one.

The claim protocol (``worker.store.crons``) makes each firing happen on exactly one worker
of the fleet, also when a worker dies mid-tick. This loop only observes the clock, calls the
store, and hands each claimed cron to ``fire``, the callable that creates the run.

Due times and claim expiries are read on this worker's (injected) clock, so tests can drive
it. The workers of a fleet must agree on the time within ``claim_s``: a worker whose clock
runs that far ahead could take a claim another worker still holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from worker.crons.schedule import next_run_after
from worker.store.base import Store
from worker.store.crons import CronRecord, fire_run_id

log = structlog.get_logger("worker.crons")

# fire(cron, due, run_id): create the run for one firing (idempotent for ``run_id``).
Fire = Callable[[CronRecord, datetime, str], Awaitable[None]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CronScheduler:
    """Fires the fleet's due crons from this worker; ``tick()`` is one pass, testable alone.

    ``claim_s`` bounds how long a cron stays held by a worker that died mid-tick; while
    ``paused()`` (the worker drains) it claims nothing;
    ``batch_size`` how many crons one tick claims (the rest wait for the next tick or
    another worker).
    """

    def __init__(
        self,
        *,
        store: Store,
        fire: Fire,
        worker_id: str,
        interval_s: float,
        claim_s: float,
        batch_size: int = 10,
        clock: Callable[[], datetime] = _utcnow,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = store
        self._fire = fire
        self._worker_id = worker_id
        self._interval_s = interval_s
        self._claim_s = claim_s
        self._batch_size = batch_size
        self._clock = clock
        self._paused = paused

    async def tick(self) -> int:
        """Claim and fire the crons due now; returns how many fired. A paused scheduler (a
        draining worker) claims nothing: the other workers fire the crons."""
        if self._paused():
            return 0
        now = self._clock()
        claimed = await self._store.claim_due_crons(
            self._worker_id, now=now, claim_s=self._claim_s, limit=self._batch_size
        )
        fired = 0
        for cron in claimed:
            if await self._fire_one(cron, now):
                fired += 1
        return fired

    async def _fire_one(self, cron: CronRecord, now: datetime) -> bool:
        due = cron.next_run_date
        run_id = fire_run_id(cron.cron_id, due)
        try:
            await self._fire(cron, due, run_id)
        except Exception as exc:
            # The cron stays due: this worker's next tick, or another worker, tries again.
            log.warning(
                "cron_fire_failed", cron_id=cron.cron_id, error=f"{type(exc).__name__}: {exc}"
            )
            await self._store.release_cron_claim(cron.cron_id, self._worker_id)
            return False
        following = next_run_after(cron.schedule, max(now, due), cron.timezone)
        advanced = await self._store.finish_cron_fire(
            cron.cron_id, self._worker_id, due=due, next_run_date=following
        )
        log.info(
            "cron_fired",
            cron_id=cron.cron_id,
            run_id=run_id,
            due=due.isoformat(),
            next_run_date=following.isoformat(),
            advanced=advanced,
        )
        return True

    async def run_forever(self) -> None:
        """Tick every ``interval_s`` until cancelled; a failing tick is logged, not fatal."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cron_tick_failed")
            await asyncio.sleep(self._interval_s)
