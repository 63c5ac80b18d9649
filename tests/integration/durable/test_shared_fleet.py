"""Two workers sharing Postgres and Redis: any worker answers for, joins, streams and cancels
a run the other executes; a reconnect with Last-Event-ID loses no event."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration
STEPS = ["extract", "transform", "load"]


@pytest.fixture
async def pair(
    make_worker: WorkerFactory, pg_url: str, redis_url: str, redis_prefix: str
) -> tuple[Worker, Worker]:
    common: dict[str, Any] = {
        "store": pg_url,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "remote_poll_s": 0.05,
    }
    return await make_worker(instance_id="a", **common), await make_worker(
        instance_id="b", **common
    )


async def test_a_run_on_one_worker_is_read_joined_and_cancelled_through_the_other(
    pair: tuple[Worker, Worker],
) -> None:
    a, b = pair
    sdk_a, sdk_b = a.client(), b.client()
    try:
        thread_id = (await sdk_a.threads.create())["thread_id"]
        run = await sdk_a.runs.create(thread_id, "pipeline", input={"delay_s": 0.1})
        seen = await sdk_b.runs.get(thread_id, run["run_id"])
        assert seen["run_id"] == run["run_id"]
        assert seen["status"] in ("pending", "running")
        # B waits for A's run through the shared store.
        assert (await sdk_b.runs.join(thread_id, run["run_id"]))["steps"] == STEPS
        assert (await sdk_b.runs.get(thread_id, run["run_id"]))["status"] == "success"
        assert (await sdk_b.threads.get_state(thread_id))["values"]["steps"] == STEPS
        assert (await sdk_b.threads.get(thread_id))["status"] == "idle"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{b.url}/executions/{run['run_id']}") as response,
        ):
            execution = await response.json()
        assert (execution["status"], execution["result"]["steps"]) == ("completed", STEPS)
        # A cancel sent to B reaches A, which executes the run.
        long = await sdk_a.runs.create(thread_id, "pipeline", input={"delay_s": 10})
        await eventually(lambda: a.manager.running == 1)
        await sdk_b.runs.cancel(thread_id, long["run_id"], wait=True)
        assert (await sdk_b.runs.get(thread_id, long["run_id"]))["status"] == "interrupted"
        assert a.manager.running == 0
    finally:
        await sdk_a.aclose()
        await sdk_b.aclose()


async def _read_events(
    response: aiohttp.ClientResponse, limit: int | None = None
) -> list[tuple[str, str, str]]:
    """``(id, event, data)`` of each SSE event, up to ``limit`` events or the stream's end."""
    events: list[tuple[str, str, str]] = []
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "event" in fields:
                events.append((fields.get("id", ""), fields["event"], fields.get("data", "")))
                if limit is not None and len(events) >= limit:
                    return events
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


async def test_stream_joined_on_the_other_worker_resumes_after_last_event_id(
    pair: tuple[Worker, Worker],
) -> None:
    a, b = pair
    sdk_a = a.client()
    try:
        thread_id = (await sdk_a.threads.create())["thread_id"]
        run = await sdk_a.runs.create(
            thread_id,
            "pipeline",
            input={"delay_s": 0.15},
            stream_mode=["custom", "values"],
            stream_resumable=True,
        )
    finally:
        await sdk_a.aclose()
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    async with aiohttp.ClientSession() as http:
        async with http.get(b.url + path) as response:
            assert response.status == 200
            metadata, *first = await _read_events(response, limit=4)
        # From the start, a join stream begins with the run's metadata (no id to resume at).
        assert metadata[:2] == ("", "metadata")
        # Reconnect to B after the third event: the rest, nothing twice, nothing lost.
        async with http.get(b.url + path, headers={"Last-Event-ID": first[-1][0]}) as response:
            rest = await _read_events(response)
    local = a.manager.get(run["run_id"])
    assert local is not None
    produced = [(str(e.seq), e.name, e.data.decode()) for e in local.events.retained()]
    assert len(produced) == 1 + 6 + 3  # values at start and after each step; 2 custom each
    assert first + rest == produced


async def test_websocket_pause_sent_to_the_other_worker_reaches_the_executing_one(
    pair: tuple[Worker, Worker],
) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as http:
        body = {"graph_id": "pipeline", "input_data": {"delay_s": 0.3}}
        async with http.post(f"{a.url}/graphs/execute", json=body) as response:
            execution_id = (await response.json())["execution_id"]
        await eventually(lambda: a.manager.running == 1)
        async with http.ws_connect(f"{b.url}/ws/graphs/pipeline") as ws:
            assert (await ws.receive_json())["type"] == "subscribed"
            await ws.send_json({"command": "pause", "execution_id": execution_id})
            ack = await ws.receive_json()
        assert (ack["type"], ack["status"]) == ("ack", "stopping")

        async def paused() -> bool:
            async with http.get(f"{b.url}/executions/{execution_id}") as response:
                return bool((await response.json())["status"] == "paused")

        await eventually(paused)


async def test_a_run_is_relayed_only_once_another_worker_streams_it(
    pair: tuple[Worker, Worker], redis_url: str, redis_prefix: str
) -> None:
    """Redis carries a run's events only for a reader on another worker: a run streamed
    nowhere else writes nothing there; one joined elsewhere after it ended is replayed whole
    from the worker that ran it (which holds its events for the stream retention)."""
    a, b = pair
    sdk_a = a.client()
    client = aioredis.Redis.from_url(redis_url)
    try:
        thread_id = (await sdk_a.threads.create())["thread_id"]
        run = await sdk_a.runs.create(
            thread_id, "pipeline", input={"delay_s": 0.01}, stream_mode=["custom", "values"]
        )
        await sdk_a.runs.join(thread_id, run["run_id"])
        key = f"{redis_prefix}run:{run['run_id']}:events"
        assert await client.exists(key) == 0
        path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
        async with aiohttp.ClientSession() as http, http.get(b.url + path) as response:
            assert response.status == 200
            metadata, *replayed = await _read_events(response)
        assert metadata[1] == "metadata"
        local = a.manager.get(run["run_id"])
        assert local is not None
        produced = [(str(e.seq), e.name, e.data.decode()) for e in local.events.retained()]
        assert replayed == produced
        assert await client.exists(key) == 1
    finally:
        await sdk_a.aclose()
        await client.aclose()


async def test_a_resumable_stream_is_replayed_after_its_worker_is_gone(
    pair: tuple[Worker, Worker],
) -> None:
    """A run made with ``stream_resumable`` writes its events to Redis as it makes them, so
    once it ended and its worker stopped (a deploy), the other worker replays all of it."""
    a, b = pair
    async with a.client() as sdk_a:
        thread_id = (await sdk_a.threads.create())["thread_id"]
        run = await sdk_a.runs.create(
            thread_id,
            "pipeline",
            input={"payload": 1},
            stream_mode=["custom", "values"],
            stream_resumable=True,
        )
        await sdk_a.runs.join(thread_id, run["run_id"])
    local = a.manager.get(run["run_id"])
    assert local is not None
    produced = [(str(e.seq), e.name, e.data.decode()) for e in local.events.retained()]
    assert len(produced) == 1 + 6 + 3
    await a.runner.cleanup()
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    async with aiohttp.ClientSession() as http, http.get(b.url + path) as response:
        assert response.status == 200
        metadata, *replayed = await _read_events(response)
    assert metadata[1] == "metadata"
    assert replayed == produced
