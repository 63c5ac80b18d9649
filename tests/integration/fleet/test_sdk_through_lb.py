"""The official LangGraph SDK against the real LB in front of two real workers.

Each worker has a store of its own here, so a thread lives on exactly one of them: every call
naming the thread must reach that worker through the LB's affinity, or it would fail.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.integration.fleet.conftest import Fleet, balanced
from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def fleet(make_worker: WorkerFactory, tmp_path: Path) -> AsyncIterator[Fleet]:
    workers = [await make_worker(), await make_worker()]
    async with balanced(workers, tmp_path / "lb") as balancer:
        yield balancer, workers


async def test_threads_stick_to_their_worker(fleet: Fleet, sdk: LangGraphClient) -> None:
    results = []
    for i in range(4):
        thread = await sdk.threads.create()
        # round robin would alternate; the thread's runs and state must follow the thread.
        values = await sdk.runs.wait(thread["thread_id"], "pipeline", input={"payload": i})
        state = await sdk.threads.get_state(thread["thread_id"])
        assert state["values"] == values
        results.append(values)
    assert len(results) == 4


async def test_background_run_join_and_join_stream_through_the_lb(
    sdk: LangGraphClient,
) -> None:
    thread = await sdk.threads.create()
    run = await sdk.runs.create(
        thread["thread_id"], "pipeline", input={}, config={"configurable": {"delay_s": 0.2}}
    )
    events = [part.event async for part in sdk.runs.join_stream(thread["thread_id"], run["run_id"])]
    assert events
    final = await sdk.runs.join(thread["thread_id"], run["run_id"])
    assert final
    fetched = await sdk.runs.get(thread["thread_id"], run["run_id"])
    assert fetched["status"] == "success"


async def test_stream_through_the_lb_arrives_in_order(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    parts = [
        part
        async for part in sdk.runs.stream(
            thread["thread_id"], "pipeline", input={}, stream_mode=["values", "custom"]
        )
    ]
    assert parts[0].event == "metadata"
    assert {p.event for p in parts[1:]} <= {"values", "custom", "end"}
    assert any(p.event == "custom" for p in parts)


async def test_interrupt_then_resume_through_the_lb(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    paused = await sdk.runs.wait(thread["thread_id"], "approval", input={"request": "deploy"})
    assert "__interrupt__" in paused
    resumed = await sdk.runs.wait(thread["thread_id"], "approval", command={"resume": "approved"})
    assert "__interrupt__" not in resumed


async def test_cancel_through_the_lb(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    run = await sdk.runs.create(
        thread["thread_id"], "pipeline", input={}, config={"configurable": {"delay_s": 5}}
    )
    await sdk.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    fetched = await sdk.runs.get(thread["thread_id"], run["run_id"])
    assert fetched["status"] in ("interrupted", "error")


async def test_simple_api_execution_is_found_again_through_the_lb(
    fleet: Fleet,
) -> None:
    base = f"http://127.0.0.1:{fleet[0].proxy_port}"
    async with aiohttp.ClientSession() as client:
        ids = []
        for _ in range(4):
            async with client.post(
                f"{base}/graphs/execute", json={"graph_id": "pipeline", "input_data": {}}
            ) as response:
                assert response.status == 202
                ids.append((await response.json())["execution_id"])

        for execution_id in ids:

            async def completed(execution_id: str = execution_id) -> bool:
                async with client.get(f"{base}/executions/{execution_id}") as response:
                    assert response.status == 200  # always the worker that holds it
                    return (await response.json())["status"] == "completed"

            await eventually(completed, timeout_s=10)


async def test_websocket_commands_through_the_lb(
    fleet: Fleet,
) -> None:
    base = f"http://127.0.0.1:{fleet[0].proxy_port}"
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(f"{base}/ws/graphs/pipeline") as ws,
    ):
        hello = await asyncio.wait_for(ws.receive_json(), 5)
        assert hello == {"type": "subscribed", "graph_id": "pipeline"}
        await ws.send_json({"command": "bogus"})
        error = await asyncio.wait_for(ws.receive_json(), 5)
        assert "error" in error
        await ws.send_json({"command": "cancel", "execution_id": "nope"})
        reply = await asyncio.wait_for(ws.receive_json(), 5)
        assert "error" in reply
        assert not ws.closed  # bad commands leave the socket open


@pytest.mark.parametrize(
    "path",
    [
        "/fleet/runs/{run}/stop",
        "/%66leet/runs/{run}/stop",  # spelled differently, read the same by the worker
        "/fleet%2Fruns/{run}/stop",
    ],
)
async def test_calls_between_workers_cannot_be_made_through_the_lb(fleet: Fleet, path: str) -> None:
    balancer, workers = fleet
    run = uuid.uuid4()
    holders = [w.settings.worker_id for w in workers]
    async with aiohttp.ClientSession() as http:
        for holder in holders:  # whichever worker the LB would pick, it is the holder named
            async with http.post(
                f"http://127.0.0.1:{balancer.proxy_port}" + path.format(run=run),
                json={"action": "interrupt", "holder": holder},
            ) as response:
                assert response.status == 404
                assert (await response.json())["error"]["code"] == "not_found"
        # Straight to a worker, the call works; carrying the LB's forwarding header, it does not.
        stop = f"{workers[0].url}/fleet/runs/{run}/stop"
        body = {"action": "interrupt", "holder": holders[0]}
        async with http.post(stop, json=body) as response:
            assert response.status == 200
        async with http.post(stop, json=body, headers={"X-Forwarded-For": "10.0.0.1"}) as r:
            assert r.status == 404


async def test_a_batch_refused_by_a_full_worker_starts_once_elsewhere(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    """A worker without room for a whole batch answers 503 ``at_capacity`` having started none
    of it, so the LB's retry on the other worker starts each run exactly once."""
    small, large = await make_worker(max_concurrency=2), await make_worker(max_concurrency=4)
    async with balanced([small, large], tmp_path / "lb") as balancer:
        async with small.client() as direct:
            await direct.runs.create(None, "pipeline", input={"delay_s": 10})
        await eventually(lambda: small.manager.running == 1)
        sdk = get_client(url=f"http://127.0.0.1:{balancer.proxy_port}", api_key=None)
        async with sdk:
            # Round robin: one of the two batches is sent to the small worker first.
            for _ in range(2):
                runs = await sdk.runs.create_batch(
                    [{"assistant_id": "pipeline", "input": {"delay_s": 10}}] * 2
                )
                assert len(runs) == 2
        assert (small.manager.load, large.manager.load) == (1, 4)
