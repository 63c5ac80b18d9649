"""The delivery loop of one worker: claim due deliveries from the outbox, send, record.

Every worker runs one; the store's leases make each delivery go to one of them at a time.
At most ``WORKER_WEBHOOK_CONCURRENCY`` attempts run at once, at most
``WORKER_WEBHOOK_CONCURRENCY_PER_HOOK`` to one receiver (a receiver at its limit is left out
of the next claim), so a slow or dead receiver never holds up another one, nor any run (runs
only write the outbox). A delivery gets ``WORKER_WEBHOOK_ATTEMPTS`` attempts, each claim
counting as one, then it is marked failed.

``wake()`` makes the loop look at once (a run just wrote events); otherwise it looks every
``WORKER_WEBHOOK_POLL_S``, which is also how it notices other workers' events.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from common.urls import redact
from worker.metrics import WebhookMetrics
from worker.settings import WorkerSettings
from worker.store.webhooks import AttemptResult, Delivery, DeliveryStatus, WebhookStore
from worker.webhooks import retry
from worker.webhooks.sender import Answer, Sender

log = structlog.get_logger("worker.webhooks")

# Ended deliveries (and their events) are kept this long, then pruned, once an hour.
KEEP_ENDED_S = 7 * 86400.0
PRUNE_INTERVAL_S = 3600.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def attempt_result(
    delivery: Delivery,
    answer: Answer,
    *,
    max_attempts: int,
    base_s: float,
    max_s: float,
    rng: Callable[[], float],
) -> AttemptResult:
    """How ``answer`` leaves ``delivery``: delivered, to be retried after a delay, or failed."""
    status: DeliveryStatus = "delivered" if answer.verdict == "delivered" else "failed"
    retry_in_s = None
    if answer.verdict == "retry" and delivery.attempts < max_attempts:
        status = "pending"
        retry_in_s = retry.next_delay_s(
            delivery.attempts,
            retry_after_s=answer.retry_after_s,
            base_s=base_s,
            max_s=max_s,
            rng=rng,
        )
    return AttemptResult(
        delivery.delivery_id,
        status,
        answer.status_code,
        answer.duration_s,
        answer.error,
        retry_in_s,
    )


class Dispatcher:
    """See the module docstring. ``run()`` until cancelled; ``close()`` stops the attempts."""

    def __init__(
        self,
        *,
        store: WebhookStore,
        sender: Sender,
        settings: WorkerSettings,
        metrics: WebhookMetrics,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._metrics = metrics
        self._rng = rng
        self._clock = clock
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_target: dict[str, int] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._pruned_at: datetime | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        poll_s = self._settings.webhook_poll_s
        while True:
            self._wake.clear()
            try:
                await self.dispatch_once()
                await self.measure()
            except Exception:
                log.exception("webhook_dispatch_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_s)

    async def dispatch_once(self) -> int:
        """Claim what this worker may send now and start sending it; returns how many."""
        settings = self._settings
        free = settings.webhook_concurrency - len(self._tasks)
        if free <= 0:
            return 0
        per_hook = settings.webhook_concurrency_per_hook
        busy = [key for key, n in self._per_target.items() if n >= per_hook]
        deliveries = await self._store.claim_deliveries(
            settings.worker_id,
            limit=free,
            lease_s=settings.webhook_lease_s,
            exclude_targets=busy,
        )
        for delivery in deliveries:
            key = delivery.target_key
            self._per_target[key] = self._per_target.get(key, 0) + 1
            task = asyncio.create_task(self._deliver(delivery), name="webhook-delivery")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(deliveries)

    async def measure(self) -> None:
        """Update the outbox gauges; prune ended deliveries when it is time."""
        now = self._clock()
        if self._pruned_at is None or (now - self._pruned_at).total_seconds() > PRUNE_INTERVAL_S:
            self._pruned_at = now
            pruned = await self._store.prune(KEEP_ENDED_S)
            if pruned:
                log.info("webhook_deliveries_pruned", count=pruned)
        stats = await self._store.outbox_stats()
        self._metrics.outbox_size.set(stats.pending)
        oldest = stats.oldest_pending_at
        age_s = (now - oldest).total_seconds() if oldest is not None else 0.0
        self._metrics.outbox_oldest_age.set(max(0.0, age_s))

    async def _deliver(self, delivery: Delivery) -> None:
        key = delivery.target_key
        limit = self._limits.setdefault(
            key, asyncio.Semaphore(self._settings.webhook_concurrency_per_hook)
        )
        try:
            async with limit:
                await self._attempt(delivery)
        except Exception:
            log.exception("webhook_attempt_failed", delivery_id=delivery.delivery_id)
        finally:
            self._per_target[key] -= 1
            if not self._per_target[key]:
                del self._per_target[key]
                self._limits.pop(key, None)
            self._wake.set()  # a slot is free: look again

    async def _attempt(self, delivery: Delivery) -> None:
        settings = self._settings
        answer = await self._sender.attempt(delivery)
        result = attempt_result(
            delivery,
            answer,
            max_attempts=settings.webhook_attempts,
            base_s=settings.webhook_backoff_s,
            max_s=settings.webhook_backoff_max_s,
            rng=self._rng,
        )
        outcome = "retry" if result.status == "pending" else result.status
        self._metrics.deliveries.labels(event=delivery.event_type, outcome=outcome).inc()
        self._metrics.attempt_duration.observe(answer.duration_s)
        fields = {
            "delivery_id": delivery.delivery_id,
            "event_type": delivery.event_type,
            "url": redact(delivery.url),
            "attempt": delivery.attempts,
            "status_code": answer.status_code,
            "duration_s": round(answer.duration_s, 3),
        }
        if result.status == "delivered":
            log.info("webhook_delivered", **fields)
        elif result.status == "pending":
            log.info("webhook_retry", **fields, error=answer.error, retry_in_s=result.retry_in_s)
        else:
            log.warning("webhook_failed", **fields, error=answer.error)
        disabled = await self._store.finish_attempt(
            settings.worker_id, result, disable_after_s=settings.webhook_disable_after_s
        )
        if disabled is not None:
            log.warning("webhook_disabled", hook_id=delivery.hook_id, reason=disabled)

    async def close(self) -> None:
        """Cancel attempts in flight; their leases lapse and another worker sends them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
