"""Health, info, metrics, the concurrency limit (503 at_capacity) and error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from langgraph_sdk.errors import InternalServerError

from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_health_ok_info(make_worker: WorkerFactory, http: aiohttp.ClientSession) -> None:
    worker = await make_worker(max_concurrency=3)
    async with http.get(f"{worker.url}/health") as response:
        assert response.status == 200
        health = await response.json()
    assert health["status"] == "ok"
    assert health["current_load"] == 0
    assert health["max_capacity"] == 3
    assert "timestamp" in health
    async with http.get(f"{worker.url}/ok") as response:
        assert await response.json() == {"ok": True}
    async with http.get(f"{worker.url}/info") as response:
        info = await response.json()
    assert info["graphs"] == ["pipeline", "approval", "flaky"]
    assert info["max_capacity"] == 3


async def test_at_capacity_is_503_before_anything_is_done(
    make_worker: WorkerFactory, http: aiohttp.ClientSession
) -> None:
    worker = await make_worker(max_concurrency=2)
    sdk = worker.client()
    try:
        threads = [await sdk.threads.create() for _ in range(3)]
        for thread in threads[:2]:
            await sdk.runs.create(thread["thread_id"], "pipeline", input={"delay_s": 5})
        async with http.get(f"{worker.url}/health") as response:
            assert (await response.json())["current_load"] == 2
        body = {"assistant_id": "pipeline", "input": {}}
        url = f"{worker.url}/threads/{threads[2]['thread_id']}/runs"
        async with http.post(url, json=body) as response:
            assert response.status == 503
            error = await response.json()
        assert error["error"]["code"] == "at_capacity"
        # Nothing was recorded for the refused run.
        assert await sdk.runs.list(threads[2]["thread_id"]) == []
        with pytest.raises(InternalServerError, match="capacity"):
            await sdk.runs.create(None, "pipeline", input={})
        with pytest.raises(httpx.HTTPStatusError) as refused:  # wait raises httpx's own error
            await sdk.runs.wait(None, "pipeline", input={})
        assert refused.value.response.status_code == 503
        execute = {"graph_id": "pipeline", "input_data": {}}
        async with http.post(f"{worker.url}/graphs/execute", json=execute) as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "at_capacity"
    finally:
        await sdk.aclose()


async def test_metrics_count_runs_by_graph_and_outcome(
    make_worker: WorkerFactory, http: aiohttp.ClientSession
) -> None:
    worker = await make_worker()
    sdk = worker.client()
    try:
        await sdk.runs.wait(None, "pipeline", input={})
        await sdk.runs.wait(None, "flaky", input={"fail": True}, raise_error=False)
    finally:
        await sdk.aclose()
    await eventually(lambda: worker.manager.load == 0)
    async with http.get(f"{worker.url}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    assert 'graphfleet_worker_runs_total{graph_id="pipeline",outcome="success"} 1.0' in text
    assert 'graphfleet_worker_runs_total{graph_id="flaky",outcome="error"} 1.0' in text
    assert 'graphfleet_worker_run_duration_seconds_count{graph_id="pipeline"} 1.0' in text
    assert "graphfleet_worker_runs_in_progress 0.0" in text
    assert "graphfleet_worker_runs_queued 0.0" in text


async def test_errors_are_json(make_worker: WorkerFactory, http: aiohttp.ClientSession) -> None:
    """LangGraph routes answer ``detail`` and ``error``; the simple API ``error`` only."""
    worker = await make_worker(max_body_bytes=2048)
    async with http.get(f"{worker.url}/no/such/path") as response:
        assert response.status == 404
        body = await response.json()
        assert body["error"]["code"] == "not_found"
        assert body["detail"] == body["error"]["message"]
    async with http.post(f"{worker.url}/threads", data=b"{not json") as response:
        assert response.status == 422  # as the official server
        body = await response.json()
        assert body["error"]["code"] == "invalid_json"
        assert "not valid JSON" in body["detail"]
    async with http.post(f"{worker.url}/graphs/execute", data=b"{not json") as response:
        assert response.status == 400
        assert set(await response.json()) == {"error"}
    async with http.post(f"{worker.url}/threads", data=b"x" * 4096) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"
    async with http.post(f"{worker.url}/threads", json={"ttl": 5}) as response:
        assert response.status == 422
        assert "ttl" in (await response.json())["error"]["message"]
    for path in ("/threads/nope", "/threads/nope/runs/x", "/assistants/nope/schemas"):
        async with http.get(f"{worker.url}{path}") as response:
            assert response.status == 422, path
            body = await response.json()
            assert body["error"]["code"] == "invalid_id"
            assert body["detail"].endswith("must be a UUID")
