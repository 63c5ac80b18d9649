"""Graphs from a ``langgraph.json``: load, validate, compile with the worker's checkpointer.

A spec is ``"./path/file.py:attr"`` (relative to the json file) or ``"package.module:attr"``.
``attr`` may be a compiled graph (``Pregel``), a ``StateGraph`` (compiled here), or a factory:
a callable taking no argument or one ``RunnableConfig``, called once at start, returning
either. Any problem raises ``GraphLoadError`` naming the graph and the reason, so a worker
with a bad file fails at start rather than on its first run.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

# The namespace LangGraph derives assistant ids from: uuid5(NAMESPACE, graph_id).
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


class GraphLoadError(Exception):
    """A graph named in langgraph.json cannot be served; the message says which and why."""


def assistant_id_for(graph_id: str) -> str:
    """The assistant id the LangGraph Server (and its SDK) derive from a graph name."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


@dataclass(frozen=True, slots=True)
class GraphEntry:
    """One servable graph: its name, assistant id, and the graph compiled with our saver."""

    graph_id: str
    assistant_id: str
    graph: Pregel[Any, Any, Any, Any]


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


def read_specs(config_path: Path) -> dict[str, str]:
    """The ``graphs`` mapping of a langgraph.json, validated for shape."""
    try:
        doc = json.loads(config_path.read_text())
    except FileNotFoundError as exc:
        raise GraphLoadError(f"{config_path}: file not found") from exc
    except (OSError, ValueError) as exc:
        raise GraphLoadError(f"{config_path}: cannot read JSON: {exc}") from exc
    graphs = doc.get("graphs") if isinstance(doc, dict) else None
    if not isinstance(graphs, dict) or not graphs:
        raise GraphLoadError(f'{config_path}: no "graphs" object naming at least one graph')
    specs: dict[str, str] = {}
    for name, spec in graphs.items():
        if isinstance(spec, dict):  # {"path": "...", "description": "..."} form
            spec = spec.get("path")
        if not isinstance(spec, str) or ":" not in spec:
            raise GraphLoadError(
                f"graph {name!r}: spec {spec!r} is not 'path/to/file.py:attr' or 'module:attr'"
            )
        specs[name] = spec
    return specs


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


def _call_factory(name: str, factory: Any) -> Any:
    try:
        params = [
            p
            for p in inspect.signature(factory).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) > 1:
        raise GraphLoadError(f"graph {name!r}: a factory takes at most one argument (a config)")
    if inspect.iscoroutinefunction(factory):
        raise GraphLoadError(f"graph {name!r}: async factories are not supported")
    try:
        return factory({"configurable": {}}) if params else factory()
    except Exception as exc:
        raise GraphLoadError(f"graph {name!r}: factory raised {type(exc).__name__}: {exc}") from exc


def _as_compiled(
    name: str, obj: Any, checkpointer: BaseCheckpointSaver[Any]
) -> Pregel[Any, Any, Any, Any]:
    if isinstance(obj, StateGraph):
        try:
            return obj.compile(checkpointer=checkpointer)
        except Exception as exc:
            raise GraphLoadError(
                f"graph {name!r}: compiling the StateGraph failed: {type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(obj, Pregel):
        # A graph compiled by the user keeps its nodes; the worker supplies persistence.
        return obj.copy(update={"checkpointer": checkpointer})
    raise GraphLoadError(
        f"graph {name!r}: expected a compiled graph, a StateGraph or a factory of one, "
        f"got {type(obj).__name__}"
    )


def load_graph_objects(config_path: Path) -> dict[str, Any]:
    """Import every graph of ``config_path``: name → ``StateGraph`` or ``Pregel``.

    Separate from compiling so that a bad file fails before any store is opened.
    """
    specs = read_specs(config_path)
    base_dir = config_path.resolve().parent
    objects: dict[str, Any] = {}
    for name, spec in specs.items():
        obj = _resolve_attr(name, spec, base_dir)
        if not isinstance(obj, StateGraph | Pregel) and callable(obj):
            obj = _call_factory(name, obj)
        if not isinstance(obj, StateGraph | Pregel):
            raise GraphLoadError(
                f"graph {name!r}: expected a compiled graph, a StateGraph or a factory of one, "
                f"got {type(obj).__name__}"
            )
        objects[name] = obj
    return objects


def compile_graphs(
    objects: Mapping[str, Any], checkpointer: BaseCheckpointSaver[Any]
) -> GraphRegistry:
    """Bind every graph to the worker's checkpointer."""
    return GraphRegistry(
        {
            name: GraphEntry(
                graph_id=name,
                assistant_id=assistant_id_for(name),
                graph=_as_compiled(name, obj, checkpointer),
            )
            for name, obj in objects.items()
        }
    )
