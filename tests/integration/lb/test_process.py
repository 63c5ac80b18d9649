"""``python -m lb`` as a real process: serving, SIGTERM draining in-flight work, exit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes import FakeWorker
from tests.integration.lb.conftest import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LBProcess:
    def __init__(self, process: asyncio.subprocess.Process, port: int, admin_port: int) -> None:
        self.process = process
        self.port = port
        self.admin_port = admin_port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def _read_all(pending: asyncio.Task[aiohttp.ClientResponse]) -> bytes:
    response = await pending
    return await response.read()


@pytest.fixture
async def lb_process(workers: list[FakeWorker]) -> AsyncIterator[LBProcess]:
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "LB_PORT": str(port),
        "LB_ADMIN_PORT": str(admin_port),
        "LB_INSTANCES": ",".join(w.url for w in workers[:2]),
        "LB_HEALTH_INTERVAL_S": "0.1",
        "LB_SHUTDOWN_TIMEOUT_S": "2",
        "LB_LOG_LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lb", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    running = LBProcess(process, port, admin_port)
    async with aiohttp.ClientSession() as session:

        async def ready() -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{admin_port}/ready") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(ready, timeout_s=20)
    yield running
    if process.returncode is None:
        process.kill()
        await process.wait()


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
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "LB_PORT": str(port),
        "LB_ADMIN_PORT": str(admin_port),
        "LB_INSTANCES": workers[0].url,
        "LB_DATA_DIR": str(tmp_path),
        "LB_LOG_LEVEL": "info",
        "LB_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lb", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as client:

            async def ready() -> bool:
                try:
                    async with client.get(f"http://127.0.0.1:{admin_port}/ready") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(ready, timeout_s=20)
            async with client.get(
                f"http://127.0.0.1:{port}/echo?q=1", headers={"X-Request-ID": "log-me"}
            ) as response:
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
