"""The store and crons through the real LB, in front of two workers sharing one store
(a SQLite file, or a Postgres schema): every worker sees every item, and a cron created
through the LB fires once although both workers tick."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.cron_support import once_at, soon
from tests.integration.durable.conftest import pg_url
from tests.integration.fleet.conftest import Fleet, balanced
from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration
MEMORY_GRAPHS = Path(__file__).resolve().parents[2] / "graphs" / "memory" / "langgraph.json"
__all__ = ["pg_url"]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fleet.sqlite"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def fleet(make_worker: WorkerFactory, tmp_path: Path, store_url: str) -> AsyncIterator[Fleet]:
    common = {"store": store_url, "graphs": MEMORY_GRAPHS, "cron_interval_s": 0.05}
    workers = [
        await make_worker(instance_id="a", **common),
        await make_worker(instance_id="b", **common),
    ]
    async with balanced(workers, tmp_path / "lb") as balancer:
        yield balancer, workers


async def test_every_worker_sees_every_item(sdk: LangGraphClient) -> None:
    for i in range(6):
        await sdk.store.put_item(["memories", "ada"], f"k{i}", {"text": f"fact {i}"})
    for _ in range(4):  # alternating workers: each answers with all six items
        found = await sdk.store.search_items(["memories", "ada"], limit=100)
        assert sorted(i["key"] for i in found["items"]) == [f"k{i}" for i in range(6)]
    # A graph on either worker recalls what was written through the other.
    for _ in range(2):
        result = await sdk.runs.wait(None, "remember", input={"user": "ada", "query": "fact"})
        assert isinstance(result, dict)
        assert len(result["recalled"]) == 6


async def test_a_cron_created_through_the_lb_fires_once(sdk: LangGraphClient) -> None:
    thread = await sdk.threads.create()
    due = soon(1)
    cron = await sdk.crons.create_for_thread(
        thread["thread_id"], "remember", schedule=once_at(due), input={"user": "x", "text": "t"}
    )

    async def advanced() -> bool:
        (current,) = await sdk.crons.search(thread_id=thread["thread_id"])
        return datetime.fromisoformat(current["next_run_date"]) > due

    await eventually(advanced, timeout_s=15)
    runs = await sdk.runs.list(thread["thread_id"])
    assert len(runs) == 1
    await sdk.runs.join(thread["thread_id"], runs[0]["run_id"])
    assert (await sdk.store.get_item(["memories", "x"], "t")) is not None
    assert cron["cron_id"] == (await sdk.crons.search(thread_id=thread["thread_id"]))[0]["cron_id"]
