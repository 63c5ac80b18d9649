"""Passive outlier detection: how many may be ejected, for how long, and the detector itself.

The detector schedules each return with the event loop's ``call_later``, so its tests are
async; they use ejection times of a few milliseconds and poll with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from lb.fleet.ejection import OutlierDetector, ejection_time_s, max_ejectable
from lb.fleet.registry import Health, Instance, Registry
from lb.settings import LBSettings
from tests.unit.lb.helpers import FakeClock, instance

# max_ejectable for fleets of 0..10 instances, one row per percentage.
MAX_EJECTABLE = {
    0: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    1: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    10: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    20: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2],
    34: [0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3],
    50: [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5],
    99: [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    100: [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
}


@pytest.mark.parametrize(
    ("fleet_size", "max_percent", "expected"),
    [
        (size, percent, row[size])
        for percent, row in MAX_EJECTABLE.items()
        for size in range(len(row))
    ],
)
def test_max_ejectable(fleet_size: int, max_percent: int, expected: int) -> None:
    assert max_ejectable(fleet_size, max_percent) == expected


@pytest.mark.parametrize(
    ("ejections", "base_s", "max_s", "expected_s"),
    [
        (0, 30.0, 300.0, 30.0),
        (1, 30.0, 300.0, 30.0),
        (2, 30.0, 300.0, 60.0),
        (3, 30.0, 300.0, 90.0),
        (9, 30.0, 300.0, 270.0),
        (10, 30.0, 300.0, 300.0),
        (11, 30.0, 300.0, 300.0),
        (1000, 30.0, 300.0, 300.0),
        (3, 0.5, 1.0, 1.0),
        (1, 60.0, 10.0, 10.0),
    ],
)
def test_ejection_time_grows_with_repeats_up_to_the_cap(
    ejections: int, base_s: float, max_s: float, expected_s: float
) -> None:
    assert ejection_time_s(ejections, base_s, max_s) == expected_s


# -- the detector, through a real registry -----------------------------------------------------


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.002)


class Fleet:
    def __init__(self, clock: FakeClock, registry: Registry, detector: OutlierDetector) -> None:
        self.clock = clock
        self.registry = registry
        self.detector = detector

    def __getitem__(self, instance_id: str) -> Instance:
        current = self.registry.get(instance_id)
        assert current is not None
        return current

    def fail(self, instance_id: str, times: int = 1) -> None:
        for _ in range(times):
            self.detector.failure(self[instance_id])

    def ejected(self) -> set[str]:
        return {i.id for i in self.registry.snapshot.instances if i.ejected}


@pytest.fixture
def make_fleet() -> Iterator[Callable[..., Fleet]]:
    detectors: list[OutlierDetector] = []

    def make(
        *instances: Instance,
        consecutive_errors: int = 3,
        base_s: float = 30.0,
        max_s: float = 300.0,
        max_percent: int = 50,
    ) -> Fleet:
        clock = FakeClock()
        registry = Registry(clock)
        for member in instances:
            registry.add(member)
        settings = LBSettings(
            eject_consecutive_errors=consecutive_errors,
            eject_base_s=base_s,
            eject_max_s=max_s,
            eject_max_percent=max_percent,
        )
        detector = OutlierDetector(registry, settings)
        detectors.append(detector)
        return Fleet(clock, registry, detector)

    yield make
    for detector in detectors:
        detector.stop()


def four() -> list[Instance]:
    return [instance(name) for name in "abcd"]


async def test_ejects_after_the_threshold_of_consecutive_failures(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(*four(), consecutive_errors=3, base_s=30.0)

    fleet.fail("a", 2)
    assert fleet.ejected() == set()

    fleet.fail("a")
    ejected = fleet["a"]
    assert fleet.ejected() == {"a"}
    assert ejected.ejected_until == fleet.clock.now + 30.0
    assert ejected.ejections == 1
    assert not ejected.routable
    assert [i.id for i in fleet.registry.snapshot.routable] == ["b", "c", "d"]
    assert fleet.detector.ejections_total == 1


async def test_a_success_resets_the_failure_streak(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(*four(), consecutive_errors=3)

    fleet.fail("a", 2)
    fleet.detector.success(fleet["a"])
    fleet.fail("a", 2)
    assert fleet.ejected() == set()
    assert fleet["a"].load.consecutive_errors == 2

    fleet.fail("a")
    assert fleet.ejected() == {"a"}


async def test_a_threshold_of_zero_turns_ejection_off(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(*four(), consecutive_errors=0)

    fleet.fail("a", 50)

    assert fleet.ejected() == set()


@pytest.mark.parametrize(
    ("fleet_size", "max_percent", "allowed"),
    [
        (1, 100, 0),
        (2, 100, 1),
        (2, 50, 1),
        (3, 50, 1),
        (4, 50, 2),
        (4, 25, 1),
        (5, 100, 4),
        (4, 0, 0),
    ],
)
async def test_never_ejects_more_than_allowed_nor_the_last_instance(
    make_fleet: Callable[..., Fleet], fleet_size: int, max_percent: int, allowed: int
) -> None:
    names = "abcde"[:fleet_size]
    fleet = make_fleet(*(instance(n) for n in names), max_percent=max_percent)

    for name in names:
        fleet.fail(name, 10)

    assert len(fleet.ejected()) == allowed
    assert len(fleet.registry.snapshot.routable) == fleet_size - allowed
    assert fleet.detector.ejections_total == allowed


@pytest.mark.parametrize(
    "others",
    [
        pytest.param({"health": Health.UNHEALTHY}, id="unhealthy"),
        pytest.param({"health": Health.UNKNOWN}, id="unknown"),
        pytest.param({"draining": True}, id="draining"),
        pytest.param({"worker_draining": True}, id="worker-draining"),
    ],
)
async def test_never_ejects_the_last_instance_that_takes_work(
    make_fleet: Callable[..., Fleet], others: dict[str, object]
) -> None:
    # Three members, but only "a" can serve: ejecting it would leave nothing routable.
    fleet = make_fleet(
        instance("a"),
        instance("b", **others),  # type: ignore[arg-type]
        instance("c", **others),  # type: ignore[arg-type]
        max_percent=50,
    )

    fleet.fail("a", 10)

    assert fleet.ejected() == set()
    assert [i.id for i in fleet.registry.snapshot.routable] == ["a"]


async def test_an_ejected_instance_returns_after_its_ejection_time(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(*four(), base_s=0.02)
    published: list[int] = []
    fleet.registry.subscribe(lambda snapshot: published.append(snapshot.version))

    fleet.fail("a", 3)
    ejected_at = time.monotonic()
    assert fleet.ejected() == {"a"}

    await until(lambda: not fleet["a"].ejected)

    assert time.monotonic() - ejected_at >= 0.015
    assert fleet["a"].routable
    assert fleet["a"].load.consecutive_errors == 0
    assert len(published) == 2  # the ejection and the return


async def test_repeated_ejections_last_longer_until_a_long_good_spell(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(*four(), base_s=0.005, max_s=0.015)
    durations = []

    for _ in range(4):
        fleet.fail("a", 3)
        ejected = fleet["a"]
        assert ejected.ejected
        durations.append((ejected.ejections, round(ejected.ejected_until - fleet.clock.now, 6)))
        await until(lambda: not fleet["a"].ejected)

    assert durations == [(1, 0.005), (2, 0.01), (3, 0.015), (4, 0.015)]

    # Behaving for longer than eject_max_s forgives the earlier ejections.
    fleet.clock.advance(1.0)
    fleet.fail("a", 3)
    assert fleet["a"].ejections == 1
    assert fleet["a"].ejected_until == pytest.approx(fleet.clock.now + 0.005)


async def test_an_instance_removed_while_ejected_is_not_brought_back(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(*four(), base_s=0.01)
    fleet.fail("a", 3)
    returned: list[bool] = []
    fleet.registry.subscribe(lambda snapshot: returned.append("a" in snapshot.by_id))

    fleet.registry.remove("a")
    loop = asyncio.get_running_loop()
    released = loop.create_future()
    loop.call_later(0.02, released.set_result, None)  # after the ejection timer
    await released

    assert fleet.registry.get("a") is None
    assert returned == [False]


async def test_stop_cancels_pending_returns(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(*four(), base_s=0.01)
    fleet.fail("a", 3)

    fleet.detector.stop()
    loop = asyncio.get_running_loop()
    later = loop.create_future()
    loop.call_later(0.03, later.set_result, None)
    await later

    assert fleet.ejected() == {"a"}
