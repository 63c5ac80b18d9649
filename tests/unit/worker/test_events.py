from __future__ import annotations

import asyncio

import pytest

from worker.runs.events import GraphFeed, RunEvents


async def _collect(events: RunEvents, after: int = -1) -> list[tuple[int, str]]:
    return [(e.seq, e.name) async for e in events.follow(after) if e is not None]


async def test_follow_replays_then_follows_until_closed() -> None:
    events = RunEvents(max_events=100)
    events.publish("values", {"a": 1})
    reader = asyncio.create_task(_collect(events))
    await asyncio.sleep(0)
    events.publish("updates", {"n": {}})
    events.close()
    assert await reader == [(0, "values"), (1, "updates")]


async def test_follow_after_a_sequence_number_and_two_readers() -> None:
    events = RunEvents(max_events=100)
    for i in range(3):
        events.publish("custom", i)
    events.close()
    assert await _collect(events, after=0) == [(1, "custom"), (2, "custom")]
    assert await _collect(events) == [(0, "custom"), (1, "custom"), (2, "custom")]


async def test_buffer_is_bounded() -> None:
    events = RunEvents(max_events=2)
    for i in range(5):
        events.publish("custom", i)
    events.close()
    assert [seq for seq, _ in await _collect(events)] == [3, 4]


async def test_idle_readers_get_heartbeat_cues() -> None:
    events = RunEvents(max_events=10)
    follower = events.follow(idle_s=0.01)
    assert await anext(follower) is None
    events.publish("values", {})
    event = await anext(follower)
    assert event is not None
    assert event.data == b"{}"
    await follower.aclose()


async def test_cancelled_reader_does_not_disturb_others() -> None:
    events = RunEvents(max_events=10)
    first = asyncio.create_task(_collect(events))
    second = asyncio.create_task(_collect(events))
    await asyncio.sleep(0)
    first.cancel()
    events.publish("values", 1)
    events.close()
    assert await second == [(0, "values")]
    with pytest.raises(asyncio.CancelledError):
        await first


def test_publish_after_close_is_an_error() -> None:
    events = RunEvents(max_events=10)
    events.close()
    with pytest.raises(RuntimeError):
        events.publish("values", {})


async def test_graph_feed_drops_for_slow_subscribers_only() -> None:
    feed = GraphFeed(queue_size=1)
    with feed.subscribe("g") as slow, feed.subscribe("other") as unrelated:
        feed.publish("g", {"n": 1})
        feed.publish("g", {"n": 2})
        assert slow.get_nowait() == {"n": 1}
        assert feed.dropped == 1
        assert unrelated.empty()
    assert not feed.has_subscribers("g")
