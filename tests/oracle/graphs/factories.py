"""Graph factories of every signature the LangGraph Server accepts.

Each graph answers with what its factory was given, so a run shows how the server called
it: ``kind`` names the factory, ``model`` comes from the run's ``config["configurable"]``
and ``access`` from the ``ServerRuntime`` (its ``access_context``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph_sdk.runtime import ServerRuntime


class State(TypedDict, total=False):
    question: str
    answer: str


def _build(kind: str, model: str = "-", access: str = "-") -> Any:
    def answer(state: State) -> State:
        return {"answer": f"{kind} model={model} access={access} q={state.get('question')}"}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder.compile()


def _model(config: RunnableConfig) -> str:
    return str((config.get("configurable") or {}).get("model", "default"))


def plain() -> Any:
    return _build("plain")


def with_config(config: RunnableConfig) -> Any:
    return _build("config", model=_model(config))


def with_runtime(runtime: ServerRuntime) -> Any:
    return _build("runtime", access=runtime.access_context)


def with_both(runtime: ServerRuntime, config: RunnableConfig) -> Any:
    return _build("both", model=_model(config), access=runtime.access_context)


async def async_with_both(config: RunnableConfig, runtime: ServerRuntime) -> Any:
    return _build("async", model=_model(config), access=runtime.access_context)


@contextlib.contextmanager
def context_managed(config: RunnableConfig) -> Iterator[Any]:
    yield _build("cm", model=_model(config))


@contextlib.asynccontextmanager
async def async_context_managed(
    runtime: ServerRuntime,
) -> AsyncIterator[Any]:
    yield _build("acm", access=runtime.access_context)
