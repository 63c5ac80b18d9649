"""The registry: copy-on-write, versioned snapshots and the facts that make an instance routable."""

from __future__ import annotations

import dataclasses

import pytest

from lb.fleet.registry import Health, Instance, Registry, Snapshot, instance_id_for_url
from tests.unit.lb.helpers import FakeClock, instance


@pytest.fixture
def registry() -> Registry:
    return Registry(FakeClock())


def ids(instances: tuple[Instance, ...]) -> list[str]:
    return [i.id for i in instances]


def test_every_change_publishes_a_new_snapshot_with_a_higher_version(registry: Registry) -> None:
    empty = registry.snapshot
    registry.add(instance("a"))
    with_a = registry.snapshot
    registry.add(instance("b"))
    with_b = registry.snapshot

    assert (empty.version, with_a.version, with_b.version) == (0, 1, 2)
    assert ids(empty.instances) == []
    assert ids(with_a.instances) == ["a"]
    assert ids(with_b.instances) == ["a", "b"]


def test_a_snapshot_cannot_be_changed(registry: Registry) -> None:
    registry.add(instance("a"))
    snapshot = registry.snapshot

    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.version = 9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.instances[0].health = Health.UNHEALTHY  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.by_id["b"] = instance("b")  # type: ignore[index]
    assert isinstance(snapshot.instances, tuple)
    assert isinstance(snapshot.routable, tuple)


def test_an_old_snapshot_is_untouched_by_later_updates(registry: Registry) -> None:
    registry.add(instance("a"))
    before = registry.snapshot

    registry.update("a", draining=True)

    assert before.by_id["a"].draining is False
    assert ids(before.routable) == ["a"]
    assert registry.snapshot.by_id["a"].draining is True
    assert registry.snapshot.routable == ()


def test_update_keeps_the_shared_load_counters(registry: Registry) -> None:
    original = registry.add(instance("a"))
    original.load.inflight = 3

    updated = registry.update("a", reported_load=7)

    assert updated is not None
    assert updated.load is original.load
    assert registry.snapshot.by_id["a"].load.inflight == 3


def test_an_update_that_changes_nothing_publishes_nothing(registry: Registry) -> None:
    registry.add(instance("a", weight=2))
    published: list[Snapshot] = []
    registry.subscribe(published.append)
    before = registry.snapshot

    result = registry.update("a", weight=2, health=Health.HEALTHY)

    assert result is before.by_id["a"]
    assert registry.snapshot is before
    assert published == []


def test_update_of_an_unknown_id_returns_none_and_publishes_nothing(registry: Registry) -> None:
    before = registry.snapshot

    assert registry.update("ghost", draining=True) is None
    assert registry.snapshot is before


def test_listeners_are_called_once_per_publish_until_unsubscribed(registry: Registry) -> None:
    published: list[int] = []

    def listener(snapshot: Snapshot) -> None:
        published.append(snapshot.version)

    registry.subscribe(listener)
    registry.add(instance("a"))
    registry.update("a", draining=True)
    registry.update("a", draining=True)  # no change
    registry.remove("a")
    registry.unsubscribe(listener)
    registry.add(instance("b"))

    assert published == [1, 2, 3]


@pytest.mark.parametrize(
    ("fields", "routable"),
    [
        pytest.param({}, True, id="healthy"),
        pytest.param({"health": Health.UNKNOWN}, False, id="unknown"),
        pytest.param({"health": Health.UNHEALTHY}, False, id="unhealthy"),
        pytest.param({"draining": True}, False, id="draining"),
        pytest.param({"worker_draining": True}, False, id="worker-draining"),
        pytest.param({"ejected": True}, False, id="ejected"),
        pytest.param({"reported_load": 99, "pending_removal": False}, True, id="busy-but-healthy"),
    ],
)
def test_routable_needs_healthy_not_draining_not_ejected(
    registry: Registry, fields: dict[str, object], routable: bool
) -> None:
    registry.add(instance("ref"))
    registry.add(instance("x", **fields))  # type: ignore[arg-type]

    assert registry.snapshot.by_id["x"].routable is routable
    assert ids(registry.snapshot.routable) == (["ref", "x"] if routable else ["ref"])


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, "healthy"),
        ({"health": Health.UNKNOWN}, "unknown"),
        ({"health": Health.UNHEALTHY}, "unhealthy"),
        ({"draining": True}, "draining"),
        ({"worker_draining": True}, "draining"),
        ({"ejected": True}, "healthy"),
    ],
)
def test_state_names_draining_apart_from_health(fields: dict[str, object], state: str) -> None:
    assert instance("x", **fields).state == state  # type: ignore[arg-type]


def test_add_with_a_known_id_replaces_it_in_place_and_keeps_its_counters(
    registry: Registry,
) -> None:
    registry.add(instance("a"))
    first_b = registry.add(instance("b"))
    registry.add(instance("c"))
    first_b.load.inflight = 2

    replaced = registry.add(instance("b", weight=3))

    assert ids(registry.snapshot.instances) == ["a", "b", "c"]
    assert registry.snapshot.by_id["b"].weight == 3
    assert replaced.load is first_b.load


def test_replace_all_keeps_counters_of_known_ids_and_drops_the_rest(registry: Registry) -> None:
    known = registry.add(instance("a"))
    gone = registry.add(instance("b"))
    known.load.inflight = 4
    gone.load.inflight = 1

    registry.replace_all([instance("c"), instance("a", weight=5)])

    snapshot = registry.snapshot
    assert ids(snapshot.instances) == ["c", "a"]
    assert snapshot.by_id["a"].load is known.load
    assert snapshot.by_id["a"].weight == 5
    assert snapshot.by_id["c"].load.inflight == 0
    assert snapshot.get("b") is None


def test_remove_returns_the_instance_and_publishes_without_it(registry: Registry) -> None:
    registry.add(instance("a"))
    registry.add(instance("b"))
    version = registry.snapshot.version

    removed = registry.remove("a")

    assert removed is not None
    assert removed.id == "a"
    assert ids(registry.snapshot.instances) == ["b"]
    assert registry.snapshot.version == version + 1
    assert registry.remove("a") is None
    assert registry.snapshot.version == version + 1


def test_now_reads_the_injected_clock() -> None:
    clock = FakeClock(5.0)
    registry = Registry(clock)

    clock.now = 42.5

    assert registry.now() == 42.5


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8001", "127.0.0.1_8001"),
        ("http://worker-3.fleet.svc:9000/base", "worker-3.fleet.svc_9000"),
        ("http://[::1]:8002", "__1_8002"),
        ("http://example.com", "example.com_80"),
        ("https://example.com", "example.com_443"),
    ],
)
def test_instance_id_for_url(url: str, expected: str) -> None:
    assert instance_id_for_url(url) == expected
