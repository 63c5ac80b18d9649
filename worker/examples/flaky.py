"""A graph that fails on demand, for testing error paths.

Input ``{"fail": true}`` makes ``work`` raise ``ValueError(message)``; ``delay_s`` sleeps first,
so a failure can also happen mid-run.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class FlakyState(TypedDict, total=False):
    fail: bool
    message: str
    delay_s: float
    done: bool


class RequestedFailure(ValueError):
    """Raised when the input asks the graph to fail."""


async def work(state: FlakyState) -> FlakyState:
    await asyncio.sleep(float(state.get("delay_s", 0.0)))
    if state.get("fail"):
        raise RequestedFailure(state.get("message", "failure requested by the input"))
    return {"done": True}


def build() -> StateGraph[FlakyState]:
    builder = StateGraph(FlakyState)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder


graph = build()
