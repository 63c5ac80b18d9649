"""Assistants across a fleet: two workers sharing a store behind the real LB. An assistant
created through the LB (on whichever worker) is read and run by each worker, with its own
context and config; a patch made on one worker is what the other runs next."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from langgraph_sdk import get_client

from lb.app import LoadBalancer
from lb.settings import LBSettings
from tests.integration.worker.conftest import Worker, WorkerFactory
from tests.sql_log import SqlLog
from tests.support import eventually

pytestmark = pytest.mark.integration

GRAPHS = Path(__file__).resolve().parents[2] / "graphs" / "assistants" / "langgraph.json"
COUNTING = GRAPHS.parents[1] / "langgraph.json"


@pytest.fixture
async def fleet(
    make_worker: WorkerFactory, store_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, list[Worker]]]:
    workers = [await make_worker(store=store_url, graphs=GRAPHS) for _ in range(2)]
    balancer = LoadBalancer(
        LBSettings(
            port=0,
            admin_port=0,
            instances=",".join(w.url for w in workers),
            strategy="round_robin",
            data_dir=tmp_path / "lb",
            health_interval_s=0.1,
            access_log=False,
        )
    )
    await balancer.start()
    try:
        assert balancer.components is not None
        registry = balancer.components.registry
        await eventually(lambda: len(registry.snapshot.routable) == 2)
        yield f"http://127.0.0.1:{balancer.proxy_port}", workers
    finally:
        await balancer.stop()


async def test_an_assistant_made_through_the_lb_runs_on_every_worker(
    fleet: tuple[str, list[Worker]],
) -> None:
    lb_url, workers = fleet
    async with aiohttp.ClientSession() as http:
        body = {"graph_id": "greeter", "context": {"greeting": "ahoy"}, "name": "Pirate"}
        async with http.post(f"{lb_url}/assistants", json=body) as response:
            assert response.status == 200
            made_on = response.headers["X-Fleet-Instance"]
            assistant = await response.json()
    aid = assistant["assistant_id"]
    for worker in workers:
        async with worker.client() as sdk:
            assert await sdk.assistants.get(aid) == assistant
            # The run takes the assistant's context, and adds its own over it.
            out = await sdk.runs.wait(None, aid, input={"name": "bob"})
            assert isinstance(out, dict)
            assert out["answer"] == "ahoy bob!"
            out = await sdk.runs.wait(
                None, aid, input={"name": "bob"}, context={"punctuation": "?"}
            )
            assert isinstance(out, dict)
            assert out["answer"] == "ahoy bob?"

    # Patched on the worker that did not make it; the other one runs the new version.
    # The LB names the instance that answered: "127.0.0.1_PORT" for a static instance.
    (maker,) = [w for w in workers if made_on.endswith(f"_{w.settings.port}")]
    (other,) = [w for w in workers if w is not maker]
    async with other.client() as sdk:
        patched = await sdk.assistants.update(aid, context={"greeting": "yo"})
        assert patched["version"] == 2
    async with maker.client() as sdk:
        out = await sdk.runs.wait(None, aid, input={"name": "ann"})
        assert isinstance(out, dict)
        assert out["answer"] == "yo ann!"
        assert [v["version"] for v in await sdk.assistants.get_versions(aid)] == [2, 1]
    # Each worker runs the assistant as the store has it, though it keeps the last one it
    # read: back to version 1 on one, then deleted there, as the other sees at its next run.
    async with other.client() as sdk:
        await sdk.assistants.set_latest(aid, 1)
    async with maker.client() as sdk:
        out = await sdk.runs.wait(None, aid, input={"name": "ann"})
        assert isinstance(out, dict)
        assert out["answer"] == "ahoy ann!"
    async with other.client() as sdk:
        await sdk.assistants.set_latest(aid, 2)

    # Through the LB, round robin: every run, on either worker, uses the assistant.
    async with get_client(url=lb_url, api_key=None) as sdk:
        thread = await sdk.threads.create()
        for _ in range(2):
            out = await sdk.runs.wait(
                None, aid, input={"name": "cy"}, config={"configurable": {"model": "m"}}
            )
            assert isinstance(out, dict)
            assert (out["answer"], out["model"]) == ("yo cy!", "m")
        out = await sdk.runs.wait(thread["thread_id"], aid, input={"name": "di"})
        assert isinstance(out, dict)
        assert out["answer"] == "yo di!"
    async with other.client() as sdk:
        await sdk.assistants.delete(aid)
    async with maker.client() as sdk:
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await sdk.runs.wait(None, aid, input={"name": "ed"})
        assert refused.value.response.status_code == 404


def _assistant_reads(log: SqlLog) -> int:
    """Statements that read an assistant, not counting the check of a run's begin (on
    SQLite a ``SELECT 1`` of its own; on Postgres inside the begin's ``WITH``)."""
    return sum(
        1
        for sql in log.statements()
        if sql.startswith("SELECT")
        and "gf_assistants" in sql
        and not sql.startswith("SELECT 1 FROM gf_assistants")
    )


async def test_a_run_retried_for_a_changed_assistant_keeps_its_slot(
    make_worker: WorkerFactory, store_url: str, tmp_path: Path
) -> None:
    """A worker with room for one run, whose cached assistant another worker changed: its
    begin is refused, and the run is written again from the assistant as it is now, in the
    slot it already held: no 503 from its own first try, the worker full while it runs, and
    free once it ended."""
    log = SqlLog()
    single = await make_worker(store=store_url, graphs=COUNTING, max_concurrency=1, sql_trace=log)
    other = await make_worker(store=store_url, graphs=COUNTING)
    steps, gate = tmp_path / "steps.log", tmp_path / "gate"
    async with single.client() as sdk:
        assistant = await sdk.assistants.create("counting", metadata={"v": 1})
        aid = assistant["assistant_id"]
        await sdk.runs.wait(None, aid, input={"log": str(steps)})  # now in the worker's cache
    async with other.client() as sdk:
        await sdk.assistants.update(aid, metadata={"v": 2})
    async with single.client() as sdk:
        log.clear()
        thread = await sdk.threads.create()
        run = await sdk.runs.create(
            thread["thread_id"], aid, input={"log": str(steps), "gate": str(gate)}
        )
        # Read again only after the refusal.
        assert _assistant_reads(log) == 1, log.statements()
        await eventually(lambda: steps.read_text().count("first") == 2)
        assert single.manager.load == 1
        with pytest.raises(httpx.HTTPStatusError) as full:
            await sdk.runs.create(None, aid, input={"log": str(steps)})
        assert full.value.response.status_code == 503
        gate.touch()
        await sdk.runs.join(thread["thread_id"], run["run_id"])
        assert single.manager.load == 0
        log.clear()
        await sdk.runs.wait(None, aid, input={"log": str(steps)})
        assert _assistant_reads(log) == 0  # from the worker's cache
