"""A user's own langgraph.json: file and module specs, factories, and message streaming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.worker.conftest import WorkerFactory

pytestmark = pytest.mark.integration

CHAT_GRAPH = """
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph


def reply(state: MessagesState) -> dict:
    return {"messages": [AIMessage(content="echo: " + state["messages"][-1].content, id="m1")]}


def make_graph():
    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile()
"""


@pytest.fixture
def user_graphs(tmp_path: Path) -> Path:
    (tmp_path / "chat.py").write_text(CHAT_GRAPH)
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {
                    "chat": "./chat.py:make_graph",
                    "pipeline": "worker.examples.pipeline:graph",
                }
            }
        )
    )
    return config


async def test_factory_and_module_specs_are_served_with_messages(
    make_worker: WorkerFactory, user_graphs: Path
) -> None:
    worker = await make_worker(graphs=user_graphs)
    sdk = worker.client()
    try:
        assert {a["graph_id"] for a in await sdk.assistants.search()} == {"chat", "pipeline"}
        thread = await sdk.threads.create()
        parts = [
            p
            async for p in sdk.runs.stream(
                thread["thread_id"],
                "chat",
                input={"messages": [{"role": "user", "content": "hi"}]},
                stream_mode=["messages-tuple", "messages"],
            )
        ]
        tuples = [p.data for p in parts if p.event == "messages"]
        assert tuples, [p.event for p in parts]
        message, metadata = tuples[0]
        assert message["content"] == "echo: hi"
        assert metadata["langgraph_node"] == "reply"
        assert any(p.event == "messages/metadata" for p in parts)
        partial = [p.data for p in parts if p.event == "messages/partial"]
        assert partial[-1][0]["content"] == "echo: hi"
        # The compiled graph got the worker's checkpointer: the thread kept its messages.
        state = await sdk.threads.get_state(thread["thread_id"])
        assert [m["content"] for m in state["values"]["messages"]] == ["hi", "echo: hi"]
    finally:
        await sdk.aclose()
