"""A node that writes to and searches the server's store (``get_store()``)."""

from __future__ import annotations

from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    note: str
    notes_seen: int


def remember(state: State) -> State:
    store = get_store()
    store.put(("notes",), state.get("note", "empty"), {"text": state.get("note", "")})
    return {"notes_seen": len(store.search(("notes",), limit=100))}


builder = StateGraph(State)
builder.add_node("remember", remember)
builder.add_edge(START, "remember")
graph = builder.compile()
