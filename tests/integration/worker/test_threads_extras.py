"""Thread and run extras the oracle cannot show: the thread stream resumed after a
Last-Event-ID, bulk cancel by status, a batch refused whole, prune of a busy thread."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from langgraph_sdk.client import LangGraphClient

from common.contract import RUNS_STARTED_HEADER
from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually
from worker.keys import STORE
from worker.store.base import RunRecord

pytestmark = pytest.mark.integration


async def _post(worker: Worker, path: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(worker.url + path, json=body) as resp:
        text = await resp.text()
        return resp.status, (await resp.json()) if text else None


async def _thread_stream(
    sdk: LangGraphClient, thread_id: str, runs: int, last_event_id: str | None = None
) -> list[Any]:
    parts, done = [], 0
    async for part in await sdk.threads.join_stream(thread_id, last_event_id=last_event_id):
        parts.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            done += 1
            if done == runs:
                break
    return parts


async def test_thread_stream_resumes_after_last_event_id(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    first = await client.runs.create(
        thread_id, "pipeline", input={}, stream_mode=["updates"], after_seconds=1
    )
    whole = await _thread_stream(client, thread_id, runs=1)
    assert [p.event for p in whole] == ["metadata", "updates", "updates", "updates", "metadata"]
    assert whole[0].data == {"run_id": first["run_id"], "attempt": 1}
    second = await client.runs.create(thread_id, "pipeline", input={}, stream_mode=["updates"])
    await client.runs.join(thread_id, second["run_id"])
    # Resumed after the first run's first update: the rest of it, then the second run.
    rest = await _thread_stream(client, thread_id, runs=2, last_event_id=whole[1].id)
    assert [p.id for p in rest[:3]] == [p.id for p in whole[2:]]
    assert [p.event for p in rest[3:]] == ["metadata", "updates", "updates", "updates", "metadata"]
    assert rest[3].data["run_id"] == second["run_id"]


async def test_cancel_many_by_status(worker: Worker, client: LangGraphClient) -> None:
    threads = [(await client.threads.create())["thread_id"] for _ in range(2)]
    runs = [
        await client.runs.create(t, "pipeline", input={"delay_s": 10}, multitask_strategy="enqueue")
        for t in threads
    ]
    queued = await client.runs.create(threads[0], "pipeline", input={"delay_s": 10})
    await eventually(lambda: worker.manager.running == 2)
    assert await _post(worker, "/runs/cancel", {"status": "pending"}) == (204, None)
    assert (await client.runs.get(threads[0], queued["run_id"]))["status"] == "interrupted"
    assert worker.manager.running == 2  # the running ones go on
    assert await _post(worker, "/runs/cancel?action=rollback", {"status": "all"}) == (204, None)
    await eventually(lambda: worker.manager.load == 0)
    for thread_id, run in zip(threads, runs, strict=True):
        # Rolled back: the run is gone, as the official server deletes it.
        assert (await client.runs.list(thread_id, status="running")) == []
        assert run["run_id"] not in [r["run_id"] for r in await client.runs.list(thread_id)]
    bad = await _post(worker, "/runs/cancel?action=explode", {"status": "all"})
    assert bad[0] == 422


async def test_a_batch_with_a_bad_run_starts_none(worker: Worker, client: LangGraphClient) -> None:
    good = {"assistant_id": "pipeline", "input": {"delay_s": 10}}
    for body in ([good, {"assistant_id": "pipeline", "bogus": 1}], [], {"assistant_id": "x"}):
        status, answer = await _post(worker, "/runs/batch", body)
        assert status == 422
        assert "error" in answer
    # Items that parse but would be refused when made: the good one before each is not started.
    unknown = "00000000-0000-0000-0000-000000000000"
    refused = [
        ({**good, "assistant_id": unknown}, 404, "assistant_not_found"),
        ({**good, "webhook": "ftp://127.0.0.1/hook"}, 422, "invalid_webhook"),
        ({**good, "config": {"configurable": {"a": 1}}, "context": {"b": 2}}, 400, None),
    ]
    for bad, expected_status, code in refused:
        status, answer = await _post(worker, "/runs/batch", [good, bad])
        assert status == expected_status, answer
        if code is not None:
            assert answer["error"]["code"] == code
    assert worker.manager.load == 0
    assert await client.threads.search() == []  # no stateless run's thread was made either


async def test_a_batch_whose_write_fails_half_way_leaves_no_run(
    worker: Worker, client: LangGraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails after the checks passed (here the store, on the second run): the run
    already started is rolled back, so nothing of the batch is left."""
    store = worker.app[STORE]
    begin_run = store.begin_run
    calls = 0

    async def failing_second(record: RunRecord, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the store went away")
        await begin_run(record, **kwargs)

    monkeypatch.setattr(store, "begin_run", failing_second)
    runs = [{"assistant_id": "pipeline", "input": {"delay_s": 10}} for _ in range(3)]
    status, answer = await _post(worker, "/runs/batch", runs)
    assert status == 500
    assert answer["error"]["code"] == "internal"
    await eventually(lambda: worker.manager.load == 0, timeout_s=5)
    assert await client.threads.search() == []  # the first run's thread went with it


async def test_a_full_worker_refuses_a_batch_whole(make_worker: WorkerFactory) -> None:
    """A batch that does not fit gets 503 ``at_capacity`` with nothing started: the LB sends
    a 503 so marked to another worker, which must not start the same runs twice."""
    worker = await make_worker(max_concurrency=3)
    async with worker.client() as sdk:
        await sdk.runs.create(None, "pipeline", input={"delay_s": 10})
        await eventually(lambda: worker.manager.running == 1)
        runs = [{"assistant_id": "pipeline", "input": {"delay_s": 10}} for _ in range(3)]
        status, answer = await _post(worker, "/runs/batch", runs)
        assert status == 503
        assert answer["error"]["code"] == "at_capacity"
        assert worker.manager.load == 1
        assert len(await sdk.threads.search()) == 1  # only the first run's thread
        # Larger than the worker can ever hold: no point retrying anywhere.
        status, answer = await _post(worker, "/runs/batch", runs * 2)
        assert status == 422
        assert answer["error"]["code"] == "batch_too_large"
        # A batch that fits starts whole.
        status, answer = await _post(worker, "/runs/batch", runs[:2])
        assert status == 200
        assert len(answer) == 2
        assert worker.manager.load == 3


async def test_a_batch_tells_the_lb_how_many_runs_it_left_going(worker: Worker) -> None:
    body = [{"assistant_id": "pipeline", "input": {}} for _ in range(3)]
    async with (
        aiohttp.ClientSession() as http,
        http.post(worker.url + "/runs/batch", json=body) as response,
    ):
        assert response.status == 200
        assert len(await response.json()) == 3
        assert response.headers[RUNS_STARTED_HEADER] == "3"
    await eventually(lambda: worker.manager.load == 0)


async def test_prune_keep_latest_refuses_a_busy_thread(
    worker: Worker, client: LangGraphClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.create(thread_id, "pipeline", input={"delay_s": 10})
    await eventually(lambda: worker.manager.running == 1)
    body = {"thread_ids": [thread_id], "strategy": "keep_latest"}
    status, answer = await _post(worker, "/threads/prune", body)
    assert status == 409
    assert answer["error"]["code"] == "thread_busy"
    assert await _post(worker, "/threads/prune", {"thread_ids": [thread_id]}) == (
        200,
        {"pruned_count": 1},
    )
    assert worker.manager.load == 0
