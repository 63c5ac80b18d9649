"""A graph from a ``module:attr`` spec that reads a variable langgraph.json's ``env`` sets."""

from __future__ import annotations

import os
from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    greeting: str


def greet(state: State) -> State:
    return {"greeting": os.environ.get("ORACLE_GREETING", "unset")}


builder = StateGraph(State)
builder.add_node("greet", greet)
builder.add_edge(START, "greet")
graph = builder.compile()
