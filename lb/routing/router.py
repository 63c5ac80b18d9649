"""Choosing the instance for a request: affinity, then the strategy, then the capacity queue.

:meth:`Router.acquire` counts the request against the chosen instance in the same step as it
chooses (no ``await`` between the two), and :meth:`Router.release` must be called exactly
once for every acquire, in a ``finally``. Only requests that create work
(:func:`common.contract.creates_work`) take an instance's capacity slots and wait in the
capacity queue; joins, streams of existing runs and reads go to any routable instance at once.
"""

from __future__ import annotations

import asyncio
import time

from lb.fleet.registry import Health, Instance, Registry
from lb.metrics import LBMetrics
from lb.routing.affinity import AffinityTable
from lb.routing.capacity import CapacityQueue, QueueFull
from lb.routing.strategies import Strategy, anywhere, has_room


class NoInstance(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Router:
    """Routes requests over the registry's current snapshot. ``strategy`` may be swapped."""

    def __init__(
        self,
        registry: Registry,
        strategy: Strategy,
        affinity: AffinityTable,
        metrics: LBMetrics,
        queue_size: int,
        queue_timeout_s: float,
    ) -> None:
        self.registry = registry
        self.strategy = strategy
        self.affinity = affinity
        self.metrics = metrics
        self.queue = CapacityQueue(queue_size)
        self._queue_timeout_s = queue_timeout_s
        registry.subscribe(lambda _snapshot: self.queue.wake_all())

    def pick(self, key: str | None, creates_work: bool, tried: set[str] | None) -> Instance | None:
        snapshot = self.registry.snapshot
        if key is not None:
            owner_id = self.affinity.get(key)
            if owner_id is not None and (tried is None or owner_id not in tried):
                owner = snapshot.by_id.get(owner_id)
                # The holder of a thread keeps answering for it while it is healthy, even
                # draining (join, cancel, resume); only new work looks elsewhere.
                if (
                    owner is not None
                    and owner.health is Health.HEALTHY
                    and not owner.ejected
                    and (not creates_work or (owner.routable and has_room(owner)))
                ):
                    return owner
        room = has_room if creates_work else anywhere
        return self.strategy.choose(snapshot.routable, () if tried is None else tried, room)

    async def acquire(
        self, key: str | None, creates_work: bool, tried: set[str] | None
    ) -> Instance:
        """Choose an instance and count the request against it, waiting for room if needed."""
        queue = self.queue
        deadline: float | None = None
        while True:
            # While others wait, a newcomer queues behind them (unless it was woken itself);
            # a request that creates no work never queues: it takes no capacity slot.
            if not queue or deadline is not None or not creates_work:
                instance = self.pick(key, creates_work, tried)
                if instance is not None:
                    # No await between choosing and counting: the count is what the next
                    # request's choice sees.
                    instance.load.inflight += 1
                    if creates_work:
                        instance.load.work += 1
                    return instance
            routable = self.registry.snapshot.routable
            if not any(tried is None or i.id not in tried for i in routable):
                if tried:
                    raise NoInstance("no_instance_left", "every healthy instance was tried")
                raise NoInstance("no_healthy_instances", "no healthy instance can take requests")
            now = asyncio.get_running_loop().time()
            if deadline is None:
                deadline = now + self._queue_timeout_s
            remaining = deadline - now
            if remaining <= 0:
                raise NoInstance("at_capacity", "every instance is at capacity")
            waited_from = time.perf_counter()
            try:
                await queue.wait(remaining)
            except QueueFull:
                raise NoInstance("queue_full", "too many requests are waiting") from None
            except TimeoutError:
                raise NoInstance("at_capacity", "every instance is at capacity") from None
            finally:
                self.metrics.queue_wait.observe(time.perf_counter() - waited_from)

    def release(self, instance: Instance, creates_work: bool) -> None:
        """Uncount a request; ``creates_work`` as it was given to :meth:`acquire`."""
        instance.load.inflight -= 1
        if creates_work:
            instance.load.work -= 1
            if self.queue:
                self.queue.wake_one()  # a capacity slot is free
