"""A browser's stop button: a stream the client aborts (``on_disconnect: "cancel"``, what
the JavaScript client sends) cancels the run, and the worker logs it as an event, not as an
error with a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.oracle.harness import GRAPHS_CONFIG
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


async def _first_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """Read up to the first complete SSE event; its name and data."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            return {"event": fields.get("event"), "data": json.loads(fields["data"])}
        name, _, value = line.partition(": ")
        fields[name] = value
    raise AssertionError("stream ended before its first event")


async def _status(http: aiohttp.ClientSession, url: str, thread_id: str, run_id: str) -> str:
    async with http.get(f"{url}/threads/{thread_id}/runs/{run_id}") as response:
        return str((await response.json())["status"])


async def test_aborted_streams_cancel_their_runs_without_a_traceback(tmp_path: Path) -> None:
    port, log_path = free_port(), tmp_path / "worker.log"
    env = {
        **os.environ,
        "WORKER_PORT": str(port),
        "WORKER_STORE": f"sqlite:///{tmp_path}/w.sqlite",
        "WORKER_GRAPHS": str(GRAPHS_CONFIG),
        "WORKER_LOG_FORMAT": "json",
        "WORKER_LOG_LEVEL": "info",
        "WORKER_KEEPALIVE_INTERVAL_S": "0.2",
    }
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", env=env, cwd=ROOT, stdout=log, stderr=log
        )
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                assert proc.returncode is None, log_path.read_text()
                try:
                    async with http.get(f"{url}/ok") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, timeout_s=60, interval_s=0.2)
            async with http.post(f"{url}/threads", json={}) as response:
                thread_id = (await response.json())["thread_id"]
            body = {"assistant_id": "slow", "input": {"delay_s": 30}, "on_disconnect": "cancel"}
            # A new run's stream, aborted after its first event.
            response = await http.post(f"{url}/threads/{thread_id}/runs/stream", json=body)
            first = await _first_event(response)
            response.close()
            assert first["event"] == "metadata"
            run_id = first["data"]["run_id"]

            async def cancelled(run_id: str = run_id) -> bool:
                return await _status(http, url, thread_id, run_id) == "interrupted"

            await eventually(cancelled, timeout_s=30)
            # A joined stream with cancel_on_disconnect, aborted after its metadata.
            async with http.post(
                f"{url}/threads/{thread_id}/runs", json={**body, "on_disconnect": None}
            ) as created:
                joined_id = (await created.json())["run_id"]
            response = await http.get(
                f"{url}/threads/{thread_id}/runs/{joined_id}/stream?cancel_on_disconnect=true"
            )
            assert (await _first_event(response))["event"] == "metadata"
            response.close()

            async def also_cancelled() -> bool:
                return await _status(http, url, thread_id, joined_id) == "interrupted"

            await eventually(also_cancelled, timeout_s=30)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)
    text = log_path.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert "Traceback" not in text
    assert [e for e in events if e.get("level") in ("error", "critical")] == []
    assert "stream_client_left_run_cancelled" in {e["event"] for e in events}
