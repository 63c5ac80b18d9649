"""Graph factories, classified and called as the LangGraph Server (``langgraph-api``) does.

A factory takes 0 parameters, 1 (a ``RunnableConfig``, or a ``ServerRuntime`` when annotated
so), or 2 (one of each, told apart by annotation, passed by keyword). It may be sync or
async, and return a graph or an (async) context manager of one. The classification follows
``langgraph_api._factory_utils`` (every parameter counts, defaults or not; string
annotations resolve with ``ServerRuntime`` and ``RunnableConfig`` in scope), so a factory
the official server accepts is accepted here and one it refuses is refused at start.

The ``ServerRuntime`` given is the SDK's own class: ``_ExecutionRuntime`` (with the run's
``context``) when a run executes, ``_ReadRuntime`` otherwise.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import typing
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from langchain_core.runnables import RunnableConfig
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import ServerRuntime, _ExecutionRuntime, _ReadRuntime

from worker.graph_config import GraphLoadError

AccessContext = Literal["threads.create_run", "threads.update", "threads.read", "assistants.read"]
# (config, runtime) -> the keyword arguments of one call.
ArgumentPlan = Callable[[RunnableConfig, Any], dict[str, Any]]

_RUNTIME_CLASSES: tuple[type, ...] = (_ExecutionRuntime, _ReadRuntime)
# Lets ``runtime: "ServerRuntime"`` resolve when the user imported it under TYPE_CHECKING.
_LOCALNS: dict[str, Any] = {
    "ServerRuntime": ServerRuntime,
    "RunnableConfig": RunnableConfig,
    "Config": RunnableConfig,
}


def is_runtime_annotation(annotation: Any) -> bool:
    """Whether ``annotation`` names ``ServerRuntime`` (bare, parameterised, or ``Annotated``)."""
    if annotation is inspect.Parameter.empty:
        return False
    if annotation is ServerRuntime:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, _RUNTIME_CLASSES)
    origin = get_origin(annotation)
    if origin is None:
        return False
    if origin is ServerRuntime:
        return True
    args = get_args(annotation)
    return bool(args) and is_runtime_annotation(args[0])


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, localns=_LOCALNS)
    except Exception:  # unresolvable annotations: fall back to the raw ones
        return {}


def classify(graph_id: str, fn: Callable[..., Any]) -> ArgumentPlan:
    """How to call ``fn`` for one access; ``GraphLoadError`` for a signature the server refuses."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise GraphLoadError(f"graph {graph_id!r}: cannot read the factory's signature") from exc
    hints = _hints(fn)
    is_runtime = [is_runtime_annotation(hints.get(p.name, p.annotation)) for p in params]
    names = [p.name for p in params]
    if not params:
        return lambda config, runtime: {}
    if len(params) == 1:
        if is_runtime[0]:
            return lambda config, runtime: {names[0]: runtime}
        return lambda config, runtime: {names[0]: config}
    if len(params) == 2 and is_runtime.count(True) == 1:
        runtime_name = names[is_runtime.index(True)]
        config_name = names[is_runtime.index(False)]
        return lambda config, runtime: {runtime_name: runtime, config_name: config}
    if len(params) == 2:
        raise GraphLoadError(
            f"graph {graph_id!r}: a two-argument factory takes one ServerRuntime (annotated "
            f"so) and one RunnableConfig, got {names}"
        )
    raise GraphLoadError(f"graph {graph_id!r}: a factory takes 0, 1 or 2 arguments, got {names}")


def server_runtime(
    access_context: AccessContext, store: BaseStore | None, context: Any = None
) -> Any:
    """The ``ServerRuntime`` handed to a factory: with ``context`` only when a run executes."""
    if access_context == "threads.create_run":
        # copy.copy keeps a dataclass or pydantic context's type while the graph gets its own.
        return _ExecutionRuntime(
            access_context=access_context,
            store=store,  # type: ignore[arg-type]
            context=copy.copy(context) if context is not None else None,
        )
    return _ReadRuntime(access_context=access_context, store=store)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def _entered(value: Any) -> AsyncIterator[Any]:
    """One async context manager over what a factory returned: (async) CM, coroutine, value."""
    if hasattr(value, "__aenter__") and hasattr(value, "__aexit__"):
        async with value as result:
            yield result
    elif hasattr(value, "__enter__") and hasattr(value, "__exit__"):
        with value as result:
            yield result
    elif inspect.isawaitable(value):
        yield await value
    else:
        yield value


@dataclass(frozen=True, slots=True)
class GraphFactory:
    """A user's graph factory and how to call it; ``open`` builds one graph for one access."""

    graph_id: str
    fn: Callable[..., Any]
    plan: ArgumentPlan

    @classmethod
    def of(cls, graph_id: str, fn: Callable[..., Any]) -> GraphFactory:
        return cls(graph_id, fn, classify(graph_id, fn))

    @contextlib.asynccontextmanager
    async def open(self, config: RunnableConfig, runtime: Any) -> AsyncIterator[Any]:
        """Call the factory and hold what it returned open (a context manager's body)
        while the caller uses the graph."""
        async with _entered(self.fn(**self.plan(config, runtime))) as graph:
            yield graph
