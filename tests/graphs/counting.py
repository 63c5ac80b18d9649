"""A three-step graph whose steps record each execution, for crash-recovery tests.

Each step sleeps ``delay_s`` and then appends its name to the file named by ``log`` (a line
per execution, so a step run twice shows twice) and to ``steps``. With ``gate``, every step
after the first also waits until that file exists: a test can kill a worker while the second
step is surely under way, then open the gate.
"""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

STEPS = ("first", "second", "third")


class CountingState(TypedDict, total=False):
    log: str
    gate: str
    delay_s: float
    steps: Annotated[list[str], operator.add]


def _exists(path: str) -> bool:
    return Path(path).exists()


def _record(path: str, name: str) -> None:
    with Path(path).open("a") as log:
        log.write(name + "\n")


def _step(name: str) -> Any:
    async def step(state: CountingState) -> CountingState:
        await asyncio.sleep(float(state.get("delay_s", 0.0)))
        gate = state.get("gate")
        # Polled: the opener is another process (a test), which cannot set an asyncio.Event.
        while gate and name != STEPS[0] and not _exists(gate):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        _record(state["log"], name)
        return {"steps": [name]}

    step.__name__ = name
    return step


def build() -> StateGraph[CountingState]:
    builder = StateGraph(CountingState)
    previous = START
    for name in STEPS:
        builder.add_node(name, _step(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


graph = build()
