"""The status page's background sampler: every ``interval_s`` it reads the LB's cumulative
request counters and, while someone watches (:meth:`Sampler.watch`), each worker's run
counters, and keeps what the page draws.

It runs as its own task in the admin app's lifecycle, so the proxy's per-request path does
no work for the page: the counters it reads are the Prometheus ones the proxy keeps anyway.
Memory is bounded: the rings hold ``history_s / interval_s`` samples, and worker reports
only for instances in the registry. The autoscaler keeps its own recent decisions (a sample
of its last one would miss a scale-up followed at once by a hold).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog
from prometheus_client import Counter, Histogram

from lb.status.history import Counters, FleetPoint, Ring, Window
from lb.status.scrape import MAX_METRICS_BYTES, WorkerRuns, ended_between, parse_worker_metrics

log = structlog.get_logger("lb.status")

Clock = Callable[[], float]


class InstanceView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def routable(self) -> bool: ...


class AutoscalerView(Protocol):
    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Cumulative:
    """The LB's request counters of every instance at one moment (monotonic seconds)."""

    at: float
    by_instance: dict[str, Counters]


def read_counters(
    requests: Counter, durations: Histogram
) -> tuple[tuple[float, ...], dict[str, Counters]]:
    """The histogram's bounds and each instance's cumulative counters, from the metrics'
    public ``collect()``: the same numbers ``/metrics`` shows."""
    totals: dict[str, list[float]] = {}
    for metric in requests.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            counts = totals.setdefault(sample.labels["instance"], [0.0, 0.0])
            counts[0] += sample.value
            if sample.labels.get("status_class") == "5xx":
                counts[1] += sample.value
    buckets: dict[str, dict[float, float]] = {}
    for metric in durations.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets.setdefault(sample.labels["instance"], {})[bound] = sample.value
    bounds: tuple[float, ...] = ()
    result: dict[str, Counters] = {}
    for instance, (count, errors) in totals.items():
        by_bound = buckets.get(instance, {})
        bounds = tuple(sorted(by_bound)) or bounds
        result[instance] = Counters(count, errors, tuple(by_bound[b] for b in sorted(by_bound)))
    return bounds, result


class Sampler:
    """Keeps the page's history. :meth:`sample` is one step (tests call it with an injected
    clock); :meth:`run` repeats it every ``interval_s`` until cancelled."""

    def __init__(
        self,
        *,
        instances: Callable[[], Sequence[InstanceView]],
        requests: Counter,
        durations: Histogram,
        autoscaler: Callable[[], AutoscalerView | None],
        session: aiohttp.ClientSession | None,
        interval_s: float,
        history_s: float,
        window_s: float = 60.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        scrape_timeout_s: float = 1.0,
    ) -> None:
        self._instances = instances
        self._requests = requests
        self._durations = durations
        self._autoscaler = autoscaler
        self._session = session
        self.interval_s = interval_s
        self.window_s = window_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._timeout = aiohttp.ClientTimeout(total=scrape_timeout_s)
        capacity = max(2, math.ceil(history_s / interval_s) + 1)
        self._watch_s = history_s
        self._watched_until = -math.inf
        self.runs_since: float | None = None  # wall time of the first read of the watch
        self.points: Ring[FleetPoint] = Ring(capacity)
        self._cumulative: Ring[Cumulative] = Ring(capacity)
        self.bounds: tuple[float, ...] = ()
        self.runs: dict[str, WorkerRuns] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:  # the page must never take the LB down with it
                log.exception("status_sample_failed")
            await asyncio.sleep(self.interval_s)

    async def sample(self) -> FleetPoint | None:
        """Take one sample; returns the chart point it added (none on the first sample)."""
        members = list(self._instances())
        watching = self._clock() < self._watched_until
        reports = await self._scrape(members) if watching else {}
        now = self._clock()
        if not watching:
            # Run counts read after a pause would all land in one sample: start afresh.
            self.runs, self.runs_since = {}, None
        elif self.runs_since is None:
            self.runs_since = self._wall_clock()
        bounds, counters = read_counters(self._requests, self._durations)
        self.bounds = bounds or self.bounds
        previous = self._cumulative.latest
        self._cumulative.append(Cumulative(now, counters))
        ended: dict[str, int] = {}
        for instance_id, report in reports.items():
            for outcome, count in ended_between(self.runs.get(instance_id), report).items():
                ended[outcome] = ended.get(outcome, 0) + count
        if watching:
            self.runs = {
                m.id: reports.get(m.id, self.runs.get(m.id, WorkerRuns())) for m in members
            }
        desired = self._desired()
        if previous is None:
            return None
        point = FleetPoint(
            at=self._wall_clock(),
            window=Window.of(_sum_delta(counters, previous), now - previous.at, self.bounds),
            instances=len(members),
            routable=sum(1 for m in members if m.routable),
            desired=desired,
            runs=ended,
        )
        self.points.append(point)
        return point

    def watch(self) -> None:
        """Someone reads the status (the page, ``graphfleet ctl``): read the workers' run
        counters for the next ``history_s``. Nobody watching, no worker is polled."""
        self._watched_until = self._clock() + self._watch_s

    def window(self, instance_id: str) -> Window:
        """One instance's rates over the last ``window_s`` (or as much as was sampled)."""
        latest = self._cumulative.latest
        oldest = self._cumulative.first_since(
            (latest.at if latest else 0.0) - self.window_s, lambda c: c.at
        )
        if latest is None or oldest is None or oldest is latest:
            return Window(None, None, None, None)
        newer = latest.by_instance.get(instance_id, Counters())
        older = oldest.by_instance.get(instance_id, Counters())
        return Window.of(newer.minus(older), latest.at - oldest.at, self.bounds)

    def runs_ended(self, since_wall_s: float) -> dict[str, int]:
        """Runs ended fleet-wide since a wall-clock time, by outcome."""
        totals: dict[str, int] = {}
        for point in self.points:
            if point.at >= since_wall_s:
                for outcome, count in point.runs.items():
                    totals[outcome] = totals.get(outcome, 0) + count
        return totals

    def _desired(self) -> int | None:
        """The autoscaler's last desired instance count, for the chart."""
        autoscaler = self._autoscaler()
        last = autoscaler.describe().get("last_decision") if autoscaler is not None else None
        return int(last["desired"]) if last else None

    async def _scrape(self, members: Sequence[InstanceView]) -> dict[str, WorkerRuns]:
        if self._session is None or not members:
            return {}
        results = await asyncio.gather(*(self._scrape_one(m) for m in members))
        return {m.id: r for m, r in zip(members, results, strict=True) if r is not None}

    async def _scrape_one(self, member: InstanceView) -> WorkerRuns | None:
        assert self._session is not None
        try:
            async with self._session.get(member.url + "/metrics", timeout=self._timeout) as resp:
                if resp.status != 200:
                    return None
                body = await resp.content.read(MAX_METRICS_BYTES)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return None  # the health checks say what is wrong with it; the page shows no runs
        return parse_worker_metrics(body)


def _sum_delta(counters: dict[str, Counters], previous: Cumulative) -> Counters:
    total = Counters()
    for instance_id, current in counters.items():
        total = total.plus(current.minus(previous.by_instance.get(instance_id, Counters())))
    return total
