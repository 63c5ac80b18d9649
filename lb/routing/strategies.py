"""Balancing strategies: pure choices over a snapshot's routable instances.

A strategy never does I/O and draws randomness only from the RNG it is given, so tests drive
it with a seeded :class:`random.Random`. Every strategy

- skips instances in ``exclude`` (already tried by this request) and instances without
  ``room`` (by default :func:`has_room`: fewer work-creating requests than ``max_capacity``),
  returning None when nothing is left;
- respects weights;
- breaks ties at random, so equal instances share work instead of the first one taking it all.

Round robin keeps a little state (nginx's smooth weighted round robin), which is why strategies
are small objects rather than bare functions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Sequence
from typing import Protocol

from lb.fleet.registry import Instance

_NOTHING: frozenset[str] = frozenset()


def has_room(instance: Instance) -> bool:
    """Whether the instance can take one more request that creates work."""
    return instance.load.work < instance.max_capacity


def anywhere(instance: Instance) -> bool:
    """For requests that create no work: capacity is not theirs to respect."""
    return True


Room = Callable[[Instance], bool]


def load_score(instance: Instance) -> float:
    """Work per unit of capacity: the LB's own in-flight requests plus the runs the worker
    holds that none of them waits on (:attr:`~lb.fleet.registry.Load.background`), over its
    capacity scaled by weight."""
    load = instance.load
    return (load.inflight + load.background) / (instance.max_capacity * instance.weight)


class Strategy(Protocol):
    name: str

    def choose(
        self,
        candidates: Sequence[Instance],
        exclude: Container[str] = _NOTHING,
        room: Room = has_room,
    ) -> Instance | None: ...


class LeastLoaded:
    """The instance with the lowest :func:`load_score`; ties broken uniformly at random."""

    name = "least_loaded"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(
        self,
        candidates: Sequence[Instance],
        exclude: Container[str] = _NOTHING,
        room: Room = has_room,
    ) -> Instance | None:
        best: Instance | None = None
        best_score = 0.0
        ties = 0
        for instance in candidates:
            if instance.id in exclude or not room(instance):
                continue
            score = load_score(instance)
            if best is None or score < best_score:
                best, best_score, ties = instance, score, 1
            elif score == best_score:
                # Reservoir sampling over the tied instances: each ends up chosen with 1/ties.
                ties += 1
                if self._rng.random() * ties < 1.0:
                    best = instance
        return best


class RoundRobin:
    """Smooth weighted round robin (as nginx): with equal weights a plain rotation, with
    weights an interleaved sequence (5:1:1 gives a a b a c a a, not a a a a a b c)."""

    name = "round_robin"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._current: dict[str, int] = {}

    def choose(
        self,
        candidates: Sequence[Instance],
        exclude: Container[str] = _NOTHING,
        room: Room = has_room,
    ) -> Instance | None:
        current = self._current
        best: Instance | None = None
        best_weight = 0
        total = 0
        for instance in candidates:
            if instance.id in exclude or not room(instance):
                continue
            weight = current.get(instance.id)
            if weight is None:
                # A newcomer starts at a random phase so that a fleet of fresh instances
                # does not begin in lockstep with every other LB replica.
                weight = self._rng.randrange(instance.weight)
            weight += instance.weight
            current[instance.id] = weight
            total += instance.weight
            if best is None or weight > best_weight:
                best, best_weight = instance, weight
        if best is None:
            return None
        current[best.id] = best_weight - total
        if len(current) > 4 * len(candidates) + 16:
            # Forget instances that left the fleet so the table does not grow forever.
            alive = {i.id for i in candidates}
            for gone in [k for k in current if k not in alive]:
                del current[gone]
        return best


class Random:
    """Uniform, or weighted when weights differ."""

    name = "random"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(
        self,
        candidates: Sequence[Instance],
        exclude: Container[str] = _NOTHING,
        room: Room = has_room,
    ) -> Instance | None:
        return _weighted_pick(self._rng, candidates, exclude, room)


class PowerOfTwo:
    """Two instances drawn at random (weighted), the less loaded one wins: near least-loaded
    balance without herding every LB replica onto the same idle instance."""

    name = "power_of_two"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(
        self,
        candidates: Sequence[Instance],
        exclude: Container[str] = _NOTHING,
        room: Room = has_room,
    ) -> Instance | None:
        first = _weighted_pick(self._rng, candidates, exclude, room)
        if first is None:
            return None
        second = _weighted_pick(self._rng, candidates, _Excluding(exclude, first.id), room)
        if second is None:
            return first
        # A tie keeps ``first``: it is itself a weighted draw, so idle instances get work in
        # proportion to weight (a coin flip between the two would pull 5:1:1 to 48/26/26 %).
        return second if load_score(second) < load_score(first) else first


class _Excluding:
    """``exclude`` plus one more id, without copying the caller's container."""

    __slots__ = ("_base", "_extra")

    def __init__(self, base: Container[str], extra: str) -> None:
        self._base = base
        self._extra = extra

    def __contains__(self, item: object) -> bool:
        return item == self._extra or item in self._base


def _weighted_pick(
    rng: random.Random, candidates: Sequence[Instance], exclude: Container[str], room: Room
) -> Instance | None:
    # One pass, no list built: weighted reservoir sampling (an instance of weight w replaces
    # the current pick with probability w / total-so-far).
    chosen: Instance | None = None
    total = 0
    for instance in candidates:
        if instance.id in exclude or not room(instance):
            continue
        total += instance.weight
        if rng.random() * total < instance.weight:
            chosen = instance
    return chosen


STRATEGIES: dict[str, type[LeastLoaded | RoundRobin | Random | PowerOfTwo]] = {
    cls.name: cls for cls in (LeastLoaded, RoundRobin, Random, PowerOfTwo)
}


def make_strategy(name: str, rng: random.Random) -> Strategy:
    try:
        return STRATEGIES[name](rng)
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}") from None
