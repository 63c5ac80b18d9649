"""The autoscaler loop over a real registry with a scripted backend: no sockets, fake clock."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace

import pytest

from lb.autoscaler.backends.base import BackendError
from lb.autoscaler.loop import RECENT_DECISIONS, Autoscaler
from lb.autoscaler.policy import Decision, PolicyConfig
from lb.fleet.control import Membership
from lb.fleet.registry import Health, Instance, Registry
from lb.metrics import LBMetrics
from lb.routing.affinity import AffinityTable
from lb.routing.router import Router
from lb.routing.strategies import make_strategy
from lb.settings import LBSettings
from tests.support import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedBackend:
    """Runs 'workers' as registry entries; fails the next calls when told to."""

    name = "scripted"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.preferred: list[list[str]] = []
        self.fail_next = 0
        self.closed = False

    def _maybe_fail(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise BackendError("quota exceeded")

    async def start(self) -> None:
        self._maybe_fail()

    async def current(self) -> int:
        self._maybe_fail()
        return sum(1 for i in self.registry.snapshot.instances if i.id.startswith("s-"))

    def owns(self, instance: Instance) -> bool:
        return instance.id.startswith("s-")

    async def scale_up(self, count: int) -> None:
        self._maybe_fail()
        for _ in range(count):
            name = f"s-{len(self.started)}"
            self.started.append(name)
            self.registry.add(
                Instance(id=name, url=f"http://{name}:1", max_capacity=10, health=Health.HEALTHY)
            )

    async def prefer_victims(self, victims: list[Instance]) -> None:
        self.preferred.append([v.id for v in victims])

    async def scale_down(self, victims: list[Instance]) -> None:
        self._maybe_fail()
        for victim in victims:
            self.stopped.append(victim.id)
            self.registry.remove(victim.id)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Harness:
    autoscaler: Autoscaler
    backend: ScriptedBackend
    registry: Registry
    clock: Clock
    metrics: LBMetrics

    async def tick(self) -> Decision:
        self.clock.now += 5.0
        return await self.autoscaler.tick()


def make(config: PolicyConfig) -> Harness:
    clock = Clock()
    registry = Registry(clock)
    settings = LBSettings()
    metrics = LBMetrics()
    router = Router(
        registry,
        make_strategy("least_loaded", random.Random(1)),
        AffinityTable(100, 60, clock),
        metrics,
        queue_size=10,
        queue_timeout_s=1,
    )
    backend = ScriptedBackend(registry)
    autoscaler = Autoscaler(
        backend,
        config,
        registry,
        Membership(registry, settings),
        router,
        metrics,
        interval_s=0.01,
        drain_timeout_s=5,
        clock=clock,
    )
    return Harness(autoscaler, backend, registry, clock, metrics)


NO_WINDOWS = PolicyConfig(up_window_s=0, down_window_s=0, min_instances=1, max_instances=5)


async def test_starts_the_minimum_then_follows_load() -> None:
    h = make(NO_WINDOWS)
    decision = await h.tick()
    assert (decision.action, decision.desired, h.backend.started) == ("scale_up", 1, ["s-0"])
    h.registry.snapshot.by_id["s-0"].load.inflight = 9  # 90 % of 10
    decision = await h.tick()
    assert (decision.action, decision.desired) == ("scale_up", 2)
    assert len(h.backend.started) == 2


async def test_scale_down_drains_the_least_loaded_then_stops_it() -> None:
    h = make(NO_WINDOWS)
    await h.backend.scale_up(3)
    # 2 of 30 in flight: 7 % utilization, far below 20 %; s-1 is the idle one.
    h.registry.snapshot.by_id["s-0"].load.inflight = 1
    h.registry.snapshot.by_id["s-2"].load.inflight = 1
    decision = await h.tick()
    assert decision.action == "scale_down"
    assert h.backend.preferred == [["s-1"]]
    assert h.registry.snapshot.by_id["s-1"].draining
    # While it drains it no longer counts as current: the next tick picks nobody else.
    decision = await h.tick()
    assert decision.current == 2
    await eventually(lambda: h.backend.stopped == ["s-1"])
    assert "s-1" not in h.registry.snapshot.by_id


async def test_a_victim_with_work_is_stopped_only_when_the_work_is_done() -> None:
    h = make(replace_max(NO_WINDOWS, 1))
    await h.backend.scale_up(2)
    victim = h.registry.snapshot.by_id["s-0"]
    victim.load.inflight = 1
    h.registry.snapshot.by_id["s-1"].load.inflight = 2
    await h.tick()  # max 1: one must go, the less loaded one
    assert h.registry.snapshot.by_id["s-0"].draining
    for _ in range(5):  # the drain polls every 0.2 s of real time
        await asyncio.sleep(0.2)
        assert h.backend.stopped == []  # still busy
    victim.load.inflight = 0
    await eventually(lambda: h.backend.stopped == ["s-0"])


async def test_backend_errors_are_retried_and_never_stop_the_loop() -> None:
    h = make(NO_WINDOWS)
    h.backend.fail_next = 2  # start() and the first current() fail
    task = asyncio.create_task(h.autoscaler.run())
    await eventually(lambda: h.backend.started == ["s-0"])
    assert h.autoscaler.last_error is None
    scale_ups = h.metrics.registry.get_sample_value(
        "graphfleet_lb_autoscaler_decisions_total", {"action": "scale_up"}
    )
    assert scale_ups is not None
    assert scale_ups >= 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.backend.closed


async def test_reconfigure_pauses_and_moves_bounds() -> None:
    h = make(NO_WINDOWS)
    h.autoscaler.reconfigure(paused=True)
    decision = await h.tick()
    assert (decision.action, h.backend.started) == ("hold", [])
    h.autoscaler.reconfigure(paused=False, min_instances=3)
    decision = await h.tick()
    assert decision.desired == 3
    described = h.autoscaler.describe()
    assert described["config"]["min_instances"] == 3
    assert described["last_decision"]["desired"] == 3


def replace_max(config: PolicyConfig, maximum: int) -> PolicyConfig:
    return replace(config, max_instances=maximum)


async def test_recent_decisions_keep_what_was_new_in_order() -> None:
    h = make(NO_WINDOWS)
    h.autoscaler.reconfigure(min_instances=2)
    await h.tick()  # scale up to the minimum
    for _ in range(3):
        await h.tick()  # steady: one entry, not three
    recent = h.autoscaler.describe()["recent_decisions"]
    assert [d["action"] for d in recent] == ["scale_up", "hold"]
    assert [d["seq"] for d in recent] == [1, 2]
    assert recent[0]["desired"] == 2
    assert recent[0]["at"] > 0  # wall-clock seconds, for the status page


async def test_recent_decisions_are_bounded() -> None:
    h = make(NO_WINDOWS)
    for n in range(RECENT_DECISIONS + 5):
        h.autoscaler.reconfigure(paused=n % 2 == 0)  # alternate: always something new
        await h.tick()
    recent = h.autoscaler.describe()["recent_decisions"]
    assert len(recent) == RECENT_DECISIONS
    assert recent[-1]["seq"] == RECENT_DECISIONS + 5
