"""Active health checks: one task per instance, ``GET {url}{health_path}`` on an interval.

The decision is pure (:func:`transition`), the loop only observes and applies. A worker that
answers 503 is alive but draining: the check counts as passing, and the instance is routable
again once the worker answers 200. The JSON's ``current_load`` and ``max_capacity`` feed the
registry, and ``current_load`` less the LB's own requests then in flight (:func:`background_runs`)
tells least-loaded routing what the worker holds beyond them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog

from lb.fleet.registry import Clock, Health, Instance, Registry, Snapshot
from lb.settings import LBSettings

log = structlog.get_logger("lb.fleet.health")


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    draining: bool = False
    current_load: int | None = None
    max_capacity: int | None = None
    duration_s: float = 0.0
    reason: str = ""


def transition(
    instance: Instance, result: CheckResult, now: float, rise: int, fall: int
) -> dict[str, Any]:
    """The fields of ``instance`` that change after one check (pure; table-tested).

    A first passing check makes an unknown instance healthy at once (a new worker need not
    wait ``rise`` intervals); an unhealthy one needs ``rise`` passes in a row, a healthy one
    ``fall`` failures in a row to flip.
    """
    changes: dict[str, Any] = {"last_check_at": now}
    if result.ok:
        successes = instance.consecutive_successes + 1
        changes.update(consecutive_successes=successes, consecutive_failures=0, last_seen_at=now)
        changes["worker_draining"] = result.draining
        if result.current_load is not None:
            changes["reported_load"] = max(0, result.current_load)
        if result.max_capacity is not None and result.max_capacity > 0:
            changes["max_capacity"] = result.max_capacity
            changes["capacity_reported"] = True
        if instance.health is Health.UNKNOWN or (
            instance.health is Health.UNHEALTHY and successes >= rise
        ):
            changes["health"] = Health.HEALTHY
    else:
        failures = instance.consecutive_failures + 1
        changes.update(consecutive_failures=failures, consecutive_successes=0)
        if instance.health is not Health.UNHEALTHY and failures >= fall:
            changes["health"] = Health.UNHEALTHY
            changes["reported_load"] = 0
    return changes


def background_runs(reported_load: int, own_work: int) -> int:
    """The runs a worker holds that no request of this LB waits on: its reported load less the
    LB's own work requests in flight to it (each of which is one of the reported runs, or is
    about to be). Never below 0: a request the worker has not seen yet is not a negative run.
    """
    return max(0, reported_load - own_work)


def parse_health(status: int, body: bytes) -> CheckResult:
    """Read a worker's health answer: 200 is healthy, 503 is draining, anything else fails."""
    if status not in (200, 503):
        return CheckResult(ok=False, reason=f"status {status}")
    load: int | None = None
    capacity: int | None = None
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        data = orjson.loads(body)
        raw_load, raw_capacity = data.get("current_load"), data.get("max_capacity")
        load = int(raw_load) if raw_load is not None else None
        capacity = int(raw_capacity) if raw_capacity is not None else None
    return CheckResult(ok=True, draining=status == 503, current_load=load, max_capacity=capacity)


class HealthChecker:
    """Keeps one check loop per registered instance, started and stopped with membership."""

    def __init__(
        self,
        registry: Registry,
        session: aiohttp.ClientSession,
        settings: LBSettings,
        rng: random.Random,
        clock: Clock,
        on_result: Callable[[Instance, CheckResult], None] | None = None,
    ) -> None:
        self._registry = registry
        self._session = session
        self._settings = settings
        self._rng = rng
        self._clock = clock
        self._on_result = on_result
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._timeout = aiohttp.ClientTimeout(total=settings.health_timeout_s)

    def start(self) -> None:
        self._registry.subscribe(self._reconcile)
        self._reconcile(self._registry.snapshot)

    async def stop(self) -> None:
        self._registry.unsubscribe(self._reconcile)
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _reconcile(self, snapshot: Snapshot) -> None:
        for instance_id in [i for i in self._tasks if i not in snapshot.by_id]:
            self._tasks.pop(instance_id).cancel()
        for instance in snapshot.instances:
            if instance.id not in self._tasks:
                self._tasks[instance.id] = asyncio.create_task(
                    self._loop(instance.id), name=f"lb-health:{instance.id}"
                )

    async def _loop(self, instance_id: str) -> None:
        interval = self._settings.health_interval_s
        jitter = self._settings.health_jitter
        while True:
            instance = self._registry.get(instance_id)
            if instance is None:
                return
            await self.check(instance)
            # Jitter spreads the checks of many instances (and of many LBs) over the interval.
            await asyncio.sleep(interval * (1.0 + jitter * (2.0 * self._rng.random() - 1.0)))

    async def check(self, instance: Instance) -> CheckResult:
        """Run one check now and apply it to the registry."""
        started = self._clock()
        try:
            async with self._session.get(
                instance.url + self._settings.health_path, timeout=self._timeout
            ) as response:
                body = await response.read()
            result = parse_health(response.status, body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            result = CheckResult(ok=False, reason=type(exc).__name__)
        now = self._clock()
        result = dataclasses.replace(result, duration_s=now - started)
        current = self._registry.get(instance.id)
        if current is None:
            return result
        updated = self._registry.update(
            instance.id,
            **transition(
                current, result, now, self._settings.health_rise, self._settings.health_fall
            ),
        )
        if updated is not None and (result.current_load is not None or not updated.reported_load):
            # Read against the in-flight count of this moment: no await since the answer came.
            load = updated.load
            load.background = background_runs(updated.reported_load, load.work)
        if updated is not None and updated.health is not current.health:
            log.warning(
                "instance_health_changed",
                instance_id=instance.id,
                url=instance.url,
                health=updated.health.value,
                reason=result.reason or None,
            )
        if self._on_result is not None:
            self._on_result(instance, result)
        return result
