"""Graphs from a ``langgraph.json``: load, validate, compile with the worker's checkpointer.

A spec is ``"./path/file.py:attr"`` (relative to the json file) or ``"package.module:attr"``
(importable, for instance from a ``dependencies`` directory; see ``worker.graph_config``).
``attr`` may be a compiled graph (``Pregel``), a ``StateGraph`` (compiled here), or a factory
of either (see ``worker.graph_factories`` for the signatures accepted). A factory is called
once at start (with a read-only ``ServerRuntime``) to check it and to give the worker a graph
for state reads, then once per run with the run's config (``GraphEntry.for_run``), as the
LangGraph Server does. Each graph is also bound to the worker's in-memory saver
(``GraphEntry.scratch``), for runs whose checkpoints end with them. Any problem at start
raises ``GraphLoadError`` naming the graph and the reason, so a worker with a bad file fails
at start rather than on its first run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from worker.graph_config import GraphLoadError, apply_config, read_config
from worker.graph_factories import GraphFactory, server_runtime

__all__ = [
    "ASSISTANT_NAMESPACE",
    "GraphEntry",
    "GraphLoadError",
    "GraphRegistry",
    "assistant_id_for",
    "compile_graphs",
    "context_for",
    "load_graph_objects",
    "read_specs",
]

# The namespace LangGraph derives assistant ids from: uuid5(NAMESPACE, graph_id).
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
# The config a factory gets when no run is involved (start, state reads).
_READ_CONFIG: RunnableConfig = {"configurable": {}}


def assistant_id_for(graph_id: str) -> str:
    """The assistant id the LangGraph Server (and its SDK) derive from a graph name."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


def context_for(context: Any) -> Any:
    """The ``context`` a run executes with: the caller's, else an empty mapping, never ``None``.

    As the LangGraph Server does: LangGraph turns ``{}`` into the graph's ``context_schema``
    with its defaults (a dataclass or pydantic model built with no argument), so a node reads
    ``runtime.context.field`` whether or not the caller sent a context.
    """
    return {} if context is None else context


