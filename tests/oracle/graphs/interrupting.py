"""A graph that stops at ``interrupt()`` for a human's answer, then finishes with it."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    question: str
    answer: str


def ask(state: State) -> State:
    answer = interrupt({"question": state.get("question", "")})
    return {"answer": str(answer)}


builder = StateGraph(State)
builder.add_node("ask", ask)
builder.add_edge(START, "ask")
builder.add_edge("ask", END)
graph = builder.compile()
