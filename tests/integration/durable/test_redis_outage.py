"""Redis stopped mid-run: the run and the worker carry on without it (a private redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration
STEPS = ["extract", "transform", "load"]


@pytest.fixture
async def private_redis(
    tmp_path: Path, redis_server: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        redis_server,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    async def answers() -> bool:
        client = aioredis.Redis.from_url(url)
        try:
            return bool(await client.ping())
        except OSError:
            return False
        except aioredis.RedisError:
            return False
        finally:
            await client.aclose()

    try:
        await eventually(answers, timeout_s=10)
        yield url, proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_redis_stopped_mid_run_loses_no_run(
    make_worker: WorkerFactory,
    private_redis: tuple[str, asyncio.subprocess.Process],
    tmp_path: Path,
) -> None:
    url, redis_proc = private_redis
    worker = await make_worker(redis_url=url, store=f"sqlite:///{tmp_path}/w.sqlite")
    sdk = worker.client()
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(
            thread_id, "pipeline", input={"delay_s": 0.2}, stream_mode=["custom", "values"]
        )
        await eventually(lambda: worker.manager.running == 1)
        redis_proc.kill()
        await redis_proc.wait()
        # The run ends as if nothing happened, and its stream is still served from memory.
        assert (await sdk.runs.join(thread_id, run["run_id"]))["steps"] == STEPS
        assert (await sdk.runs.get(thread_id, run["run_id"]))["status"] == "success"
        parts = [p async for p in sdk.runs.join_stream(thread_id, run["run_id"])]
        assert [p.event for p in parts].count("custom") == 6
        # New runs go on too, without Redis.
        done = await sdk.runs.wait(thread_id, "pipeline", input={})
        assert isinstance(done, dict)
        assert done["steps"] == STEPS * 2
    finally:
        await sdk.aclose()
