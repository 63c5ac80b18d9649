"""Thread TTLs and the storage report through the official SDK, on a real worker, on both
stores: threads created or patched with a TTL are deleted (runs cancelled first) or pruned
by the worker's sweep, langgraph.json's ``checkpointer.ttl`` gives the default, and
``GET /threads/{id}/storage`` reports what the thread's checkpoints occupy.

TTLs here are fractions of a minute and the sweep runs every few milliseconds: the tests poll
with a deadline for what the sweep does.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually
from worker.settings import EXAMPLES_GRAPHS

pytestmark = pytest.mark.integration
FAST_SWEEP = {"thread_ttl_sweep_s": 0.05}
ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(params=["sqlite", "postgres"])
def store_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"store": request.getfixturevalue("pg_url")}


@pytest.fixture
async def worker(make_worker: WorkerFactory, store_options: dict[str, Any]) -> Worker:
    return await make_worker(**store_options, **FAST_SWEEP)


@pytest.fixture
async def client(worker: Worker) -> Any:
    sdk = worker.client()
    yield sdk
    await sdk.aclose()


async def _gone(client: LangGraphClient, thread_id: str) -> bool:
    try:
        await client.threads.get(thread_id)
    except NotFoundError:
        return True
    return False


async def test_a_thread_created_with_a_ttl_is_deleted_when_it_runs_out(
    client: LangGraphClient,
) -> None:
    kept = await client.threads.create()
    thread = await client.threads.create(ttl=0.02)  # minutes, as the SDK takes it
    thread_id = thread["thread_id"]
    shown = await client.threads.get(thread_id, include=["ttl"])
    assert shown["ttl"]["strategy"] == "delete"
    assert shown["ttl"]["ttl_minutes"] == 0.02
    assert shown["ttl"]["expires_at"] > shown["created_at"]
    assert "ttl" not in await client.threads.get(thread_id)
    assert "ttl" not in await client.threads.get(kept["thread_id"], include=["ttl"])
    run = await client.runs.wait(thread_id, "pipeline", input={})
    assert run["steps"] == ["extract", "transform", "load"]

    await eventually(lambda: _gone(client, thread_id), timeout_s=20)
    with pytest.raises(NotFoundError):
        await client.runs.list(thread_id)
    assert await client.threads.get(kept["thread_id"])


async def test_an_expiring_thread_has_its_run_cancelled_before_it_goes(
    worker: Worker, client: LangGraphClient
) -> None:
    thread_id = (await client.threads.create(ttl={"ttl": 0.01, "strategy": "delete"}))["thread_id"]
    run = await client.runs.create(thread_id, "pipeline", input={"delay_s": 30})
    await eventually(lambda: worker.manager.running == 1, timeout_s=10)
    await eventually(lambda: _gone(client, thread_id), timeout_s=20)
    await eventually(lambda: worker.manager.load == 0, timeout_s=10)
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])


async def test_keep_latest_prunes_the_history_and_keeps_the_thread(
    client: LangGraphClient,
) -> None:
    thread_id = (await client.threads.create(ttl={"ttl": 0.02, "strategy": "keep_latest"}))[
        "thread_id"
    ]
    for _ in range(2):
        await client.runs.wait(thread_id, "pipeline", input={})

    async def pruned() -> bool:
        return len(await client.threads.get_history(thread_id, limit=20)) == 1

    await eventually(pruned, timeout_s=20)
    state = await client.threads.get_state(thread_id)
    assert state["values"]["steps"] == ["extract", "transform", "load"] * 2
    shown = await client.threads.get(thread_id, include=["ttl"])
    assert shown["ttl"]["strategy"] == "keep_latest"
    # Disarmed until the next activity; a run re-arms it.
    assert shown["ttl"]["expires_at"] is None
    await client.runs.wait(thread_id, "pipeline", input={})
    rearmed = await client.threads.get(thread_id, include=["ttl"])
    assert rearmed["ttl"]["expires_at"] is not None


async def test_a_patch_gives_a_thread_a_ttl(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create(metadata={"a": 1}))["thread_id"]
    patched = await client.threads.update(thread_id, metadata={"b": 2}, ttl=0.01)
    assert patched["metadata"] == {"a": 1, "b": 2}
    assert "ttl" not in patched
    await eventually(lambda: _gone(client, thread_id), timeout_s=20)


async def test_langgraph_json_checkpointer_ttl_is_the_default(
    tmp_path: Path, make_worker: WorkerFactory, store_options: dict[str, Any]
) -> None:
    app_dir = tmp_path / "app"
    shutil.copytree(EXAMPLES_GRAPHS.parent, app_dir, ignore=shutil.ignore_patterns("__pycache__"))
    config = json.loads((app_dir / "langgraph.json").read_text())
    # The sweep interval comes from the file too (no WORKER_THREAD_TTL_SWEEP_S here).
    config["checkpointer"] = {"ttl": {"default_ttl": 0.01, "sweep_interval_minutes": 0.001}}
    (app_dir / "langgraph.json").write_text(json.dumps(config))
    worker = await make_worker(graphs=app_dir / "langgraph.json", **store_options)
    client = worker.client()
    try:
        thread_id = (await client.threads.create())["thread_id"]
        shown = await client.threads.get(thread_id, include=["ttl"])
        assert (shown["ttl"]["strategy"], shown["ttl"]["ttl_minutes"]) == ("delete", 0.01)
        own = await client.threads.create(ttl={"ttl": 60, "strategy": "keep_latest"})
        await eventually(lambda: _gone(client, thread_id), timeout_s=20)
        assert await client.threads.get(own["thread_id"])
    finally:
        await client.aclose()


async def _storage(worker: Worker, thread_id: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{worker.url}/threads/{thread_id}/storage") as response,
    ):
        return response.status, await response.json()


def _sections_add_up(report: dict[str, Any]) -> None:
    channels = report["channel_values"]
    assert channels["count"] == sum(c["versions"] for c in channels["by_channel"].values())
    assert channels["bytes"] == sum(c["bytes"] for c in channels["by_channel"].values())
    parts = (report["checkpoints"], channels, report["pending_writes"])
    assert report["total_bytes"] == sum(part["bytes"] for part in parts)


async def test_storage_reports_a_threads_checkpoints(
    worker: Worker, client: LangGraphClient
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    status, empty = await _storage(worker, thread_id)
    assert status == 200
    assert empty["total_bytes"] == 0
    assert empty["channel_values"]["by_channel"] == {}
    # Random, so that Postgres' compression cannot shrink it: sizes are as stored.
    payload = secrets.token_hex(10_000)
    await client.runs.wait(thread_id, "pipeline", input={"payload": payload})
    history = await client.threads.get_history(thread_id, limit=100)
    status, report = await _storage(worker, thread_id)
    assert status == 200
    assert report["thread_id"] == thread_id
    assert report["checkpoints"]["count"] == len(history)
    _sections_add_up(report)
    # The payload is stored with the checkpoints (inline or as a blob, by store), however
    # each store splits it among the sections.
    assert report["total_bytes"] > len(payload) * 3 // 4
    assert report["channel_values"]["by_channel"]["steps"]["versions"] >= 3
    assert report["pending_writes"]["count"] > 0
    assert (await _storage(worker, ZERO))[0] == 404
    assert (await _storage(worker, "not-a-uuid"))[0] == 422


async def test_sqlite_storage_adds_up_to_the_rows_as_stored(
    make_worker: WorkerFactory, tmp_path: Path
) -> None:
    path = tmp_path / "report.sqlite"
    worker = await make_worker(store=f"sqlite:///{path}")
    client = worker.client()
    try:
        thread_id = (await client.threads.create())["thread_id"]
        await client.runs.wait(thread_id, "pipeline", input={"payload": "y" * 5000})
    finally:
        await client.aclose()
    status, report = await _storage(worker, thread_id)
    assert status == 200
    async with aiosqlite.connect(path) as db:
        async with db.execute(
            "SELECT count(*), sum(length(checkpoint) + length(metadata)) FROM checkpoints "
            "WHERE thread_id = ?",
            (thread_id,),
        ) as cur:
            rows, row_bytes = await cur.fetchone()  # type: ignore[misc]
        async with db.execute(
            "SELECT count(*), sum(length(value)) FROM writes WHERE thread_id = ?", (thread_id,)
        ) as cur:
            writes, write_bytes = await cur.fetchone()  # type: ignore[misc]
    # Channel values live inside the checkpoint rows: the split adds up to them exactly.
    assert report["checkpoints"]["count"] == rows
    assert report["checkpoints"]["bytes"] + report["channel_values"]["bytes"] == row_bytes
    assert report["pending_writes"] == {"count": writes, "bytes": write_bytes}
    payload = report["channel_values"]["by_channel"]["payload"]
    assert payload["bytes"] >= 5000 * payload["versions"]
