"""The Redis relay's batched writes: every event in order, every stream with its TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from worker.runs.events import StreamEvent
from worker.runs.relay import END, RedisRelay

pytestmark = pytest.mark.integration


def _ignore_commands(run_id: str, action: str) -> bool:
    return False


async def test_a_burst_of_events_lands_in_order_and_each_stream_expires(
    redis_url: str, redis_prefix: str
) -> None:
    relay = RedisRelay(
        redis_url,
        worker_id="w1",
        prefix=redis_prefix,
        max_events=1000,
        stream_ttl_s=300,
        result_ttl_s=300,
    )
    # Queued before the writer starts, so they leave in one batch: two runs interleaved, and
    # a run reset after its first events (only what follows the reset remains).
    for seq in range(5):
        relay.publish("a", StreamEvent(seq, "values", f'{{"a": {seq}}}'.encode()))
        relay.publish("b", StreamEvent(seq, "values", f'{{"b": {seq}}}'.encode()))
    relay.reset("b")
    relay.publish("b", StreamEvent(0, "metadata", b"{}"))
    relay.end("a", 1)
    relay.end("b", 1)
    await relay.start(_ignore_commands)
    try:
        received = [(event.seq, event.name, event.data) async for event in _until_end(relay, "a")]
        assert received == [(seq, "values", f'{{"a": {seq}}}'.encode()) for seq in range(5)]
        assert [(e.seq, e.name) async for e in _until_end(relay, "b")] == [(0, "metadata")]
    finally:
        await relay.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        for run_id in ("a", "b"):
            key = f"{redis_prefix}run:{run_id}:events"
            assert 0 < await client.ttl(key) <= 300, key
            last = await client.xrevrange(key, count=1)
            assert last[0][1][b"name"] == END.encode()
    finally:
        await client.aclose()


async def _until_end(relay: RedisRelay, run_id: str) -> AsyncIterator[StreamEvent]:
    async for event in relay.follow(run_id, -1, idle_s=5.0):
        assert event is not None, "the relay wrote nothing within 5 s"
        yield event
