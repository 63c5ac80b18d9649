"""Durable-state tests: real Postgres and Redis, in-process workers and ``python -m worker``.

Each test gets its own Postgres schema (dropped after) and its own Redis key prefix (its keys
deleted after), so tests can run again and never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.integration.worker.conftest import make_worker
from tests.support import eventually, free_port, fresh_schema
from worker.store import Store, create_store

__all__ = ["make_worker"]

ROOT = Path(__file__).resolve().parents[3]
COUNTING_GRAPHS = ROOT / "tests" / "graphs" / "langgraph.json"


@pytest.fixture
def pg_url(postgres_dsn: str) -> Iterator[str]:
    """A Postgres URL whose tables all land in a fresh schema of this test's own."""
    with fresh_schema(postgres_dsn) as url:
        yield url


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted after the test."""
    prefix = f"gftest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def read_steps(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@dataclass
class WorkerProcess:
    """A ``python -m worker`` subprocess on a loopback port."""

    proc: asyncio.subprocess.Process
    port: int
    instance_id: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)


ProcessFactory = Callable[..., Awaitable[WorkerProcess]]


@pytest.fixture
async def spawn_worker() -> AsyncIterator[ProcessFactory]:
    """Start ``python -m worker`` processes serving the counting graph; all killed after."""
    started: list[WorkerProcess] = []

    async def spawn(store: str, instance_id: str, **env: Any) -> WorkerProcess:
        port = free_port()
        environ = {
            **os.environ,
            "WORKER_PORT": str(port),
            "WORKER_INSTANCE_ID": instance_id,
            "WORKER_STORE": store,
            "WORKER_GRAPHS": str(COUNTING_GRAPHS),
            "WORKER_RUN_LEASE_S": "1",
            "WORKER_SWEEP_INTERVAL_S": "0.1",
            "WORKER_REMOTE_POLL_S": "0.1",
            "WORKER_KEEPALIVE_INTERVAL_S": "0.5",
            "WORKER_LOG_LEVEL": "warning",
            **{f"WORKER_{k.upper()}": str(v) for k, v in env.items()},
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", env=environ, cwd=ROOT
        )
        worker = WorkerProcess(proc, port, instance_id)
        started.append(worker)

        async def ready() -> bool:
            assert proc.returncode is None, "worker exited at start"
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{worker.url}/ok") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout_s=30, interval_s=0.1)
        return worker

    yield spawn
    for worker in started:
        worker.kill()
        await worker.proc.wait()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database for the test's workers or stores: a SQLite file, or a Postgres schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.sqlite"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store on the test's database."""
    opened = create_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, as two workers of a fleet have."""
    pair = (create_store(store_url), create_store(store_url))
    for store in pair:
        await store.open()
    yield pair
    await asyncio.gather(*(s.close() for s in pair))
