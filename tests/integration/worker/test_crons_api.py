"""Crons through the official SDK and raw HTTP: every endpoint, bad input, and firing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.cron_support import once_at, soon
from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually

pytestmark = pytest.mark.integration
CRON_KEYS = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "end_time",
    "schedule",
    "timezone",
    "payload",
    "next_run_date",
    "metadata",
    "on_run_completed",
    "enabled",
    "created_at",
    "updated_at",
}


@pytest.fixture
async def worker(make_worker: WorkerFactory) -> Worker:
    return await make_worker(cron_interval_s=0.05)


@pytest.fixture
async def client(worker: Worker) -> Any:
    sdk = worker.client()
    yield sdk
    await sdk.aclose()


async def _call(worker: Worker, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, worker.url + path, json=body) as response,
    ):
        text = await response.text()
        return response.status, (await response.json() if text.strip() else None)


async def test_create_get_search_count_patch_delete(client: LangGraphClient) -> None:
    cron = await client.crons.create(
        "pipeline",
        schedule="0 9 * * *",
        input={"delay_s": 0},
        metadata={"team": "a"},
        timezone="Europe/Paris",
    )
    assert set(cron) == CRON_KEYS
    assert (cron["thread_id"], cron["on_run_completed"], cron["enabled"]) == (None, "delete", True)
    assert cron["payload"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    next_run = datetime.fromisoformat(cron["next_run_date"])
    assert next_run.astimezone(UTC).hour in (7, 8)  # 9 am in Paris
    thread = await client.threads.create()
    on_thread = await client.crons.create_for_thread(
        thread["thread_id"], "pipeline", schedule="*/5 * * * *"
    )
    assert on_thread["thread_id"] == thread["thread_id"]
    assert on_thread["on_run_completed"] is None
    got = await client.crons.search(thread_id=thread["thread_id"])
    assert [c["cron_id"] for c in got] == [on_thread["cron_id"]]
    assert len(await client.crons.search()) == 2
    assert await client.crons.count() == 2
    assert await client.crons.count(metadata={"team": "a"}) == 1
    selected = await client.crons.search(select=["cron_id", "schedule"], limit=1)
    assert set(selected[0]) == {"cron_id", "schedule"}
    patched = await client.crons.update(cron["cron_id"], schedule="0 10 * * *", enabled=False)
    assert (patched["schedule"], patched["enabled"]) == ("0 10 * * *", False)
    assert patched["next_run_date"] != cron["next_run_date"]
    await client.crons.delete(cron["cron_id"])
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])
    assert await client.crons.count() == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/runs/crons", {"assistant_id": "pipeline", "schedule": "bad"}, 422),
        ("POST", "/runs/crons", {"assistant_id": "pipeline", "schedule": "61 * * * *"}, 422),
        ("POST", "/runs/crons", {"assistant_id": "pipeline"}, 422),
        ("POST", "/runs/crons", {"schedule": "* * * * *"}, 422),
        (
            "POST",
            "/runs/crons",
            {"assistant_id": "pipeline", "schedule": "* * * * *", "timezone": "Mars/Base"},
            422,
        ),
        ("POST", "/runs/crons", {"assistant_id": "nope", "schedule": "* * * * *"}, 404),
        (
            "POST",
            f"/threads/{uuid.uuid4()}/runs/crons",
            {"assistant_id": "pipeline", "schedule": "* * * * *"},
            404,
        ),
        (
            "POST",
            "/threads/not-a-uuid/runs/crons",
            {"assistant_id": "pipeline", "schedule": "* * * * *"},
            422,
        ),
        ("GET", "/runs/crons/not-a-uuid", None, 422),
        ("GET", f"/runs/crons/{uuid.uuid4()}", None, 404),
        ("PATCH", f"/runs/crons/{uuid.uuid4()}", {"enabled": False}, 404),
        ("PATCH", f"/runs/crons/{uuid.uuid4()}", {}, 400),
        ("DELETE", "/runs/crons/not-a-uuid", None, 422),
        ("POST", "/runs/crons/search", {"assistant_id": "not-a-uuid"}, 422),
        ("POST", "/runs/crons/search", {"limit": 0}, 422),
        ("POST", "/runs/crons/search", {"sort_by": "schedule"}, 422),
        ("POST", "/runs/crons/search", {"select": ["nope"]}, 422),
        ("POST", "/runs/crons/count", {"thread_id": "x"}, 422),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(
    worker: Worker, method: str, path: str, body: Any, status: int
) -> None:
    got, answer = await _call(worker, method, path, body)
    assert got == status
    assert "Traceback" not in str(answer)
    assert await _call(worker, "POST", "/runs/crons/count", {}) == (200, 0)


async def test_an_empty_patch_of_a_cron_is_400(client: LangGraphClient, worker: Worker) -> None:
    cron = await client.crons.create("pipeline", schedule="0 9 * * *")
    assert (await _call(worker, "PATCH", f"/runs/crons/{cron['cron_id']}", {}))[0] == 400
    assert (await _call(worker, "PATCH", f"/runs/crons/{cron['cron_id']}", None))[0] == 400
    status, _ = await _call(worker, "PATCH", f"/runs/crons/{cron['cron_id']}", {"schedule": "x"})
    assert status == 422
    assert (await client.crons.search())[0]["schedule"] == "0 9 * * *"


async def test_a_thread_cron_fires_a_run_on_its_thread(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    due = soon(1)
    cron = await client.crons.create_for_thread(
        thread["thread_id"],
        "pipeline",
        schedule=once_at(due),
        input={"delay_s": 0},
        metadata={"origin": "cron"},
    )
    assert datetime.fromisoformat(cron["next_run_date"]) == due

    async def advanced() -> bool:
        current = (await client.crons.search())[0]
        return datetime.fromisoformat(current["next_run_date"]) > due

    await eventually(advanced, timeout_s=15)
    runs = await client.runs.list(thread["thread_id"])
    assert len(runs) == 1
    assert runs[0]["metadata"]["origin"] == "cron"
    result = await client.runs.join(thread["thread_id"], runs[0]["run_id"])
    assert result["steps"] == ["extract", "transform", "load"]


async def test_a_stateless_cron_runs_on_a_new_thread_kept_when_asked(
    client: LangGraphClient, worker: Worker
) -> None:
    due = soon(1)
    status, cron = await _call(
        worker,
        "POST",
        "/runs/crons",
        {
            "assistant_id": "pipeline",
            "schedule": once_at(due),
            "input": {"delay_s": 0},
            "metadata": {"kind": "kept"},
            "on_run_completed": "keep",
        },
    )
    assert (status, cron["on_run_completed"]) == (200, "keep")

    async def ran() -> bool:
        threads = await client.threads.search()
        if not threads:
            return False
        runs = await client.runs.list(threads[0]["thread_id"])
        return bool(runs) and runs[0]["status"] == "success"

    await eventually(ran, timeout_s=15)
    (thread,) = await client.threads.search()
    (run,) = await client.runs.list(thread["thread_id"])
    assert run["metadata"]["kind"] == "kept"
    assert (await client.threads.get_state(thread["thread_id"]))["values"]["steps"] == [
        "extract",
        "transform",
        "load",
    ]


async def test_a_cron_may_name_an_assistant_created_through_the_api(
    client: LangGraphClient,
) -> None:
    assistant = await client.assistants.create(graph_id="pipeline", name="nightly")
    thread = await client.threads.create()
    due = soon(1)
    cron = await client.crons.create_for_thread(
        thread["thread_id"], assistant["assistant_id"], schedule=once_at(due), input={}
    )
    assert cron["assistant_id"] == assistant["assistant_id"]

    async def ran() -> bool:
        runs = await client.runs.list(thread["thread_id"])
        return bool(runs) and runs[0]["status"] == "success"

    await eventually(ran, timeout_s=15)
    (run,) = await client.runs.list(thread["thread_id"])
    assert run["assistant_id"] == assistant["assistant_id"]
