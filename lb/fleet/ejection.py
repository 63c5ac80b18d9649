"""Passive outlier detection, after Envoy's: consecutive connect errors or 5xx eject an instance.

An ejection lasts ``eject_base_s`` times the number of recent ejections, at most
``eject_max_s``; an instance that has behaved for ``eject_max_s`` starts over at the base time.
Never more than ``eject_max_percent`` of the instances that take work (healthy, not draining) is
ejected at once, and never all of them: ejecting the last one would turn a partial outage into
a total one.
"""

from __future__ import annotations

import asyncio

import structlog

from lb.fleet.registry import Health, Instance, Registry
from lb.settings import LBSettings

log = structlog.get_logger("lb.fleet.ejection")


def max_ejectable(fleet_size: int, max_percent: int) -> int:
    if fleet_size <= 1 or max_percent <= 0:
        return 0
    return min(fleet_size - 1, max(1, fleet_size * max_percent // 100))


def ejection_time_s(ejections: int, base_s: float, max_s: float) -> float:
    """Duration of the ``ejections``-th ejection in a row (1-based)."""
    return min(base_s * max(1, ejections), max_s)


class OutlierDetector:
    """Called by the proxy after every attempt; ejects and schedules the return."""

    def __init__(self, registry: Registry, settings: LBSettings) -> None:
        self._registry = registry
        self._threshold = settings.eject_consecutive_errors
        self._base_s = settings.eject_base_s
        self._max_s = settings.eject_max_s
        self._max_percent = settings.eject_max_percent
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.ejections_total = 0

    def success(self, instance: Instance) -> None:
        instance.load.consecutive_errors = 0

    def failure(self, instance: Instance) -> None:
        load = instance.load
        load.consecutive_errors += 1
        if self._threshold and load.consecutive_errors >= self._threshold:
            self._eject(instance.id)

    def _eject(self, instance_id: str) -> None:
        snapshot = self._registry.snapshot
        current = snapshot.get(instance_id)
        if current is None or current.ejected:
            return
        # The share is of the instances that take work when not ejected: counting unhealthy or
        # draining members too would let the last one that serves be ejected.
        serving = [
            i
            for i in snapshot.instances
            if i.health is Health.HEALTHY and not i.draining and not i.worker_draining
        ]
        ejected = sum(1 for i in serving if i.ejected)
        if ejected >= max_ejectable(len(serving), self._max_percent):
            log.warning("ejection_skipped", instance_id=instance_id, ejected=ejected)
            return
        now = self._registry.now()
        # A long good spell since the last ejection forgives the earlier ones.
        previous = 0 if now - current.ejected_until > self._max_s else current.ejections
        duration = ejection_time_s(previous + 1, self._base_s, self._max_s)
        self._registry.update(
            instance_id, ejected=True, ejected_until=now + duration, ejections=previous + 1
        )
        self.ejections_total += 1
        log.warning(
            "instance_ejected",
            instance_id=instance_id,
            duration_s=duration,
            consecutive_errors=current.load.consecutive_errors,
        )
        self._timers[instance_id] = asyncio.get_running_loop().call_later(
            duration, self._release, instance_id
        )

    def _release(self, instance_id: str) -> None:
        self._timers.pop(instance_id, None)
        instance = self._registry.update(instance_id, ejected=False)
        if instance is not None:
            instance.load.consecutive_errors = 0
            log.info("instance_returned", instance_id=instance_id)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
