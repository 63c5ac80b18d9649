"""A one-step graph that sleeps ``delay_s`` (from the input): a run to cancel while it runs."""

from __future__ import annotations

import asyncio
from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    delay_s: float
    done: bool


async def wait(state: State) -> State:
    await asyncio.sleep(float(state.get("delay_s", 0.0)))
    return {"done": True}


builder = StateGraph(State)
builder.add_node("wait", wait)
builder.add_edge(START, "wait")
graph = builder.compile()
