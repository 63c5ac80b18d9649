"""Routing through a real LB to real fake workers: strategies, load, failures, draining."""

from __future__ import annotations

import asyncio
import collections

import aiohttp
import pytest

from common.contract import RUNS_STARTED_HEADER
from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url
from tests.support import eventually


async def _spread(client: aiohttp.ClientSession, target: str, n: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        async with client.get(target) as response:
            assert response.status == 200
            seen[(await response.json())["worker"]] += 1
    return seen


@pytest.mark.parametrize(
    ("strategy", "low", "high"),
    [
        ("round_robin", 100, 100),  # an exact rotation
        ("least_loaded", 70, 130),  # sequential requests tie at zero load: random tie-break
        ("random", 70, 130),
        ("power_of_two", 70, 130),
    ],
)
async def test_each_strategy_spreads_sequential_requests_over_three_workers(
    start_lb: StartLB,
    workers: list[FakeWorker],
    client: aiohttp.ClientSession,
    strategy: str,
    low: int,
    high: int,
) -> None:
    balancer = await start_lb(workers, strategy=strategy)
    seen = await _spread(client, url(balancer, "/echo"), 300)
    assert set(seen) == {"a", "b", "c"}
    assert all(low <= count <= high for count in seen.values()), seen


async def test_weights_are_respected_by_round_robin(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, strategy="round_robin")
    assert balancer.components is not None
    balancer.components.registry.update(
        balancer.components.registry.snapshot.instances[0].id, weight=3
    )
    seen = await _spread(client, url(balancer, "/echo"), 250)
    assert seen == {"a": 150, "b": 50, "c": 50}


async def test_least_loaded_sends_new_work_to_the_idle_instance(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, strategy="least_loaded")
    slow_a, slow_b = workers[0], workers[1]
    # Hold two long requests; whichever workers got them, the third must get the next ones.
    holders = [asyncio.create_task(client.get(url(balancer, "/slow?s=3"))) for _ in range(2)]
    await eventually(lambda: slow_a.started + slow_b.started + workers[2].started == 2)
    busy = {w.name for w in workers if w.started}
    assert len(busy) == 2
    idle = ({"a", "b", "c"} - busy).pop()
    seen = await _spread(client, url(balancer, "/echo"), 10)
    assert seen == {idle: 10}
    for task in holders:
        response = await task
        assert response.status == 200
        response.release()


async def test_reported_background_load_steers_least_loaded(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    for fake in workers:
        fake.max_capacity = 10
    workers[0].current_load = 8
    workers[1].current_load = 5
    balancer = await start_lb(workers)
    assert balancer.components is not None
    registry = balancer.components.registry
    await eventually(lambda: sum(i.reported_load for i in registry.snapshot.instances) == 13)
    seen = await _spread(client, url(balancer, "/echo"), 20)
    assert seen == {"c": 20}


async def test_a_background_run_counts_as_load_until_a_health_check_says_it_ended(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    # One check at start, then none unless asked: the LB's own count is all it knows.
    balancer = await start_lb(workers[:2], strategy="least_loaded", health_interval_s=60)
    assert balancer.components is not None
    parts = balancer.components
    async with client.post(url(balancer, "/runs"), json={}) as response:
        assert response.status == 200
        holder = (await response.json())["worker"]
    other = ({"a", "b"} - {holder}).pop()

    # POST /runs answered at once, but its run goes on: new work goes to the other worker.
    assert await _spread(client, url(balancer, "/echo"), 10) == {other: 10}

    # The worker says it holds no run any more (current_load 0): both share work again.
    for instance in parts.registry.snapshot.instances:
        await parts.health.check(instance)
    seen = await _spread(client, url(balancer, "/echo"), 40)
    assert set(seen) == {"a", "b"}, seen


async def test_a_batch_counts_as_the_runs_it_started(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:1], health_interval_s=60)
    assert balancer.components is not None
    (instance,) = balancer.components.registry.snapshot.instances
    async with client.post(url(balancer, "/runs/batch"), json=[{}, {}, {}]) as response:
        assert response.status == 200
        assert len(await response.json()) == 3
        assert RUNS_STARTED_HEADER not in response.headers  # between the worker and the LB
    assert instance.load.background == 3
    async with client.post(url(balancer, "/runs"), json={}) as response:
        assert response.status == 200
    assert instance.load.background == 4


async def test_a_reported_run_the_lb_itself_waits_on_is_not_counted_twice(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers[:2], strategy="least_loaded", health_interval_s=60)
    assert balancer.components is not None
    parts = balancer.components
    holding = asyncio.create_task(client.post(url(balancer, "/runs/wait?s=0.5"), json={}))
    await eventually(lambda: workers[0].active + workers[1].active == 1)
    busy = next(w for w in workers[:2] if w.active)
    busy.current_load = 1  # the run the LB is waiting on, as the worker reports it
    instance = next(i for i in parts.registry.snapshot.instances if i.url == busy.url)
    await parts.health.check(instance)
    response = await holding
    assert response.status == 200
    response.release()
    await eventually(lambda: instance.load.inflight == 0)

    # The report is now stale (the run ended) and was never extra load: both share work.
    seen = await _spread(client, url(balancer, "/echo"), 40)
    assert set(seen) == {"a", "b"}, seen


async def test_a_killed_worker_stops_getting_traffic_and_no_get_fails(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, strategy="round_robin", health_fall=3)
    assert balancer.components is not None
    registry = balancer.components.registry
    victim = workers[1]
    victim_id = next(i.id for i in registry.snapshot.instances if i.url == victim.url)
    await victim.stop()
    seen: collections.Counter[str] = collections.Counter()
    # Every GET succeeds: connect errors are retried on another instance.
    for _ in range(60):
        async with client.get(url(balancer, "/echo")) as response:
            assert response.status == 200
            seen[(await response.json())["worker"]] += 1
    assert "b" not in seen
    # Active checks mark it unhealthy after `fall` failures (0.1 s apart).
    await eventually(lambda: registry.snapshot.by_id[victim_id].state == "unhealthy", 5.0)
    assert victim_id not in {i.id for i in registry.snapshot.routable}


async def test_a_worker_that_comes_back_is_used_again_after_rise_checks(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers, strategy="round_robin")
    assert balancer.components is not None
    registry = balancer.components.registry
    workers[2].health_status = 500
    await eventually(lambda: len(registry.snapshot.routable) == 2)
    assert "c" not in await _spread(client, url(balancer, "/echo"), 10)
    workers[2].health_status = 200
    await eventually(lambda: len(registry.snapshot.routable) == 3)
    assert (await _spread(client, url(balancer, "/echo"), 30))["c"] == 10


async def test_a_worker_answering_503_on_health_is_draining_and_gets_no_new_work(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(workers)
    assert balancer.components is not None
    registry = balancer.components.registry
    workers[0].health_status = 503
    await eventually(lambda: len(registry.snapshot.routable) == 2)
    drained = next(i for i in registry.snapshot.instances if i.url == workers[0].url)
    assert drained.state == "draining"
    assert "a" not in await _spread(client, url(balancer, "/echo"), 30)


async def test_passive_ejection_after_consecutive_5xx(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    balancer = await start_lb(
        workers[:2], strategy="round_robin", eject_consecutive_errors=3, eject_base_s=30
    )
    assert balancer.components is not None
    registry = balancer.components.registry
    bad_id = next(i.id for i in registry.snapshot.instances if i.url == workers[0].url)
    # /status/500 goes to both in turn; only worker a's streak matters once b answers 200s.
    statuses = []
    for _ in range(6):
        async with client.get(url(balancer, "/status/500")) as response:
            statuses.append(response.status)
    assert statuses == [500] * 6  # the worker's own 5xx reach the client unchanged
    await eventually(lambda: registry.snapshot.by_id[bad_id].ejected)
    # Never the whole fleet: the other one, just as failing, stays in.
    assert sum(i.ejected for i in registry.snapshot.instances) == 1
    seen = await _spread(client, url(balancer, "/echo"), 10)
    assert seen == {"b": 10}


async def test_no_healthy_instance_is_an_immediate_503_json(
    start_lb: StartLB, workers: list[FakeWorker], client: aiohttp.ClientSession
) -> None:
    for fake in workers:
        fake.health_status = 500
    balancer = await start_lb(workers, expect_routable=0)
    async with client.get(url(balancer, "/echo")) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        body = await response.json()
    assert body["error"]["code"] == "no_healthy_instances"
    assert body["error"]["message"]
    assert sum(w.seen["GET /echo"] for w in workers) == 0
