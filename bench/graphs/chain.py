"""The benchmark's graph: five nodes in a chain, no LLM.

Each node appends its name to ``steps`` and adds its index to ``total``, so a run's cost is
LangGraph's own work (state merging, checkpoints) plus whatever the server around it adds.
`langgraph dev`, graphfleet's workers and the in-process baseline all load this same file.
An input ``sleep_s`` (default 0) spreads that much waiting over the five nodes: the routing
scenario's long runs, which hold a worker's slot without using its CPU.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

NODES = ("n1", "n2", "n3", "n4", "n5")


class ChainState(TypedDict, total=False):
    value: int
    total: int
    sleep_s: float
    steps: Annotated[list[str], operator.add]


def _make_node(name: str, index: int) -> Any:
    async def node(state: ChainState) -> ChainState:
        sleep_s = state.get("sleep_s", 0.0)
        if sleep_s > 0:
            await asyncio.sleep(sleep_s / len(NODES))
        return {"total": state.get("total", 0) + index, "steps": [name]}

    node.__name__ = name
    return node


def build() -> StateGraph[ChainState]:
    builder = StateGraph(ChainState)
    previous = START
    for index, name in enumerate(NODES, start=1):
        builder.add_node(name, _make_node(name, index))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


graph = build().compile()
