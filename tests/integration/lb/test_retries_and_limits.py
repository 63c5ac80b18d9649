"""Retries that never repeat work, limits, headers and the LB's own error JSON."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url
from tests.support import eventually, free_port


async def test_post_to_an_unreachable_instance_is_sent_to_another(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:2], strategy="round_robin")
    assert balancer.components is not None
    await workers[0].stop()  # still routable: no health check has failed yet
    for _ in range(4):
        async with client.post(url(balancer, "/echo"), json={"x": 1}) as response:
            assert response.status == 200
            assert (await response.json())["worker"] == "b"
    assert workers[1].seen["POST /echo"] == 4


async def test_a_post_the_worker_received_is_never_repeated(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, strategy="round_robin", retries=2)
    async with client.post(url(balancer, "/drop"), json={"x": 1}) as response:
        assert response.status == 502
        body = await response.json()
    assert body["error"]["code"] == "upstream_error"
    assert sum(w.seen["POST /drop"] for w in workers) == 1


async def test_a_get_the_worker_dropped_is_retried_elsewhere_once_per_instance(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, strategy="round_robin", retries=2)
    async with client.get(url(balancer, "/drop")) as response:
        assert response.status == 502
    # Idempotent: tried on each of the three instances, never twice on one.
    assert [w.seen["GET /drop"] for w in workers] == [1, 1, 1]


async def test_post_refused_with_at_capacity_goes_to_another_instance(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    workers[0].at_capacity = True
    workers[1].at_capacity = True
    balancer = await start_lb(workers, strategy="round_robin")
    for _ in range(3):
        async with client.post(url(balancer, "/threads/t1/runs"), json={"a": 1}) as response:
            assert response.status == 200
            assert (await response.json())["worker"] == "c"


async def test_at_capacity_everywhere_is_a_503_with_retry_after(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    for fake in workers:
        fake.at_capacity = True
    balancer = await start_lb(workers)
    async with client.post(url(balancer, "/runs"), json={"a": 1}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "at_capacity"
    assert sum(w.seen["POST /runs"] for w in workers) == 3


async def test_requests_wait_for_capacity_then_get_a_503(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], default_max_capacity=1, queue_timeout_s=1.0)
    # Full for longer than the queue timeout: the waiting request gives up with a 503.
    holder = asyncio.create_task(client.post(url(balancer, "/runs/wait?s=3")))
    await eventually(lambda: workers[0].started == 1)
    async with client.post(url(balancer, "/runs"), json={}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "at_capacity"
    assert workers[0].seen["POST /runs"] == 0
    holder.cancel()
    await eventually(lambda: workers[0].active == 0)
    # Full for less than the queue timeout: the waiting request gets through.
    short = asyncio.create_task(client.post(url(balancer, "/runs/wait?s=0.2")))
    await eventually(lambda: workers[0].started == 2)
    async with client.post(url(balancer, "/runs"), json={}) as response:
        assert response.status == 200
    first = await short
    assert first.status == 200
    first.release()


async def test_requests_that_create_no_work_never_wait_for_capacity(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], default_max_capacity=1, queue_timeout_s=30.0)
    holder = asyncio.create_task(client.post(url(balancer, "/runs/wait?s=5")))
    await eventually(lambda: workers[0].started == 1)
    queued = asyncio.create_task(client.post(url(balancer, "/runs"), json={}))
    assert balancer.components is not None
    router = balancer.components.router
    await eventually(lambda: len(router.queue) == 1)
    # The one slot is taken and a run waits for it; a status poll, a join of the run being
    # served and a read of the thread go through at once, past the waiting request.
    for method, path in (
        ("GET", "/echo"),
        ("GET", "/threads/t1/runs/r1"),
        ("POST", "/echo"),
        ("GET", "/slow?s=0"),
    ):
        async with client.request(method, url(balancer, path)) as response:
            assert response.status == 200, path
    assert len(router.queue) == 1
    assert workers[0].seen["POST /runs"] == 0
    holder.cancel()
    response = await queued
    assert response.status == 200
    response.release()


async def test_queue_full_is_refused_at_once(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], default_max_capacity=1, queue_size=1, queue_timeout_s=5)
    holder = asyncio.create_task(client.post(url(balancer, "/runs/wait?s=0.5")))
    await eventually(lambda: workers[0].started == 1)
    queued = asyncio.create_task(client.post(url(balancer, "/runs"), json={}))
    assert balancer.components is not None
    proxy = balancer.components.router
    await eventually(lambda: len(proxy.queue) == 1)
    async with client.post(url(balancer, "/runs"), json={}) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "queue_full"
    for task in (holder, queued):
        response = await task
        assert response.status == 200
        response.release()


async def test_body_over_the_limit_is_413_and_never_reaches_a_worker(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], max_body_bytes=1000)
    async with client.post(url(balancer, "/upload"), data=b"x" * 1001) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "body_too_large"
    assert workers[0].seen["POST /upload"] == 0


async def test_chunked_body_over_the_limit_is_413(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], max_body_bytes=100_000)

    async def chunks() -> object:
        for _ in range(10):
            yield b"z" * 20_000

    async with client.post(url(balancer, "/upload"), data=chunks()) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "body_too_large"


async def test_headers_over_the_limit_are_431(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], max_header_bytes=4096)
    headers = {f"X-Big-{i}": "v" * 1000 for i in range(5)}
    async with client.get(url(balancer, "/echo"), headers=headers) as response:
        assert response.status == 431
        assert (await response.json())["error"]["code"] == "headers_too_large"
    assert workers[0].seen["GET /echo"] == 0


async def test_forwarding_headers(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    async with client.get(
        url(balancer, "/echo?q=1"),
        headers={
            "X-Request-ID": "req-123",
            "X-Forwarded-For": "10.0.0.1",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "hop-by-hop by Connection",
            "Keep-Alive": "timeout=5",
        },
    ) as response:
        assert response.status == 200
        seen = (await response.json())["headers"]
        assert response.headers["X-Request-ID"] == "req-123"
        assert response.headers["X-Fleet-Instance"].startswith("127.0.0.1_")
        assert response.headers["X-Custom"] == "yes"
        assert "X-Drop" not in response.headers  # named in the worker's Connection header
    assert seen["X-Request-ID"] == "req-123"
    # The client is not a trusted proxy: its X-Forwarded-For is replaced, not extended.
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == f"127.0.0.1:{balancer.proxy_port}"
    assert "X-Secret" not in seen
    assert "Keep-Alive" not in seen


async def test_a_request_id_is_created_when_missing(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1])
    async with client.get(url(balancer, "/echo")) as response:
        created = response.headers["X-Request-ID"]
        assert (await response.json())["headers"]["X-Request-ID"] == created
    assert len(created) == 32


async def test_thread_requests_stick_to_the_worker_that_ran_the_thread(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, strategy="round_robin")
    async with client.post(url(balancer, "/threads/t-42/runs"), json={}) as response:
        holder = (await response.json())["worker"]
    for _ in range(6):
        async with client.get(url(balancer, "/threads/t-42/runs/r1")) as response:
            assert (await response.json())["worker"] == holder
    # Unrelated requests still rotate.
    others = set()
    for _ in range(6):
        async with client.get(url(balancer, "/echo")) as response:
            others.add((await response.json())["worker"])
    assert others == {"a", "b", "c"}


@pytest.mark.parametrize("header", ["X-Thread-ID"])
async def test_thread_header_is_an_affinity_key(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession, header: str
) -> None:
    balancer = await start_lb(workers, strategy="round_robin")
    async with client.post(url(balancer, "/runs"), json={}) as response:
        # The worker's Content-Location named the new thread: the LB learned where it lives.
        holder = (await response.json())["worker"]
    for _ in range(5):
        async with client.get(url(balancer, "/echo"), headers={header: "t-new"}) as response:
            assert (await response.json())["worker"] == holder


async def test_unreachable_static_instance_never_becomes_routable(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    balancer = await start_lb(workers[:1], expect_routable=1, instances=f"{workers[0].url},{dead}")
    assert balancer.components is not None
    registry = balancer.components.registry
    await eventually(lambda: any(i.state == "unhealthy" for i in registry.snapshot.instances))
    async with client.get(url(balancer, "/echo")) as response:
        assert response.status == 200


async def test_a_worker_that_does_not_answer_in_time_is_a_504(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], first_byte_timeout_s=0.3)
    async with client.get(url(balancer, "/slow?s=5")) as response:
        assert response.status == 504
        assert (await response.json())["error"]["code"] == "upstream_timeout"
    # The worker's request was abandoned with its connection.
    await eventually(lambda: workers[0].cancelled == 1)
