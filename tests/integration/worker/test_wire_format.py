"""The bytes on the wire: SSE framing, heartbeats, Location and Content-Location headers."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration


async def test_sse_stream_headers_heartbeats_and_frames(make_worker: WorkerFactory) -> None:
    worker = await make_worker(keepalive_interval_s=0.05)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{worker.url}/threads", json={}) as response:
            thread_id = (await response.json())["thread_id"]
        body = {"assistant_id": "pipeline", "input": {"delay_s": 0.1}, "stream_mode": "updates"}
        url = f"{worker.url}/threads/{thread_id}/runs/stream"
        async with http.post(url, json=body) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            raw = await response.read()
            content_location = response.headers["Content-Location"]
            location = response.headers["Location"]
    run_id = content_location.rsplit("/", 1)[-1]
    assert content_location == f"/threads/{thread_id}/runs/{run_id}"
    assert location == f"{content_location}/stream"
    blocks = [b for b in raw.split(b"\r\n\r\n") if b]
    assert blocks[0] == b"event: metadata\r\ndata: " + orjson.dumps(
        {"run_id": run_id, "attempt": 1}
    )
    assert b": heartbeat" in blocks
    updates = [b for b in blocks if b.startswith(b"event: updates")]
    assert updates[0] == b'event: updates\r\ndata: {"extract":{"steps":["extract"]}}\r\nid: 0'


async def test_wait_and_create_headers(make_worker: WorkerFactory) -> None:
    worker = await make_worker()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{worker.url}/threads", json={}) as response:
            thread_id = (await response.json())["thread_id"]
            assert response.headers["Content-Location"] == f"/threads/{thread_id}"
        body = {"assistant_id": "pipeline", "input": {}}
        async with http.post(f"{worker.url}/threads/{thread_id}/runs", json=body) as response:
            run = await response.json()
            assert response.headers["Content-Location"] == (
                f"/threads/{thread_id}/runs/{run['run_id']}"
            )
            assert "Location" not in response.headers
        async with http.post(f"{worker.url}/threads/{thread_id}/runs/wait", json=body) as response:
            assert response.headers["Location"].endswith("/join")
            assert response.headers["Content-Location"].startswith(f"/threads/{thread_id}/runs/")
            assert (await response.json())["steps"][-1] == "load"
        execute = {"graph_id": "pipeline", "input_data": {}}
        async with http.post(f"{worker.url}/graphs/execute", json=execute) as response:
            answer = await response.json()
            assert response.headers["Location"] == f"/executions/{answer['execution_id']}"


async def test_stream_client_leaving_cancels_its_run(make_worker: WorkerFactory) -> None:
    worker = await make_worker(keepalive_interval_s=0.05)
    sdk = worker.client()
    try:
        thread = await sdk.threads.create()
        body = {"assistant_id": "pipeline", "input": {"delay_s": 10}, "stream_mode": "custom"}
        async with aiohttp.ClientSession() as http:
            url = f"{worker.url}/threads/{thread['thread_id']}/runs/stream"
            async with http.post(url, json=body) as response:
                run_id = response.headers["Content-Location"].rsplit("/", 1)[-1]
                await response.content.readuntil(b"event: custom")
        # The next heartbeat finds the connection gone: on_disconnect defaults to cancel.
        await eventually(lambda: worker.manager.load == 0)
        run = await sdk.runs.get(thread["thread_id"], run_id)
        assert run["status"] == "interrupted"
    finally:
        await sdk.aclose()
