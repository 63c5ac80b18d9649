"""``python -m lb`` as a real process: serving, SIGTERM draining in-flight work, exit."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes import FakeWorker
from tests.integration.lb.processes import LBProcess, start_lb_process
from tests.support import eventually


async def _read_all(pending: asyncio.Task[aiohttp.ClientResponse]) -> bytes:
    response = await pending
    return await response.read()


@pytest.fixture
async def lb_process(workers: list[FakeWorker], tmp_path: Path) -> AsyncIterator[LBProcess]:
    running = await start_lb_process(
        tmp_path,
        instances=",".join(w.url for w in workers[:2]),
        health_interval_s="0.1",
        shutdown_timeout_s="2",
    )
    await running.wait_until("/ready")
    yield running
    await running.stop()


async def test_sigterm_lets_in_flight_requests_finish_then_exits(
    lb_process: LBProcess, workers: list[FakeWorker]
) -> None:
    async with aiohttp.ClientSession() as client:
        slow = asyncio.create_task(client.get(lb_process.url("/slow?s=0.5")))
        await eventually(lambda: sum(w.started for w in workers) == 1)
        lb_process.process.send_signal(signal.SIGTERM)
        response = await slow
        assert response.status == 200
        assert (await response.json())["slept"] is True
        # New connections are refused once the LB stopped accepting.
        with pytest.raises(aiohttp.ClientConnectionError):
            async with client.get(lb_process.url("/echo")):
                pass
    assert await asyncio.wait_for(lb_process.process.wait(), 10) == 0


async def test_sigterm_cuts_requests_that_outlive_the_shutdown_timeout(
    lb_process: LBProcess, workers: list[FakeWorker]
) -> None:
    async with aiohttp.ClientSession() as client:
        stuck = asyncio.create_task(client.get(lb_process.url("/slow?s=60")))
        await eventually(lambda: sum(w.started for w in workers) == 1)
        lb_process.process.send_signal(signal.SIGTERM)
        # LB_SHUTDOWN_TIMEOUT_S=2: the process ends and the worker's request is cancelled.
        assert await asyncio.wait_for(lb_process.process.wait(), 15) == 0
        await eventually(lambda: sum(w.cancelled for w in workers) == 1)
        with pytest.raises(aiohttp.ClientError):
            await _read_all(stuck)


async def test_one_json_log_line_per_request(workers: list[FakeWorker], tmp_path: Path) -> None:
    running = await start_lb_process(
        tmp_path,
        stderr=asyncio.subprocess.PIPE,
        instances=workers[0].url,
        log_level="info",
        log_format="json",
    )
    process = running.process
    try:
        await running.wait_until("/ready")
        async with (
            aiohttp.ClientSession() as client,
            client.get(running.url("/echo?q=1"), headers={"X-Request-ID": "log-me"}) as response,
        ):
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        output = await asyncio.wait_for(process.stderr.read(), 15)
        await process.wait()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith(b"{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["request_id"] == "log-me"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/echo", 200)
    assert line["instance_id"].startswith("127.0.0.1_")
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"
