"""A graph with long-term memory: it stores what it is told and recalls related memories.

``remember`` writes through ``get_store()``; ``recall`` reads through the ``store`` parameter
LangGraph injects, so both ways a graph reaches the server's store are exercised.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore


class MemoryState(TypedDict, total=False):
    user: str
    text: str
    query: str
    recalled: list[str]


async def remember(state: MemoryState) -> dict[str, Any]:
    store = get_store()
    if state.get("text"):
        await store.aput(("memories", state["user"]), state["text"], {"text": state["text"]})
    return {}


async def recall(state: MemoryState, *, store: BaseStore) -> dict[str, Any]:
    found = await store.asearch(("memories", state["user"]), query=state.get("query"), limit=10)
    return {"recalled": [item.value["text"] for item in found]}


builder = StateGraph(MemoryState)
builder.add_node("remember", remember)
builder.add_node("recall", recall)
builder.add_edge(START, "remember")
builder.add_edge("remember", "recall")
builder.add_edge("recall", END)
graph = builder.compile()
