"""The autoscaler loop: observe the fleet, ask the policy, tell the backend.

Scale-up is one backend call. Scale-down drains first: the least loaded instances the backend
owns are drained through the registry (no new work; affinity still reaches them), and each is
stopped only when its in-flight requests and reported runs reach zero, or after the drain
timeout. While victims drain they no longer count as ``current``, so the next decision does
not pick more victims for the same reason.

A backend error is logged, counted and retried with backoff; it never stops the LB.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from lb.autoscaler.backends.base import BackendError, ScalingBackend
from lb.autoscaler.policy import Decision, Observation, PolicyConfig, PolicyState, decide
from lb.fleet.control import Membership
from lb.fleet.registry import Clock, Instance, Registry
from lb.metrics import PREFIX, LBMetrics
from lb.routing.router import Router
from lb.settings import LBSettings

log = structlog.get_logger("lb.autoscaler")

# The decisions kept for ``describe()`` (and the status page): the last ones that said
# something new (a steady hold is one entry), each stamped with the wall-clock time. The loop
# keeps them: a reader sampling the last decision would miss a scale-up followed at once by a
# hold.
RECENT_DECISIONS = 20


class Autoscaler:
    def __init__(
        self,
        backend: ScalingBackend,
        config: PolicyConfig,
        registry: Registry,
        membership: Membership,
        router: Router,
        metrics: LBMetrics,
        *,
        interval_s: float,
        drain_timeout_s: float,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self.backend = backend
        self.config = config
        self._registry = registry
        self._membership = membership
        self._router = router
        self._interval_s = interval_s
        self._drain_timeout_s = drain_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self.state = PolicyState()
        self.last: Decision | None = None
        self.last_error: str | None = None
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_DECISIONS)
        self._seq = 0
        self._draining: dict[str, asyncio.Task[None]] = {}
        self._decisions = Counter(
            PREFIX + "autoscaler_decisions",
            "Autoscaler decisions, by action.",
            ("action",),
            registry=metrics.registry,
        )
        self._errors = Counter(
            PREFIX + "autoscaler_backend_errors",
            "Scaling backend calls that failed.",
            registry=metrics.registry,
        )
        self._desired = Gauge(
            PREFIX + "autoscaler_desired_instances",
            "Instances the last decision asked for.",
            registry=metrics.registry,
        )
        self._current = Gauge(
            PREFIX + "autoscaler_current_instances",
            "Instances the backend ran at the last decision (draining ones excluded).",
            registry=metrics.registry,
        )

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        backoff_s = self._interval_s
        started = False
        try:
            while True:
                try:
                    if not started:
                        await self.backend.start()
                        started = True
                    await self.tick()
                    backoff_s = self._interval_s
                    self.last_error = None
                except BackendError as exc:
                    self._errors.inc()
                    self.last_error = str(exc)
                    log.warning("autoscaler_backend_error", error=str(exc), retry_in_s=backoff_s)
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 60.0)
                    continue
                await asyncio.sleep(self._interval_s)
        finally:
            for task in self._draining.values():
                task.cancel()
            await asyncio.gather(*self._draining.values(), return_exceptions=True)
            await self.backend.close()

    def observe(self, current: int) -> Observation:
        snapshot = self._registry.snapshot
        routable = snapshot.routable
        return Observation(
            now=self._clock(),
            current=current,
            healthy=len(routable),
            inflight=sum(i.load.inflight for i in routable),
            reported_load=sum(i.reported_load for i in routable),
            capacity=sum(i.max_capacity for i in routable),
            queued=len(self._router.queue),
        )

    async def tick(self) -> Decision:
        current = await self.backend.current() - len(self._draining)
        decision = decide(self.observe(current), self.state, self.config)
        self.state = decision.state
        self.last = decision
        self._remember(decision)
        self._decisions.labels(decision.action).inc()
        self._desired.set(decision.desired)
        self._current.set(current)
        # Every decision is logged; holds (one per interval) only at debug level.
        emit = log.debug if decision.action == "hold" else log.info
        emit(
            "autoscaler_decision",
            action=decision.action,
            current=decision.current,
            desired=decision.desired,
            utilization=round(decision.utilization, 3),
            reason=decision.reason,
        )
        if decision.desired > current:
            await self.backend.scale_up(decision.desired - current)
        elif decision.desired < current:
            await self._scale_down(current - decision.desired)
        return decision

    # -- scale-down ----------------------------------------------------------------------------

    def pick_victims(self, count: int) -> list[Instance]:
        """The least loaded instances the backend owns that are not leaving already."""
        candidates = [
            i
            for i in self._registry.snapshot.instances
            if self.backend.owns(i) and i.id not in self._draining and not i.pending_removal
        ]
        candidates.sort(key=lambda i: (i.routable, i.load.inflight + i.reported_load))
        # Unhealthy ones first (routable False sorts first): they do no work anyway.
        return candidates[:count]

    async def _scale_down(self, count: int) -> None:
        victims = self.pick_victims(count)
        if not victims:
            return
        await self.backend.prefer_victims(victims)
        for victim in victims:
            self._membership.drain(victim.id)
            self._draining[victim.id] = asyncio.create_task(
                self._drain_then_stop(victim), name="lb-autoscaler-drain"
            )

    async def _drain_then_stop(self, victim: Instance) -> None:
        deadline = self._clock() + self._drain_timeout_s
        try:
            while self._clock() < deadline:
                current = self._registry.get(victim.id)
                if current is None or (current.load.inflight == 0 and current.reported_load == 0):
                    break
                await asyncio.sleep(0.2)
            else:
                log.warning("drain_timed_out", instance_id=victim.id)
            for attempt in range(5):
                try:
                    await self.backend.scale_down([victim])
                    break
                except BackendError as exc:
                    self._errors.inc()
                    log.warning(
                        "autoscaler_scale_down_failed", instance_id=victim.id, error=str(exc)
                    )
                    await asyncio.sleep(min(2.0**attempt, 30.0))
        finally:
            self._draining.pop(victim.id, None)

    # -- the admin API's view ------------------------------------------------------------------

    def _remember(self, decision: Decision) -> None:
        seen = self._recent[-1] if self._recent else None
        new = (decision.action, decision.current, decision.desired, decision.reason)
        if (
            seen is not None
            and (
                seen["action"],
                seen["current"],
                seen["desired"],
                seen["reason"],
            )
            == new
        ):
            return
        self._seq += 1
        self._recent.append(
            {"seq": self._seq, "at": round(self._wall_clock(), 3), **_decision_view(decision)}
        )

    def describe(self) -> dict[str, Any]:
        last = self.last
        return {
            "backend": self.backend.name,
            "config": dataclasses.asdict(self.config),
            "draining": sorted(self._draining),
            "last_decision": None if last is None else _decision_view(last),
            # Oldest first, each numbered (``seq``) so a reader can tell which it has seen.
            "recent_decisions": list(self._recent),
            "last_error": self.last_error,
        }

    def reconfigure(self, **changes: Any) -> None:
        self.config = dataclasses.replace(self.config, **changes)


def _decision_view(decision: Decision) -> dict[str, Any]:
    return {
        "current": decision.current,
        "desired": decision.desired,
        "action": decision.action,
        "utilization": round(decision.utilization, 4),
        "reason": decision.reason,
    }


def policy_config(settings: LBSettings) -> PolicyConfig:
    """The policy's knobs from LBSettings."""
    return PolicyConfig(
        mode=settings.autoscale_mode,
        min_instances=settings.autoscale_min,
        max_instances=settings.autoscale_max,
        scale_up_at=settings.autoscale_up_at,
        scale_down_at=settings.autoscale_down_at,
        target_utilization=settings.autoscale_target,
        tolerance=settings.autoscale_tolerance,
        up_window_s=settings.autoscale_up_window_s,
        down_window_s=settings.autoscale_down_window_s,
        max_step_up=settings.autoscale_max_step_up,
        max_step_down=settings.autoscale_max_step_down,
    )
