"""Affinity keys read from paths and Location headers, and the bounded, expiring table."""

from __future__ import annotations

import pytest

from lb.routing.affinity import AffinityTable, key_from_location, key_from_path
from tests.unit.lb.helpers import FakeClock

THREAD = "6f1c2a9e-1b0d-4c55-9d2e-0a7f3e1b2c4d"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/threads/{THREAD}", f"thread:{THREAD}"),
        (f"/threads/{THREAD}/runs", f"thread:{THREAD}"),
        (f"/threads/{THREAD}/runs/r-1/join", f"thread:{THREAD}"),
        ("/threads/t1/state", "thread:t1"),
        ("/executions/e-42", "execution:e-42"),
        ("/executions/e-42/cancel", "execution:e-42"),
        ("/threads/search", None),
        ("/threads/search/more", None),
        ("/threads", None),
        ("/threads/", None),
        ("/threads//runs", None),
        ("/executions/", None),
        ("/runs/r-1", None),
        ("/graphs/execute", None),
        ("/threadsx/t1", None),
        ("/", None),
        ("", None),
        ("/api/threads/t1", None),
    ],
)
def test_key_from_path(path: str, expected: str | None) -> None:
    assert key_from_path(path) == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/threads/t1/runs/r1", "thread:t1"),
        ("/executions/e1", "execution:e1"),
        ("http://worker-1:8000/threads/t1/runs/r1", "thread:t1"),
        ("https://worker-1/executions/e1", "execution:e1"),
        ("http://127.0.0.1:8001/executions/e1/stream", "execution:e1"),
        ("http://worker-1:8000", None),
        ("http://worker-1:8000/", None),
        ("http://worker-1:8000/threads/search", None),
        ("https://worker-1/runs/r1", None),
        ("/executions/e1?wait=true", "execution:e1"),
        ("/threads/t1?stream=1", "thread:t1"),
        ("http://worker-1:8000/threads/t1#state", "thread:t1"),
        ("runs/r1", None),
    ],
)
def test_key_from_location(location: str, expected: str | None) -> None:
    assert key_from_location(location) == expected


def test_a_pinned_key_expires_after_its_ttl() -> None:
    clock = FakeClock(100.0)
    table = AffinityTable(max_size=10, ttl_s=60.0, clock=clock)
    table.pin("thread:t1", "a")

    clock.now = 159.9
    assert table.get("thread:t1") == "a"

    clock.now = 160.0
    assert table.get("thread:t1") is None
    assert len(table) == 0


def test_pinning_again_moves_the_key_and_renews_its_ttl() -> None:
    clock = FakeClock(0.0)
    table = AffinityTable(max_size=10, ttl_s=60.0, clock=clock)
    table.pin("thread:t1", "a")

    clock.now = 50.0
    table.pin("thread:t1", "b")
    clock.now = 100.0

    assert table.get("thread:t1") == "b"
    assert len(table) == 1


def test_the_table_drops_the_least_recently_pinned_beyond_its_size() -> None:
    table = AffinityTable(max_size=3, ttl_s=60.0, clock=FakeClock())
    for key in ("k1", "k2", "k3"):
        table.pin(key, "a")
    table.pin("k1", "b")  # k1 is now the most recent

    table.pin("k4", "c")
    table.pin("k5", "c")

    assert len(table) == 3
    assert [table.get(k) for k in ("k1", "k2", "k3", "k4", "k5")] == [
        "b",
        None,
        None,
        "c",
        "c",
    ]


def test_forget_instance_drops_only_its_keys() -> None:
    table = AffinityTable(max_size=10, ttl_s=60.0, clock=FakeClock())
    table.pin("thread:t1", "a")
    table.pin("thread:t2", "b")
    table.pin("execution:e1", "a")

    table.forget_instance("a")

    assert len(table) == 1
    assert table.get("thread:t1") is None
    assert table.get("execution:e1") is None
    assert table.get("thread:t2") == "b"
