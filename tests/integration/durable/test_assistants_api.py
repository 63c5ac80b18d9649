"""The assistants API through the official SDK, on both stores: lifecycle, versions, search,
default assistants, what a graph looks like, and the errors (``detail`` and ``error``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.integration.worker.conftest import Worker, WorkerFactory
from worker.graphs import assistant_id_for

pytestmark = pytest.mark.integration

GRAPHS = Path(__file__).resolve().parents[2] / "graphs" / "assistants" / "langgraph.json"


@pytest.fixture
async def worker(make_worker: WorkerFactory, store_url: str) -> Worker:
    return await make_worker(store=store_url, graphs=GRAPHS)


@pytest.fixture
async def client(worker: Worker) -> AsyncIterator[LangGraphClient]:
    sdk = worker.client()
    yield sdk
    await sdk.aclose()


async def test_assistant_lifecycle(client: LangGraphClient) -> None:
    made = await client.assistants.create(
        "greeter",
        context={"greeting": "hi"},
        metadata={"team": "red"},
        name="Red greeter",
        description="says hi",
    )
    assert made["graph_id"] == "greeter"
    assert made["config"] == {"configurable": {"greeting": "hi"}}
    assert (made["context"], made["version"], made["name"]) == (
        {"greeting": "hi"},
        1,
        "Red greeter",
    )
    aid = made["assistant_id"]
    assert await client.assistants.get(aid) == made
    with pytest.raises(ConflictError):
        await client.assistants.create("greeter", assistant_id=aid)
    same = await client.assistants.create("greeter", assistant_id=aid, if_exists="do_nothing")
    assert same == made

    patched = await client.assistants.update(aid, metadata={"tier": 2}, context={"greeting": "yo"})
    assert patched["version"] == 2
    assert patched["metadata"] == {"team": "red", "tier": 2}
    assert patched["context"] == {"greeting": "yo"}
    assert patched["name"] == "Red greeter"
    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [2, 1]
    assert "updated_at" not in versions[0]
    back = await client.assistants.set_latest(aid, 1)
    assert (back["version"], back["context"], back["metadata"]) == (
        1,
        {"greeting": "hi"},
        {"team": "red"},
    )
    assert (await client.assistants.get(aid))["version"] == 1

    # Deleting it with delete_threads deletes the threads its runs used, and only those.
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], aid, input={"name": "x"})
    other = await client.threads.create()
    await client.runs.wait(other["thread_id"], "greeter", input={"name": "y"})
    await client.assistants.delete(aid, delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread["thread_id"])
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(aid)


async def test_search_and_count(client: LangGraphClient) -> None:
    for name, team in (("Alpha", "red"), ("beta", "blue"), ("Gamma", "red")):
        await client.assistants.create("greeter", name=name, metadata={"team": team})
    red = await client.assistants.search(metadata={"team": "red"}, sort_by="name", sort_order="asc")
    assert [a["name"] for a in red] == ["Alpha", "Gamma"]
    defaults = await client.assistants.search(metadata={"created_by": "system"})
    assert {a["graph_id"] for a in defaults} == {"greeter", "nested"}
    assert {a["assistant_id"] for a in defaults} == {
        assistant_id_for("greeter"),
        assistant_id_for("nested"),
    }
    names = await client.assistants.search(name="A", graph_id="greeter", select=["name"])
    assert sorted(a["name"] for a in names) == ["Alpha", "Gamma", "beta"]
    assert all(set(a) == {"name"} for a in names)
    page = await client.assistants.search(limit=2, offset=1, sort_by="created_at")
    assert len(page) == 2
    assert await client.assistants.count() == 5
    assert await client.assistants.count(metadata={"team": "red"}) == 2
    assert await client.assistants.count(graph_id="nested") == 1
    with pytest.raises(NotFoundError):
        await client.assistants.search(graph_id="no-such-graph")


async def test_default_assistants_are_made_once_by_every_worker(
    make_worker: WorkerFactory, worker: Worker, client: LangGraphClient
) -> None:
    first = await client.assistants.get(assistant_id_for("greeter"))
    assert first["metadata"] == {"created_by": "system"}
    assert (first["name"], first["version"], first["config"], first["context"]) == (
        "greeter",
        1,
        {},
        {},
    )
    again = await make_worker(store=worker.settings.store, graphs=GRAPHS)
    async with again.client() as other:
        assert await other.assistants.get(assistant_id_for("greeter")) == first
        assert await other.assistants.count() == 2


async def test_graph_subgraphs_and_schemas(client: LangGraphClient) -> None:
    drawn = await client.assistants.get_graph("greeter")
    assert {n["id"] for n in drawn["nodes"]} == {"__start__", "greet", "__end__"}
    assert all(
        "id" not in (n.get("data") or {}) for n in drawn["nodes"] if isinstance(n.get("data"), dict)
    )
    deep = await client.assistants.get_graph(assistant_id_for("nested"), xray=True)
    assert "inner:greet" in {n["id"] for n in deep["nodes"]}
    schemas = await client.assistants.get_schemas(assistant_id_for("greeter"))
    assert schemas["graph_id"] == "greeter"
    assert set(schemas["context_schema"]["properties"]) == {"greeting", "punctuation"}
    assert set(schemas["state_schema"]["properties"]) == {"name", "answer", "model"}
    assert schemas["input_schema"] is not None
    subgraphs = await client.assistants.get_subgraphs(assistant_id_for("nested"))
    assert set(subgraphs) == {"inner"}
    assert set(subgraphs["inner"]) >= {"input_schema", "state_schema", "context_schema"}
    only = await client.assistants.get_subgraphs(assistant_id_for("nested"), namespace="inner")
    assert set(only) == {"inner"}
    assert await client.assistants.get_subgraphs(assistant_id_for("greeter")) == {}


async def test_errors_carry_detail_and_error(worker: Worker) -> None:
    unknown = str(uuid.uuid4())
    cases = [
        ("GET", "/assistants/not-a-uuid", None, 422, "invalid_id"),
        ("GET", f"/assistants/{unknown}", None, 404, "assistant_not_found"),
        ("PATCH", f"/assistants/{unknown}", {"name": "x"}, 404, "assistant_not_found"),
        ("POST", f"/assistants/{unknown}/latest", {"version": 1}, 404, "assistant_not_found"),
        ("POST", "/assistants", {"name": "no graph"}, 422, "invalid_request"),
        ("POST", "/assistants", {"graph_id": "missing"}, 404, "graph_not_found"),
        ("POST", "/assistants", {"graph_id": "greeter", "assistant_id": "x"}, 422, "invalid_id"),
        (
            "POST",
            "/assistants",
            {"graph_id": "greeter", "config": {"configurable": {"a": 1}}, "context": {"a": 2}},
            400,
            "config_and_context",
        ),
        (
            "PATCH",
            f"/assistants/{unknown}",
            {"config": {"configurable": {"a": 1}}, "context": {"a": 2}},
            400,
            "config_and_context",
        ),
        ("POST", "/assistants/search", {"limit": 0}, 422, "invalid_request"),
        ("POST", "/assistants/search", {"sort_by": "colour"}, 422, "invalid_request"),
        (
            "GET",
            f"/assistants/{assistant_id_for('greeter')}/graph?xray=-1",
            None,
            422,
            "invalid_request",
        ),
    ]
    async with aiohttp.ClientSession(base_url=worker.url) as http:
        for method, path, body, status, code in cases:
            async with http.request(method, path, json=body) as response:
                assert response.status == status, (method, path)
                payload = await response.json()
                assert payload["error"]["code"] == code, (method, path)
                assert payload["detail"] == payload["error"]["message"]
        async with http.post("/assistants", data=b"{oops") as response:
            assert response.status == 422
            assert (await response.json())["error"]["code"] == "invalid_json"


async def test_sdk_maps_malformed_ids_to_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError, match="must be a UUID"):
        await client.assistants.get("greeter")
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.update("greeter", name="x")
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.delete("greeter")


async def test_crons_take_custom_assistants_and_go_with_them(client: LangGraphClient) -> None:
    made = await client.assistants.create("greeter", context={"greeting": "hi"})
    aid = made["assistant_id"]
    cron = await client.crons.create(aid, schedule="0 0 1 1 *", input={"name": "x"})
    assert cron["assistant_id"] == aid
    by_graph = await client.crons.create("greeter", schedule="0 0 1 1 *")
    assert by_graph["assistant_id"] == assistant_id_for("greeter")
    assert [c["cron_id"] for c in await client.crons.search(assistant_id=aid)] == [cron["cron_id"]]
    await client.assistants.delete(aid)
    assert await client.crons.search(assistant_id=aid) == []
    # Another assistant's cron stays.
    kept = await client.crons.search(assistant_id=assistant_id_for("greeter"))
    assert [c["cron_id"] for c in kept] == [by_graph["cron_id"]]
