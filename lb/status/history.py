"""A bounded ring buffer of samples and the pure arithmetic the status page draws from it.

Counters are sampled, never pushed: the sampler reads the LB's cumulative Prometheus counters
on its own interval, so the proxy's per-request path does no work for the page. Rates and
quantiles are differences between two cumulative samples; a counter that went down (an
instance removed and registered again) counts from zero.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


class Ring(Generic[T]):
    """The last ``capacity`` items, oldest first; appending past it drops the oldest, so its
    memory is bounded whatever the uptime."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: deque[T] = deque(maxlen=capacity)

    def append(self, item: T) -> None:
        self._items.append(item)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(tuple(self._items))

    @property
    def latest(self) -> T | None:
        return self._items[-1] if self._items else None

    def first_since(self, start: float, time_of: Callable[[T], float]) -> T | None:
        """The oldest item whose time is at or after ``start``."""
        return next((item for item in self._items if time_of(item) >= start), None)


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative request counters (one instance's, or a sum) as the LB's metrics hold them."""

    requests: float = 0.0
    errors: float = 0.0  # responses of class 5xx
    buckets: tuple[float, ...] = ()  # cumulative histogram counts, one per bound

    def minus(self, older: Counters) -> Counters:
        """The counts between ``older`` and this one; after a reset, everything counts."""
        if self.requests < older.requests or len(older.buckets) != len(self.buckets):
            return self
        return Counters(
            self.requests - older.requests,
            max(0.0, self.errors - older.errors),
            tuple(max(0.0, a - b) for a, b in zip(self.buckets, older.buckets, strict=True)),
        )

    def plus(self, other: Counters) -> Counters:
        """The sum; counters without buckets (no request yet) add only their counts."""
        if not other.buckets or not self.buckets:
            buckets = self.buckets or other.buckets
        else:
            buckets = tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True))
        return Counters(self.requests + other.requests, self.errors + other.errors, buckets)


def quantile(q: float, bounds: Sequence[float], buckets: Sequence[float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, interpolated linearly inside its bucket
    as Prometheus' ``histogram_quantile`` does; ``None`` without observations. Past the last
    finite bound the answer is that bound: the histogram knows nothing more precise."""
    if not buckets or len(bounds) != len(buckets) or buckets[-1] <= 0:
        return None
    rank = q * buckets[-1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, buckets, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            share = (rank - lower_count) / width if width > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True, slots=True)
class Window:
    """Rates over a window, derived from two cumulative samples ``elapsed_s`` apart."""

    requests_per_s: float | None
    error_ratio: float | None
    p50_s: float | None
    p99_s: float | None

    @classmethod
    def of(cls, delta: Counters, elapsed_s: float, bounds: Sequence[float]) -> Window:
        if elapsed_s <= 0:
            return cls(None, None, None, None)
        return cls(
            requests_per_s=delta.requests / elapsed_s,
            error_ratio=delta.errors / delta.requests if delta.requests else None,
            p50_s=quantile(0.5, bounds, delta.buckets),
            p99_s=quantile(0.99, bounds, delta.buckets),
        )


@dataclass(frozen=True, slots=True)
class FleetPoint:
    """One point of the page's charts: the fleet over one sampling interval."""

    at: float  # wall-clock seconds, the page's time axis
    window: Window
    instances: int
    routable: int
    desired: int | None
    runs: dict[str, int] = field(default_factory=dict)  # runs that ended, by outcome
