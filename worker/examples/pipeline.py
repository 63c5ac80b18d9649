"""A multi-step pipeline that reports its progress through custom stream events.

Each step sleeps ``delay_s`` seconds (from the input, else ``context``, else
``config["configurable"]``, default 0) and then appends its name to ``steps``. Before and
after its work a step writes ``{"step", "progress"}`` to the ``custom`` stream through
``get_stream_writer()``, which is what a progress bar in a client listens to.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import get_runtime

STEPS = ("extract", "transform", "load")


class PipelineState(TypedDict, total=False):
    payload: Any
    delay_s: float
    steps: Annotated[list[str], operator.add]


def _delay_s(state: PipelineState, config: RunnableConfig) -> float:
    if "delay_s" in state:
        return float(state["delay_s"])
    context = get_runtime().context
    if isinstance(context, dict) and "delay_s" in context:
        return float(context["delay_s"])
    configurable = config.get("configurable") or {}
    return float(configurable.get("delay_s", 0.0))


def _make_step(name: str, index: int) -> Any:
    async def step(state: PipelineState, config: RunnableConfig) -> PipelineState:
        write = get_stream_writer()
        write({"step": name, "index": index, "progress": index / len(STEPS)})
        await asyncio.sleep(_delay_s(state, config))
        write({"step": name, "index": index + 1, "progress": (index + 1) / len(STEPS)})
        return {"steps": [name]}

    step.__name__ = name
    return step


def build() -> StateGraph[PipelineState]:
    builder = StateGraph(PipelineState)
    previous = START
    for index, name in enumerate(STEPS):
        builder.add_node(name, _make_step(name, index))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


# The worker compiles a StateGraph with its own checkpointer.
graph = build()
