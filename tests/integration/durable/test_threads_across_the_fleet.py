"""Two workers sharing Postgres and Redis, the real LB in front of the second one only: a
run created through the first worker is joined, streamed, cancelled and its history read
through the LB (so by the other worker), and its thread deleted while it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration
STEPS = ["extract", "transform", "load"]


@pytest.fixture
async def fleet(
    make_worker: WorkerFactory, pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Worker, Worker, LangGraphClient]]:
    """Workers ``a`` and ``b`` on one store, and an SDK client of an LB that knows only ``b``."""
    common: dict[str, Any] = {
        "store": pg_url,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "remote_poll_s": 0.05,
    }
    a = await make_worker(instance_id="a", **common)
    b = await make_worker(instance_id="b", **common)
    balancer = LoadBalancer(
        LBSettings(
            port=0,
            admin_port=0,
            instances=b.url,
            data_dir=tmp_path / "lb",
            health_interval_s=0.1,
            access_log=False,
        )
    )
    await balancer.start()
    assert balancer.components is not None
    registry = balancer.components.registry
    await eventually(lambda: len(registry.snapshot.routable) == 1)
    sdk = get_client(url=f"http://127.0.0.1:{balancer.proxy_port}", api_key=None)
    yield a, b, sdk
    await sdk.aclose()
    await balancer.stop()


async def test_a_run_of_one_worker_streamed_joined_cancelled_and_read_through_the_lb(
    fleet: tuple[Worker, Worker, LangGraphClient],
) -> None:
    a, b, lb = fleet
    sdk_a = a.client()
    try:
        thread_id = (await sdk_a.threads.create())["thread_id"]
        run = await sdk_a.runs.create(
            thread_id, "pipeline", input={"delay_s": 0.2}, stream_mode=["updates"]
        )
        parts = [p async for p in lb.runs.join_stream(thread_id, run["run_id"])]
        assert [p.event for p in parts] == ["metadata", "updates", "updates", "updates"]
        assert parts[0].data["run_id"] == run["run_id"]
        assert (await lb.runs.join(thread_id, run["run_id"]))["steps"] == STEPS
        history = await lb.threads.get_history(thread_id, limit=10)
        assert history[0]["values"]["steps"] == STEPS
        assert [h["next"] for h in history][:2] == [[], ["load"]]
        assert b.manager.load == 0  # b only read: the run was a's

        long = await sdk_a.runs.create(thread_id, "pipeline", input={"delay_s": 10})
        await eventually(lambda: a.manager.running == 1)
        await lb.runs.cancel(thread_id, long["run_id"])
        assert (await lb.runs.get(thread_id, long["run_id"]))["status"] == "interrupted"
        await lb.runs.join(thread_id, long["run_id"])
        await eventually(lambda: a.manager.load == 0)
        assert (await lb.runs.get(thread_id, long["run_id"]))["status"] == "interrupted"

        copied = await lb.threads.copy(thread_id)
        assert copied is not None
        assert (await lb.threads.get_state(copied["thread_id"]))["values"]["steps"] == STEPS

        # Deleting the thread through b cancels a's run first, then deletes: 204.
        await sdk_a.runs.create(thread_id, "pipeline", input={"delay_s": 10})
        await eventually(lambda: a.manager.running == 1)
        await lb.threads.delete(thread_id)
        assert a.manager.load == 0
        assert await lb.threads.search(ids=[thread_id]) == []
    finally:
        await sdk_a.aclose()
