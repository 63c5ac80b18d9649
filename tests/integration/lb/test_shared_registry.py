"""Several LBs sharing one registry through a real Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis

from tests.fakes import FakeWorker
from tests.integration.lb.conftest import StartLB, url
from tests.integration.lb.processes import start_lb_process
from tests.support import eventually, free_port

TOKEN = "shared-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _ids(client: aiohttp.ClientSession, admin_port: int) -> dict[str, str]:
    async with client.get(
        f"http://127.0.0.1:{admin_port}/admin/instances", headers=AUTH
    ) as response:
        return {i["id"]: i["state"] for i in (await response.json())["instances"]}


@pytest.fixture
async def two_lb_processes(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[int, int]]:
    prefix = f"test:{uuid.uuid4().hex}"
    running = [
        await start_lb_process(
            tmp_path / name,
            admin_token=TOKEN,
            redis_url=redis_url,
            redis_key_prefix=prefix,
            health_interval_s="0.1",
        )
        for name in ("one", "two")
    ]
    for lb in running:
        await lb.wait_until("/health")
    yield running[0].admin_port, running[1].admin_port
    for lb in running:
        lb.process.terminate()
        await lb.process.wait()


async def test_two_lbs_see_each_others_registrations_drains_and_removals(
    two_lb_processes: tuple[int, int], workers: list[FakeWorker]
) -> None:
    one, two = two_lb_processes
    async with aiohttp.ClientSession() as client:
        async with client.post(
            f"http://127.0.0.1:{one}/admin/instances",
            json={"url": workers[0].url, "id": "w0"},
            headers=AUTH,
        ) as response:
            assert response.status == 201
        async with client.post(
            f"http://127.0.0.1:{two}/admin/instances",
            json={"url": workers[1].url, "id": "w1"},
            headers=AUTH,
        ) as response:
            assert response.status == 201
        # Each LB comes to know both (through Redis), and checks their health itself.
        for port in (one, two):

            async def both_healthy(port: int = port) -> bool:
                return await _ids(client, port) == {"w0": "healthy", "w1": "healthy"}

            await eventually(both_healthy, timeout_s=10)
        async with client.post(
            f"http://127.0.0.1:{one}/admin/instances/w1/drain", headers=AUTH
        ) as response:
            assert response.status == 200

        async def drained_on_two() -> bool:
            return (await _ids(client, two)).get("w1") == "draining"

        await eventually(drained_on_two, timeout_s=10)
        async with client.delete(
            f"http://127.0.0.1:{two}/admin/instances/w0", headers=AUTH
        ) as response:
            assert response.status == 202

        async def removed_on_one() -> bool:
            return "w0" not in await _ids(client, one)

        await eventually(removed_on_one, timeout_s=10)


@pytest.fixture
async def private_redis(
    tmp_path: Path,
) -> AsyncIterator[tuple[str, list[asyncio.subprocess.Process], Callable[[], Awaitable[None]]]]:
    """A Redis server of this test's own, so the test may stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is not installed and REQUIRE_SERVICES=1")
        pytest.skip("redis-server is not installed")
    port = free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    holder: list[asyncio.subprocess.Process] = []

    async def start() -> None:
        holder.append(
            await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL)
        )

    await start()
    yield f"redis://127.0.0.1:{port}/0", holder, start
    for process in holder:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_losing_redis_keeps_the_last_known_registry(
    private_redis: tuple[str, list[asyncio.subprocess.Process], Callable[[], Awaitable[None]]],
    start_lb: StartLB,
    workers: list[FakeWorker],
    client: aiohttp.ClientSession,
) -> None:
    redis_url, processes, restart = private_redis
    balancer = await start_lb([], admin_token=TOKEN, redis_url=redis_url)
    assert balancer.components is not None
    shared = balancer.components.redis_registry
    assert shared is not None
    await eventually(lambda: shared.connected)
    admin = f"http://127.0.0.1:{balancer.admin_port}"
    async with client.post(
        f"{admin}/admin/instances", json={"url": workers[0].url, "id": "w0"}, headers=AUTH
    ) as response:
        assert response.status == 201
    processes[0].kill()
    await processes[0].wait()
    await eventually(lambda: not shared.connected)
    # Still routing with what it knew, and still taking registrations.
    async with client.get(url(balancer, "/echo")) as response:
        assert response.status == 200
    async with client.post(
        f"{admin}/admin/instances", json={"url": workers[1].url, "id": "w1"}, headers=AUTH
    ) as response:
        assert response.status == 201
    assert set(await _ids(client, balancer.admin_port)) == {"w0", "w1"}
    # Redis comes back empty: this LB seeds it with everything it knows.
    await restart()
    await eventually(lambda: shared.connected, timeout_s=10)
    async with redis.from_url(redis_url) as direct:

        async def seeded() -> bool:
            keys = await direct.keys("graphfleet:lb:instances")
            return bool(keys) and set(await direct.hkeys(keys[0])) == {b"w0", b"w1"}

        await eventually(seeded)
