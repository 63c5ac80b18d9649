"""The official LangGraph SDK against a real worker: assistants, threads, wait, stream."""

from __future__ import annotations

import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import UnprocessableEntityError

from worker.graphs import assistant_id_for

pytestmark = pytest.mark.integration


async def test_assistants_search_lists_one_assistant_per_graph(client: LangGraphClient) -> None:
    assistants = await client.assistants.search()
    by_graph = {a["graph_id"]: a for a in assistants}
    assert set(by_graph) == {"pipeline", "approval", "flaky"}
    assert by_graph["pipeline"]["assistant_id"] == assistant_id_for("pipeline")


async def test_assistant_get_takes_a_uuid_and_graph_takes_a_name(client: LangGraphClient) -> None:
    by_uuid = await client.assistants.get(assistant_id_for("approval"))
    assert by_uuid["graph_id"] == "approval"
    # As on the official server: only /graph also takes a graph name; elsewhere it is 422.
    with pytest.raises(UnprocessableEntityError, match="must be a UUID"):
        await client.assistants.get("approval")
    assert await client.assistants.get_graph("approval") == await client.assistants.get_graph(
        assistant_id_for("approval")
    )


async def test_runs_wait_returns_final_values(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "pipeline", input={"payload": 1})
    assert result["steps"] == ["extract", "transform", "load"]
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["steps"] == ["extract", "transform", "load"]
    assert state["next"] == []


async def test_runs_stream_events_in_order(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"], "pipeline", input={}, stream_mode=["updates", "custom"]
        )
    ]
    assert parts[0].event == "metadata"
    assert "run_id" in parts[0].data
    updates = [p.data for p in parts if p.event == "updates"]
    assert updates == [
        {"extract": {"steps": ["extract"]}},
        {"transform": {"steps": ["transform"]}},
        {"load": {"steps": ["load"]}},
    ]
    progress = [p.data["progress"] for p in parts if p.event == "custom"]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
