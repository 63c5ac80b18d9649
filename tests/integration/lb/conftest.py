"""Fixtures for load balancer tests: fake workers and an in-process LB, all on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.fakes import FakeWorker
from tests.support import eventually


@pytest.fixture
async def workers() -> AsyncIterator[list[FakeWorker]]:
    fakes = [await FakeWorker(name).start() for name in ("a", "b", "c")]
    yield fakes
    for fake in fakes:
        await fake.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


StartLB = Callable[..., Awaitable[LoadBalancer]]


@pytest.fixture
async def start_lb(tmp_path: Path) -> AsyncIterator[StartLB]:
    """Start an LB in this process with fast health checks; waits until every instance is up."""
    started: list[LoadBalancer] = []

    async def start(
        fakes: list[FakeWorker], expect_routable: int | None = None, **overrides: Any
    ) -> LoadBalancer:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "admin_port": 0,
            "instances": ",".join(w.url for w in fakes),
            "health_interval_s": 0.1,
            "health_timeout_s": 0.5,
            "access_log": False,
            "shutdown_timeout_s": 2.0,
            "data_dir": tmp_path / "lb",
        }
        options.update(overrides)
        balancer = LoadBalancer(LBSettings(**options))
        await balancer.start()
        started.append(balancer)
        assert balancer.components is not None
        registry = balancer.components.registry
        expected = len(fakes) if expect_routable is None else expect_routable
        await eventually(lambda: len(registry.snapshot.routable) >= expected)
        return balancer

    yield start
    for balancer in started:
        await balancer.stop()
        assert balancer.components is not None
        leaked = {i.id: i.load.inflight for i in balancer.components.registry.snapshot.instances}
        assert all(v == 0 for v in leaked.values()), f"in-flight counters leaked: {leaked}"
    # Every task the LB starts is named lb-*; none may outlive stop().
    tasks = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("lb-")]
    assert not tasks, f"tasks left behind: {tasks}"


def url(balancer: LoadBalancer, path: str) -> str:
    return f"http://127.0.0.1:{balancer.proxy_port}{path}"
