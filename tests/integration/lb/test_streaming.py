"""Streams through the LB: SSE event by event, WebSockets both ways, bodies without buffering."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url
from tests.support import eventually


async def test_sse_events_arrive_one_by_one(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    arrivals: list[float] = []
    started = time.monotonic()
    async with client.get(url(balancer, "/sse?n=5&interval=0.3")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        async for line in response.content:
            if line.startswith(b"data:"):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 5
    # Each event is passed on as it comes: the first long before the last (1.2 s later).
    assert arrivals[-1] - arrivals[0] > 1.0


async def test_a_stream_counts_as_in_flight_for_its_whole_life(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    assert balancer.components is not None
    instance = balancer.components.registry.snapshot.instances[0]
    async with client.get(url(balancer, "/sse?n=3&interval=0.3")) as response:
        await response.content.readline()
        assert instance.load.inflight == 1
        await response.read()
    await eventually(lambda: instance.load.inflight == 0)


async def test_websocket_echo_both_ways_and_close_code_passed_through(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    assert balancer.components is not None
    instance = balancer.components.registry.snapshot.instances[0]
    async with client.ws_connect(url(balancer, "/ws")) as ws:
        await ws.send_str("hello")
        assert (await ws.receive_str()) == "echo:hello"
        await ws.send_bytes(b"\x01\x02\x03")
        assert (await ws.receive_bytes()) == b"\x03\x02\x01"
        assert instance.load.inflight == 1  # a socket counts as load while open
        await ws.send_str("close:4001")
        message = await ws.receive()
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 4001
        assert message.extra == "asked to"
    await eventually(lambda: instance.load.inflight == 0)


async def test_client_close_code_reaches_the_worker_and_its_answer_comes_back(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])

    async def close_with_4002(target: str) -> int | None:
        ws = await client.ws_connect(target)
        await ws.send_str("ping")
        assert await ws.receive_str() == "echo:ping"
        await ws.close(code=4002, message=b"bye")
        return ws.close_code

    direct = await close_with_4002(f"{workers[0].url}/ws")
    proxied = await close_with_4002(url(balancer, "/ws"))
    await eventually(lambda: workers[0].ws_close_codes == [4002, 4002])
    assert proxied == direct  # the worker's answer to our close came back unchanged


async def test_websocket_to_a_path_the_worker_refuses_is_an_http_error(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(url(balancer, "/nowhere"))
    assert refused.value.status == 404


def _rss_high_water_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(120)
async def test_large_upload_and_download_stream_with_bounded_memory(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    """1 GiB each way through the LB (in this process) with the peak RSS growing far less."""
    balancer = await start_lb(workers[:1])
    size = 1 << 30
    before = _rss_high_water_bytes()

    async def body() -> object:
        chunk = b"y" * (1 << 20)
        for _ in range(size // len(chunk)):
            yield chunk

    async with client.post(
        url(balancer, "/upload"), data=body(), headers={"Content-Length": str(size)}
    ) as response:
        assert response.status == 200
        assert (await response.json())["received"] == size
    received = 0
    async with client.get(url(balancer, f"/download?bytes={size}")) as response:
        assert response.status == 200
        assert response.content_length == size
        async for chunk in response.content.iter_chunked(1 << 20):
            received += len(chunk)
    assert received == size
    grown = _rss_high_water_bytes() - before
    assert grown < 64 << 20, f"peak memory grew by {grown >> 20} MiB"


async def test_client_disconnect_cancels_the_upstream_request(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    assert balancer.components is not None
    instance = balancer.components.registry.snapshot.instances[0]
    fake = workers[0]
    task = asyncio.create_task(client.get(url(balancer, "/slow?s=30")))
    await eventually(lambda: fake.started == 1)
    task.cancel()  # the client hangs up while the worker is still working
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: fake.cancelled == 1)
    await eventually(lambda: instance.load.inflight == 0)


async def test_client_leaving_an_sse_stream_closes_the_worker_stream(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    fake = workers[0]
    response = await client.get(url(balancer, "/sse?n=1000&interval=0.05"))
    await response.content.readline()
    response.close()
    await eventually(lambda: fake.cancelled == 1)
