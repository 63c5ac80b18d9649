"""The sampler with an injected clock: chart points, per-instance windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from lb.metrics import LBMetrics
from lb.status.sampler import Sampler


@dataclass(frozen=True)
class Member:
    id: str
    url: str = "http://127.0.0.1:1"
    routable: bool = True


class FakeAutoscaler:
    def __init__(self) -> None:
        self.last: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {"backend": "local", "config": {}, "last_decision": self.last}


class Clocks:
    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = 1_700_000_000.0

    def tick(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def _sampler(
    metrics: LBMetrics,
    clocks: Clocks,
    members: list[Member],
    autoscaler: FakeAutoscaler | None = None,
    history_s: float = 60.0,
) -> Sampler:
    return Sampler(
        instances=lambda: members,
        requests=metrics.requests,
        durations=metrics.request_duration,
        autoscaler=lambda: autoscaler,
        session=None,
        interval_s=10.0,
        history_s=history_s,
        window_s=30.0,
        clock=lambda: clocks.mono,
        wall_clock=lambda: clocks.wall,
    )


async def test_points_are_rates_between_samples(clocks: Clocks) -> None:
    metrics = LBMetrics()
    sampler = _sampler(metrics, clocks, [Member("a"), Member("b", routable=False)])
    assert await sampler.sample() is None  # the first sample is the baseline
    for _ in range(20):
        metrics.observe_request("a", "GET", 200, 0.004)
    for _ in range(5):
        metrics.observe_request("b", "GET", 502, 0.2)
    clocks.tick(10.0)
    point = await sampler.sample()
    assert point is not None
    assert point.window.requests_per_s == 2.5
    assert point.window.error_ratio == 0.2
    assert point.window.p50_s is not None
    assert point.window.p50_s <= 0.005
    assert point.window.p99_s is not None
    assert 0.1 <= point.window.p99_s <= 0.25
    assert (point.instances, point.routable, point.desired) == (2, 1, None)
    assert point.at == clocks.wall


async def test_the_history_is_bounded(clocks: Clocks) -> None:
    metrics = LBMetrics()
    sampler = _sampler(metrics, clocks, [Member("a")], history_s=30.0)
    for _ in range(50):
        await sampler.sample()
        clocks.tick(10.0)
    assert len(sampler.points) == 4  # 30 s of 10 s samples, plus the current one


async def test_an_instance_window_covers_the_last_window_s(clocks: Clocks) -> None:
    metrics = LBMetrics()
    sampler = _sampler(metrics, clocks, [Member("a")])
    await sampler.sample()
    for _ in range(100):  # old traffic, outside the 30 s window by the end
        metrics.observe_request("a", "GET", 500, 0.01)
    for _ in range(4):
        clocks.tick(10.0)
        await sampler.sample()
    for _ in range(30):
        metrics.observe_request("a", "GET", 200, 0.01)
    clocks.tick(10.0)
    await sampler.sample()
    window = sampler.window("a")
    assert window.requests_per_s == 1.0  # 30 requests over the 30 s window
    assert window.error_ratio == 0.0
    assert sampler.window("unknown").requests_per_s == 0.0


async def test_the_chart_follows_the_autoscalers_desired_count(clocks: Clocks) -> None:
    autoscaler = FakeAutoscaler()
    sampler = _sampler(LBMetrics(), clocks, [Member("a")], autoscaler)
    await sampler.sample()
    autoscaler.last = {"action": "scale_up", "current": 2, "desired": 3, "reason": "busy"}
    clocks.tick(10.0)
    point = await sampler.sample()
    assert point is not None
    assert point.desired == 3


async def test_workers_are_read_only_while_someone_watches(clocks: Clocks) -> None:
    sampler = _sampler(LBMetrics(), clocks, [Member("a")], history_s=60.0)
    await sampler.sample()
    assert sampler.runs_since is None  # nobody has looked: no worker was polled
    sampler.watch()
    clocks.tick(10.0)
    await sampler.sample()
    assert sampler.runs_since == clocks.wall
    assert set(sampler.runs) == {"a"}
    clocks.tick(61.0)  # the watch lapsed: counts start afresh at the next look
    await sampler.sample()
    assert (sampler.runs_since, sampler.runs) == (None, {})
