"""The proxy's per-connection objects are freed by reference counting when a connection ends.

The LB makes full garbage collections rare (lb.gc_policy): anything of a finished exchange
that sits in a reference cycle would wait minutes for one, and thousands of streams a second
would pile up. Each test runs one kind of exchange with the automatic collector off, then
collects by hand and looks for objects of the LB among what only a collection could free.
"""

from __future__ import annotations

import collections
import gc
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
import pytest

from lb.app import LoadBalancer
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url
from tests.support import eventually


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cyclic_lb_garbage() -> collections.Counter[str]:
    """Objects of the LB's modules that only a garbage collection could free, by type."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return collections.Counter(
            type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("lb.")
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def all_closed(balancer: LoadBalancer) -> None:
    """Until the LB holds no client connection, no busy worker connection, nothing in flight."""
    parts, server = balancer.components, balancer.server
    assert parts is not None
    assert server is not None

    def settled() -> bool:
        instances = parts.registry.snapshot.instances
        busy = [c for p in parts.upstreams.pools for c in p.connections if c.in_use]
        return not server.connections and not busy and all(i.load.inflight == 0 for i in instances)

    await eventually(settled)


Exchange = Callable[[aiohttp.ClientSession, LoadBalancer], Awaitable[None]]


async def _sse_closed_by_the_client(client: aiohttp.ClientSession, lb: LoadBalancer) -> None:
    async with client.get(url(lb, "/sse?n=50&interval=0.05")) as response:
        await response.content.readline()
        response.close()


async def _sse_ended_by_the_worker(client: aiohttp.ClientSession, lb: LoadBalancer) -> None:
    async with client.get(url(lb, "/sse?n=3&interval=0.01")) as response:
        await response.read()


async def _keep_alive_requests(client: aiohttp.ClientSession, lb: LoadBalancer) -> None:
    for _ in range(5):
        async with client.post(url(lb, "/echo"), data=b"x" * 1000) as response:
            assert response.status == 200
            await response.read()


async def _worker_hangs_up(client: aiohttp.ClientSession, lb: LoadBalancer) -> None:
    async with client.post(url(lb, "/drop"), data=b"body") as response:
        assert response.status == 502
        await response.read()


async def _websocket(client: aiohttp.ClientSession, lb: LoadBalancer) -> None:
    async with client.ws_connect(url(lb, "/ws")) as ws:
        await ws.send_str("hi")
        assert await ws.receive_str() == "echo:hi"


@pytest.mark.parametrize(
    "exchange",
    [
        _sse_closed_by_the_client,
        _sse_ended_by_the_worker,
        _keep_alive_requests,
        _worker_hangs_up,
        _websocket,
    ],
)
@pytest.mark.usefixtures("collector_off")
async def test_a_finished_connection_leaves_no_cycle_behind(
    start_lb: StartLB, workers: list[FakeWorker], exchange: Exchange
) -> None:
    balancer = await start_lb(workers[:1])
    cyclic_lb_garbage()  # what start-up left, not this test's business
    async with aiohttp.ClientSession() as client:
        for _ in range(3):
            await exchange(client, balancer)
    await all_closed(balancer)
    assert cyclic_lb_garbage() == {}
