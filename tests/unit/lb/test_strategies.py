"""Balancing strategies as pure choices over a list of instances, driven by a seeded RNG."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from lb.fleet.registry import Instance
from lb.routing.strategies import STRATEGIES, anywhere, make_strategy
from tests.unit.lb.helpers import instance

ALL_STRATEGIES = sorted(STRATEGIES)


def background(made: Instance, runs: int) -> Instance:
    """``made`` with ``runs`` background runs known to be on its worker."""
    made.load.background = runs
    return made


def fleet(*weights: int, max_capacity: int = 10) -> list[Instance]:
    return [
        instance(name, weight=weight, max_capacity=max_capacity)
        for name, weight in zip("abc", weights, strict=False)
    ]


def picks(name: str, candidates: list[Instance], count: int, seed: int = 7) -> str:
    """The ids of ``count`` successive choices, as one string (ids are single letters)."""
    strategy = make_strategy(name, random.Random(seed))
    chosen = []
    for _ in range(count):
        pick = strategy.choose(candidates)
        assert pick is not None
        chosen.append(pick.id)
    return "".join(chosen)


def shares(sequence: str) -> dict[str, float]:
    counts = Counter(sequence)
    return {key: counts[key] / len(sequence) for key in "abc"}


# -- round robin -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_round_robin_with_equal_weights_is_an_exact_rotation(seed: int) -> None:
    sequence = picks("round_robin", fleet(1, 1, 1), 300, seed)

    for start in range(0, len(sequence), 3):
        assert sorted(sequence[start : start + 3]) == ["a", "b", "c"]
    assert all(sequence[i] == sequence[i + 3] for i in range(len(sequence) - 3))


@pytest.mark.parametrize("seed", range(8))
def test_round_robin_smooth_weights_give_5_1_1_per_7_picks_interleaved(seed: int) -> None:
    sequence = picks("round_robin", fleet(5, 1, 1), 70, seed)

    for start in range(0, len(sequence), 7):
        assert Counter(sequence[start : start + 7]) == {"a": 5, "b": 1, "c": 1}
    # Plain weighted round robin would send a a a a a b c; the smooth variant never gives the
    # heavy instance five in a row.
    longest_run = max(len(list(run)) for key, run in itertools.groupby(sequence) if key == "a")
    assert longest_run <= 4


def test_round_robin_rotates_over_what_is_left_when_one_is_excluded() -> None:
    strategy = make_strategy("round_robin", random.Random(1))
    candidates = fleet(1, 1, 1)

    chosen = [strategy.choose(candidates, exclude={"b"}) for _ in range(6)]

    ids = "".join(pick.id for pick in chosen if pick is not None)
    assert sorted(ids) == sorted("aaaccc")
    assert "aa" not in ids
    assert "cc" not in ids


# -- random and power of two -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["random", "power_of_two"])
@pytest.mark.parametrize("weights", [(1, 1, 1), (5, 1, 1), (3, 2, 1), (1, 1, 4)])
def test_randomised_strategies_share_idle_instances_by_weight(
    name: str, weights: tuple[int, int, int]
) -> None:
    sequence = picks(name, fleet(*weights), 20_000)

    total = sum(weights)
    expected = {key: weight / total for key, weight in zip("abc", weights, strict=True)}
    for key, share in shares(sequence).items():
        assert share == pytest.approx(expected[key], abs=0.02), (key, shares(sequence))


def test_power_of_two_sends_work_to_the_less_loaded_of_its_two_draws() -> None:
    # With two candidates every draw compares both, so the idle one always wins.
    candidates = [instance("a", inflight=5), instance("b", inflight=0)]

    assert picks("power_of_two", candidates, 200) == "b" * 200


def test_power_of_two_compares_load_relative_to_weight() -> None:
    # 4 in flight on a weight-4 instance is lighter than 2 on a weight-1 one.
    candidates = [instance("a", inflight=4, weight=4), instance("b", inflight=2)]

    assert set(picks("power_of_two", candidates, 200)) == {"a"}


# -- least loaded ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        pytest.param(
            [instance("a", inflight=3), instance("b", inflight=1), instance("c", inflight=2)],
            "b",
            id="fewest-inflight",
        ),
        pytest.param(
            [background(instance("a"), 5), instance("b", inflight=2), instance("c", inflight=3)],
            "b",
            id="background-runs-count",
        ),
        pytest.param(
            [
                background(instance("a", inflight=1), 1),
                instance("b", inflight=1),
                instance("c", inflight=3),
            ],
            "b",
            id="background-adds-to-inflight",
        ),
        pytest.param(
            # What the worker reported last is not load by itself: a report that counted the
            # LB's own requests, since finished, must not keep steering work away.
            [instance("a", reported_load=5), instance("b", inflight=2), instance("c", inflight=3)],
            "a",
            id="a-stale-report-is-not-load",
        ),
        pytest.param(
            [
                instance("a", inflight=4, max_capacity=10),
                instance("b", inflight=3, max_capacity=5),
                instance("c", inflight=5, max_capacity=10),
            ],
            "a",
            id="relative-to-capacity",
        ),
        pytest.param(
            [
                instance("a", inflight=2),
                instance("b", inflight=3, weight=2),
                instance("c", inflight=4),
            ],
            "b",
            id="relative-to-weight",
        ),
        pytest.param(
            [
                instance("a", inflight=10, max_capacity=10, weight=4),
                instance("b", inflight=5),
                instance("c", inflight=6),
            ],
            "b",
            id="full-skipped-despite-low-score",
        ),
    ],
)
def test_least_loaded_picks_the_lowest_load_per_capacity_and_weight(
    candidates: list[Instance], expected: str
) -> None:
    assert set(picks("least_loaded", candidates, 50)) == {expected}


def test_least_loaded_spreads_ties_between_idle_equal_instances() -> None:
    # The litellm bug: ties always went to the first instance. 3000 picks, no one above 40 %.
    counts = Counter(picks("least_loaded", fleet(1, 1, 1), 3000))

    assert set(counts) == {"a", "b", "c"}
    assert max(counts.values()) <= 0.4 * 3000, counts


def test_least_loaded_spreads_ties_only_among_the_least_loaded() -> None:
    candidates = [instance("a", inflight=1), instance("b"), instance("c")]

    counts = Counter(picks("least_loaded", candidates, 2000))

    assert "a" not in counts
    assert counts["b"] / 2000 == pytest.approx(0.5, abs=0.05)


def test_least_loaded_fills_instances_in_proportion_to_weight_when_picks_are_counted() -> None:
    strategy = make_strategy("least_loaded", random.Random(3))
    candidates = fleet(5, 1, 1, max_capacity=100)

    for _ in range(70):
        pick = strategy.choose(candidates)
        assert pick is not None
        pick.load.inflight += 1  # what the proxy does when it routes

    inflight = {i.id: i.load.inflight for i in candidates}
    assert inflight["a"] == pytest.approx(50, abs=1)
    assert inflight["b"] == pytest.approx(10, abs=1)
    assert inflight["c"] == pytest.approx(10, abs=1)


# -- every strategy ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_every_strategy_skips_full_and_excluded_instances(name: str) -> None:
    strategy = make_strategy(name, random.Random(5))
    candidates = [
        instance("a", inflight=10, max_capacity=10),
        instance("b"),
        instance("c", inflight=12, max_capacity=10),
        instance("d", weight=3),
        instance("e"),
    ]

    chosen = {strategy.choose(candidates, exclude={"d"}) for _ in range(200)}

    assert {pick.id for pick in chosen if pick is not None} == {"b", "e"}
    assert None not in chosen


@pytest.mark.parametrize("name", ALL_STRATEGIES)
@pytest.mark.parametrize(
    ("candidates", "exclude"),
    [
        pytest.param([], set(), id="empty"),
        pytest.param([instance("a"), instance("b")], {"a", "b"}, id="all-excluded"),
        pytest.param(
            [instance("a", inflight=3, max_capacity=3), instance("b", inflight=1, max_capacity=1)],
            set(),
            id="all-full",
        ),
        pytest.param(
            [instance("a", inflight=3, max_capacity=3), instance("b")], {"b"}, id="full-or-excluded"
        ),
    ],
)
def test_every_strategy_returns_none_when_nothing_is_left(
    name: str, candidates: list[Instance], exclude: set[str]
) -> None:
    strategy = make_strategy(name, random.Random(5))

    assert strategy.choose(candidates, exclude) is None


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_only_work_takes_capacity_and_work_free_requests_ignore_it(name: str) -> None:
    full = instance("a", inflight=3, work=3, max_capacity=3)
    # Many joins and polls in flight, no work: still room for new work.
    busy = instance("b", inflight=50, work=0, max_capacity=3)
    strategy = make_strategy(name, random.Random(5))

    assert {strategy.choose([full, busy]) for _ in range(20)} == {busy}
    assert strategy.choose([full], room=anywhere) is full


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_make_strategy_builds_each_known_name(name: str) -> None:
    assert make_strategy(name, random.Random(0)).name == name


@pytest.mark.parametrize("name", ["bogus", "", "LEAST_LOADED", "least-loaded"])
def test_make_strategy_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy(name, random.Random(0))
