"""A cancel whose command cannot reach the run's holder is written to the run's record, and
the holder acts on it as asked (interrupt or rollback): a running run at its next lease
renewal, a run still waiting for its turn when it would start. And the call one worker makes
to another, refused when misaddressed.

Two workers share a SQLite file, no Redis. Worker B advertises an address where nothing
listens (a wildcard one, so no sweeper takes it for dead), so every command sent to it fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.support import eventually, free_port

pytestmark = pytest.mark.integration


async def _pair(
    make_worker: WorkerFactory, tmp_path: Path, **b_settings: Any
) -> tuple[Worker, Worker]:
    store = f"sqlite:///{tmp_path}/shared.sqlite"
    a = await make_worker(store=store, instance_id="a")
    b = await make_worker(
        store=store,
        instance_id="b",
        advertise_url=f"http://0.0.0.0:{free_port()}",
        **b_settings,
    )
    return a, b


@pytest.fixture
async def clients() -> AsyncIterator[list[LangGraphClient]]:
    made: list[LangGraphClient] = []
    yield made
    for client in made:
        await client.aclose()


def _sdk(worker: Worker, clients: list[LangGraphClient]) -> LangGraphClient:
    """A client of ``worker`` on its real port (B's advertised address is unreachable)."""
    client = get_client(url=f"http://127.0.0.1:{worker.settings.port}", api_key=None)
    clients.append(client)
    return client


async def test_a_running_run_stops_at_its_holders_next_lease_renewal(
    make_worker: WorkerFactory, tmp_path: Path, clients: list[LangGraphClient]
) -> None:
    a, b = await _pair(make_worker, tmp_path, run_lease_s=1.5)  # renewed every 0.5 s
    sdk_a, sdk_b = _sdk(a, clients), _sdk(b, clients)
    thread_id = (await sdk_b.threads.create())["thread_id"]
    run = await sdk_b.runs.create(thread_id, "pipeline", input={"delay_s": 30})
    await eventually(lambda: b.manager.running == 1)
    await sdk_a.runs.cancel(thread_id, run["run_id"])  # 202, not 409 run_held_elsewhere
    assert (await sdk_a.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    await eventually(lambda: b.manager.load == 0, timeout_s=5)
    await sdk_a.runs.join(thread_id, run["run_id"])
    assert (await sdk_a.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


async def test_a_rollback_on_record_undoes_the_run_at_its_holders_next_renewal(
    make_worker: WorkerFactory, tmp_path: Path, clients: list[LangGraphClient]
) -> None:
    a, b = await _pair(make_worker, tmp_path, run_lease_s=1.5)  # renewed every 0.5 s
    sdk_a, sdk_b = _sdk(a, clients), _sdk(b, clients)
    thread_id = (await sdk_b.threads.create())["thread_id"]
    first = await sdk_b.runs.create(thread_id, "pipeline", input={})
    await sdk_b.runs.join(thread_id, first["run_id"])
    before = await sdk_b.threads.get_state(thread_id)
    run = await sdk_b.runs.create(thread_id, "pipeline", input={"delay_s": 30})

    async def input_checkpointed() -> bool:  # what the rollback must undo
        return bool((await sdk_a.threads.get_state(thread_id))["values"].get("delay_s") == 30)

    await eventually(input_checkpointed)
    await sdk_a.runs.cancel(thread_id, run["run_id"], action="rollback")
    await eventually(lambda: b.manager.load == 0, timeout_s=5)
    # Undone: the run is forgotten and the thread is back to its state before it.
    assert [r["run_id"] for r in await sdk_a.runs.list(thread_id)] == [first["run_id"]]
    assert (await sdk_a.threads.get_state(thread_id))["values"] == before["values"]
    assert (await sdk_a.threads.get(thread_id))["status"] == "idle"


async def test_a_run_cancelled_while_it_waits_never_starts(
    make_worker: WorkerFactory, tmp_path: Path, clients: list[LangGraphClient]
) -> None:
    # A lease of 60 s: no renewal for 20 s, so only the refused start can end the run sooner.
    a, b = await _pair(make_worker, tmp_path, run_lease_s=60)
    sdk_a, sdk_b = _sdk(a, clients), _sdk(b, clients)
    thread_id = (await sdk_b.threads.create())["thread_id"]
    run = await sdk_b.runs.create(thread_id, "pipeline", input={}, after_seconds=1)
    await sdk_a.runs.cancel_many(status="pending")
    assert (await sdk_a.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    await eventually(lambda: b.manager.load == 0, timeout_s=10)
    assert (await sdk_a.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    assert (await sdk_a.threads.get_state(thread_id))["values"] == {}  # no step ran
    # Rolled back while it waits: it never starts, and is forgotten.
    await sdk_b.runs.create(thread_id, "pipeline", input={}, after_seconds=1)
    await sdk_a.runs.cancel_many(status="pending", action="rollback")
    await eventually(lambda: b.manager.load == 0, timeout_s=10)
    assert [r["run_id"] for r in await sdk_a.runs.list(thread_id)] == [run["run_id"]]
    assert (await sdk_a.threads.get_state(thread_id))["values"] == {}


async def test_the_stop_call_between_workers(make_worker: WorkerFactory) -> None:
    worker = await make_worker(instance_id="a")
    path = f"{worker.url}/fleet/runs/{uuid.uuid4()}/stop"
    cases: list[tuple[Any, int, Any]] = [
        ({"action": "interrupt", "holder": "a"}, 200, {"applied": False}),  # not running here
        ({"action": "interrupt", "holder": "b"}, 409, "wrong_worker"),  # meant for another
        ({"action": "explode", "holder": "a"}, 422, "invalid_request"),
        ({"action": "interrupt"}, 422, "invalid_request"),
        (b"{not json", 422, "invalid_json"),
    ]
    async with aiohttp.ClientSession() as http:
        for body, status, expected in cases:
            kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
            async with http.post(path, **kwargs) as response:
                answer = await response.json()
                assert response.status == status, (body, answer)
                assert answer == expected if status == 200 else answer["error"]["code"] == expected
        async with http.post(f"{worker.url}/fleet/runs/x/stop", json={}) as response:
            assert response.status == 422  # a run id is a UUID