def _bind(
    name: str, obj: Any, checkpointer: BaseCheckpointSaver[Any], store: BaseStore | None
) -> Pregel[Any, Any, Any, Any]:
    """``obj`` compiled (if a ``StateGraph``) and given the worker's persistence."""
    update: dict[str, Any] = {"checkpointer": checkpointer}
    if store is not None:
        update["store"] = store
    if isinstance(obj, StateGraph):
        try:
            obj = obj.compile()
        except Exception as exc:
            raise GraphLoadError(
                f"graph {name!r}: compiling the StateGraph failed: {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(obj, Pregel):
        if obj.name == "LangGraph":  # the default name: the server names it after the graph
            update["name"] = name
        # A graph compiled by the user keeps its nodes; the worker supplies persistence.
        return obj.copy(update=update)
    raise GraphLoadError(
        f"graph {name!r}: expected a compiled graph, a StateGraph or a factory of one, "
        f"got {type(obj).__name__}"
    )


@dataclass(frozen=True, slots=True)
class GraphEntry:
    """One servable graph: its name, assistant id, and the graph compiled with our saver.

    For a factory, ``graph`` is the one built at start: right for reading and updating
    state (same nodes and channels), while runs execute the graph ``for_run`` builds.
    ``scratch`` is ``graph`` on the worker's in-memory saver: the graph of a run whose
    checkpoints end with it (``ActiveRun.scratch``), so the store never sees them.
    """

    graph_id: str
    assistant_id: str
    graph: Pregel[Any, Any, Any, Any]
    factory: GraphFactory | None = None
    store: BaseStore | None = None
    scratch: Pregel[Any, Any, Any, Any] | None = None

    def graph_for(self, *, scratch: bool) -> Pregel[Any, Any, Any, Any]:
        """The graph holding a run's checkpoints: ``scratch`` or the store's."""
        return self.scratch if scratch and self.scratch is not None else self.graph

    def forget(self, thread_id: str) -> None:
        """Drop a thread's checkpoints from the scratch saver (its run ended here)."""
        if self.scratch is not None and isinstance(self.scratch.checkpointer, InMemorySaver):
            self.scratch.checkpointer.delete_thread(thread_id)

    @contextlib.asynccontextmanager
    async def for_run(
        self, config: RunnableConfig, context: Any, *, scratch: bool = False
    ) -> AsyncIterator[Pregel[Any, Any, Any, Any]]:
        """The graph one run executes, held open for the run (a factory's context manager
        exits when the run ends). Without a factory, the one compiled graph."""
        graph = self.graph_for(scratch=scratch)
        if self.factory is None:
            yield graph
            return
        runtime = server_runtime("threads.create_run", self.store, context)
        async with self.factory.open(config, runtime) as obj:
            yield _bind(self.graph_id, obj, graph.checkpointer, self.store)  # type: ignore[arg-type]


class GraphRegistry:
    """The graphs of this worker, addressable by graph name or by assistant id."""

    def __init__(self, entries: Mapping[str, GraphEntry]) -> None:
        self._by_graph = dict(entries)
        self._by_assistant = {e.assistant_id: e for e in entries.values()}

    def __iter__(self) -> Any:
        return iter(self._by_graph.values())

    def __len__(self) -> int:
        return len(self._by_graph)

    def get(self, graph_or_assistant_id: str) -> GraphEntry | None:
        return self._by_graph.get(graph_or_assistant_id) or self._by_assistant.get(
            graph_or_assistant_id
        )

    @property
    def names(self) -> list[str]:
        return list(self._by_graph)

    def context_for(self, graph_id: str, context: Any) -> Any:
        """See the module function ``context_for`` (the same for every graph today)."""
        return context_for(context)


def read_specs(config_path: Path) -> dict[str, str]:
    """The ``graphs`` mapping of a langgraph.json, validated for shape."""
    return read_config(config_path).graphs


def _import_file(name: str, path: Path) -> ModuleType:
    module_name = f"graphfleet_graphs.{name}.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before executing so dataclasses and pickling can find the module.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _resolve_attr(name: str, spec: str, base_dir: Path) -> Any:
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py") or "/" in target:
            path = (base_dir / target).resolve()
            if not path.is_file():
                raise GraphLoadError(f"graph {name!r}: file {path} does not exist")
            module = _import_file(name, path)
        else:
            module = importlib.import_module(target)
    except GraphLoadError:
        raise
    except Exception as exc:
        raise GraphLoadError(
            f"graph {name!r}: importing {target!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, attr):
        raise GraphLoadError(f"graph {name!r}: {target!r} has no attribute {attr!r}")
    return getattr(module, attr)


def load_graph_objects(config_path: Path) -> dict[str, Any]:
    """Import every graph of ``config_path``: name → ``StateGraph``, ``Pregel`` or ``GraphFactory``.

    ``dependencies`` and ``env`` are applied first, as the official CLI does before importing.
    Separate from compiling so that a bad file fails before any store is opened.
    """
    config = read_config(config_path)
    apply_config(config)
    objects: dict[str, Any] = {}
    for name, spec in config.graphs.items():
        obj = _resolve_attr(name, spec, config.base_dir)
        if isinstance(obj, StateGraph | Pregel):
            objects[name] = obj
        elif callable(obj):
            objects[name] = GraphFactory.of(name, obj)
        else:
            raise GraphLoadError(
                f"graph {name!r}: expected a compiled graph, a StateGraph or a factory of one, "
                f"got {type(obj).__name__}"
            )
    return objects


async def _start_graph(
    name: str,
    obj: Any,
    checkpointer: BaseCheckpointSaver[Any],
    store: BaseStore | None,
    scratch: BaseCheckpointSaver[Any],
) -> GraphEntry:
    factory = obj if isinstance(obj, GraphFactory) else None
    if factory is None:
        graph = _bind(name, obj, checkpointer, store)
    else:
        try:
            runtime = server_runtime("assistants.read", store)
            async with factory.open(_READ_CONFIG, runtime) as built:
                graph = _bind(name, built, checkpointer, store)
        except GraphLoadError:
            raise
        except Exception as exc:
            raise GraphLoadError(
                f"graph {name!r}: factory raised {type(exc).__name__}: {exc}"
            ) from exc
    return GraphEntry(
        name,
        assistant_id_for(name),
        graph,
        factory=factory,
        store=store if factory is not None else None,
        scratch=graph.copy(update={"checkpointer": scratch}),
    )


async def compile_graphs(
    objects: Mapping[str, Any],
    checkpointer: BaseCheckpointSaver[Any],
    store: BaseStore | None = None,
) -> GraphRegistry:
    """Bind every graph to the worker's checkpointer (and ``store``, when there is one).

    Each factory is called once here: one that raises or returns no graph fails the start.
    The scratch saver shared by every graph encodes as ``checkpointer`` does.
    """
    scratch = InMemorySaver(serde=checkpointer.serde)
    return GraphRegistry(
        {
            name: await _start_graph(name, obj, checkpointer, store, scratch)
            for name, obj in objects.items()
        }
    )
