"""Crons across a fleet: each firing happens on exactly one worker, also when a worker is
killed -9 around the due time, and a cron outlives every worker that knew it. (Two live
workers firing once: ``tests/integration/fleet/test_store_and_crons_through_lb.py``.)

Workers share one store (SQLite file or Postgres schema), tick every 0.1 s and hold a claim
1 s, so a dead claimant delays a firing briefly; the kill -9 case uses ``python -m worker``
processes.
The cron falls due once (``once_at``); a test waits until the cron has advanced past its
due time (no second firing is possible after that) and counts the runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cron_support import once_at, soon
from tests.graphs.counting import STEPS
from tests.integration.durable.conftest import COUNTING_GRAPHS, ProcessFactory, read_steps
from tests.integration.worker.conftest import WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration
FAST_CRONS: dict[str, Any] = {"cron_interval_s": 0.1, "cron_claim_s": 1}


async def _json(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with http.request(method, url, json=body) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def _thread_cron(http: aiohttp.ClientSession, url: str, due: datetime, log: Path) -> Any:
    """A cron on a new thread, due once at ``due``, whose run records its steps in ``log``."""
    thread = await _json(http, "POST", f"{url}/threads", {})
    cron = await _json(
        http,
        "POST",
        f"{url}/threads/{thread['thread_id']}/runs/crons",
        {"assistant_id": "counting", "schedule": once_at(due), "input": {"log": str(log)}},
    )
    return thread["thread_id"], cron["cron_id"]


async def _fired_once(
    http: aiohttp.ClientSession, url: str, thread_id: str, cron_id: str, due: datetime, log: Path
) -> None:
    async def advanced() -> bool:
        cron = await _json(http, "GET", f"{url}/runs/crons/{cron_id}")
        return datetime.fromisoformat(cron["next_run_date"]) > due

    await eventually(advanced, timeout_s=30, interval_s=0.1)
    runs = await _json(http, "GET", f"{url}/threads/{thread_id}/runs")
    assert len(runs) == 1, runs

    async def done() -> bool:
        (run,) = await _json(http, "GET", f"{url}/threads/{thread_id}/runs")
        return bool(run["status"] == "success")

    await eventually(done, timeout_s=30, interval_s=0.1)
    assert read_steps(log) == list(STEPS)  # the graph ran once: each step recorded once


async def test_a_worker_killed_at_the_due_time_never_doubles_nor_loses_the_firing(
    spawn_worker: ProcessFactory, store_url: str, tmp_path: Path
) -> None:
    a = await spawn_worker(store_url, "a", **FAST_CRONS)
    b = await spawn_worker(store_url, "b", **FAST_CRONS)
    async with aiohttp.ClientSession() as http:
        due = soon(1)
        thread_id, cron_id = await _thread_cron(http, a.url, due, tmp_path / "steps.log")
        # Kill a as the cron falls due: it may have claimed it, created the run, or neither.
        await eventually(lambda: datetime.now(UTC) >= due, timeout_s=10, interval_s=0.01)
        a.kill()
        await a.proc.wait()
        await _fired_once(http, b.url, thread_id, cron_id, due, tmp_path / "steps.log")


async def test_a_cron_outlives_every_worker_that_knew_it(
    make_worker: WorkerFactory, store_url: str, tmp_path: Path
) -> None:
    a = await make_worker(store=store_url, graphs=COUNTING_GRAPHS, **FAST_CRONS)
    async with aiohttp.ClientSession() as http:
        due = soon(2)
        thread_id, cron_id = await _thread_cron(http, a.url, due, tmp_path / "steps.log")
        # The only worker that knew the cron stops before it falls due; a new one fires it.
        await a.runner.cleanup()
        b = await make_worker(store=store_url, graphs=COUNTING_GRAPHS, **FAST_CRONS)
        await _fired_once(http, b.url, thread_id, cron_id, due, tmp_path / "steps.log")
