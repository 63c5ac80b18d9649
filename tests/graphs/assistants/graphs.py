"""Graphs for the assistant tests: one that answers from its context and config, one nested.

``greeter`` has a ``context_schema`` with defaults and reports what a run gave it: the
greeting from its context and the ``model`` of its ``configurable``, so a test sees which
assistant's values a run used. ``nested`` runs ``greeter``'s node inside a subgraph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


@dataclass
class Context:
    greeting: str = "hello"
    punctuation: str = "!"


class State(TypedDict, total=False):
    name: str
    answer: str
    model: Any


def greet(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> State:
    context = runtime.context
    return {
        "answer": f"{context.greeting} {state.get('name', '')}{context.punctuation}",
        "model": (config.get("configurable") or {}).get("model"),
    }


_builder = StateGraph(State, context_schema=Context)
_builder.add_node("greet", greet)
_builder.add_edge(START, "greet")
greeter = _builder.compile(name="greeter")

_outer = StateGraph(State, context_schema=Context)
_outer.add_node("inner", greeter)
_outer.add_edge(START, "inner")
nested = _outer.compile()
