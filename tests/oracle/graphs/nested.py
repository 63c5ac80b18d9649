"""A parent graph whose middle node is a compiled subgraph sharing the ``steps`` key."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]


def _step(name: str) -> Any:
    def step(state: State) -> State:
        return {"steps": [name]}

    return step


inner = StateGraph(State)
inner.add_node("inner_step", _step("inner"))
inner.add_edge(START, "inner_step")

builder = StateGraph(State)
builder.add_node("before", _step("before"))
builder.add_node("child", inner.compile())
builder.add_node("after", _step("after"))
builder.add_edge(START, "before")
builder.add_edge("before", "child")
builder.add_edge("child", "after")
graph = builder.compile()
