"""A graph with a ``context_schema`` whose fields all have defaults.

A run without ``context`` must see the defaults (the server passes an empty mapping, which
LangGraph turns into ``Context()``), never ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime


@dataclass
class Context:
    greeting: str = "hello"
    punctuation: str = "!"


class State(TypedDict, total=False):
    name: str
    answer: str


def greet(state: State, runtime: Runtime[Context]) -> State:
    context = runtime.context
    return {"answer": f"{context.greeting} {state.get('name', '')}{context.punctuation}"}


builder = StateGraph(State, context_schema=Context)
builder.add_node("greet", greet)
builder.add_edge(START, "greet")
graph = builder.compile()
