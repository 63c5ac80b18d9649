"""The ring buffer and the arithmetic over sampled counters (pure)."""

from __future__ import annotations

import math

import pytest

from lb.status.history import Counters, Ring, Window, quantile


def test_the_ring_keeps_the_last_items_oldest_first() -> None:
    ring: Ring[int] = Ring(3)
    assert ring.latest is None
    for i in range(5):
        ring.append(i)
    assert list(ring) == [2, 3, 4]
    assert len(ring) == 3
    assert ring.latest == 4
    assert ring.first_since(3, float) == 3
    assert ring.first_since(9, float) is None


def test_a_ring_needs_room() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Ring[int](0)


BOUNDS = (0.01, 0.1, 1.0, math.inf)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, (0, 0, 0, 0), None),  # nothing observed
        (0.5, (10, 10, 10, 10), 0.005),  # all in the first bucket: interpolated from 0
        (0.5, (0, 10, 10, 10), 0.055),
        (0.99, (0, 0, 100, 100), 0.991),
        (0.5, (0, 0, 0, 4), 1.0),  # all past the last finite bound: that bound
        (0.99, (50, 90, 99, 100), 1.0),
    ],
)
def test_quantile_interpolates_inside_the_bucket(
    q: float, buckets: tuple[float, ...], expected: float | None
) -> None:
    result = quantile(q, BOUNDS, buckets)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_quantile_of_mismatched_shapes_is_unknown() -> None:
    assert quantile(0.5, BOUNDS, (1, 2)) is None
    assert quantile(0.5, (), ()) is None


@pytest.mark.parametrize(
    ("newer", "older", "expected"),
    [
        (Counters(10, 2, (5, 10)), Counters(4, 1, (2, 4)), Counters(6, 1, (3, 6))),
        # Went down: the instance's series started again; everything counts.
        (Counters(3, 0, (3, 3)), Counters(10, 2, (5, 10)), Counters(3, 0, (3, 3))),
        # Nothing before (a new instance): everything counts.
        (Counters(3, 1, (3, 3)), Counters(), Counters(3, 1, (3, 3))),
    ],
)
def test_counters_minus(newer: Counters, older: Counters, expected: Counters) -> None:
    assert newer.minus(older) == expected


def test_counters_plus_adds_buckets_and_tolerates_empty_ones() -> None:
    total = Counters().plus(Counters(2, 1, (1, 2))).plus(Counters(3, 0, (3, 3)))
    assert total == Counters(5, 1, (4, 5))
    assert Counters(1, 0, (1, 1)).plus(Counters()) == Counters(1, 0, (1, 1))


def test_window_rates() -> None:
    window = Window.of(Counters(20, 5, (10, 20, 20, 20)), 10.0, BOUNDS)
    assert window.requests_per_s == 2.0
    assert window.error_ratio == 0.25
    assert window.p50_s == pytest.approx(0.01)
    assert Window.of(Counters(), 0.0, BOUNDS) == Window(None, None, None, None)
    assert Window.of(Counters(), 5.0, BOUNDS).error_ratio is None
