"""Which assistant a run runs, and what config and context it gets from it.

A run names an assistant by id or by graph name (the graph's default assistant, whose id
is ``uuid5(namespace, graph_id)``). Assistants live in the store, so a run on any worker
finds one created through any other. ``apply_assistant`` merges the assistant's config and
context under the run's as the LangGraph Server does; runs call it once, when created, and
store the merged spec, so a run resumed elsewhere runs with the same values.
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.errors import BadRequest, NotFound, Unprocessable
from worker.graphs import GraphEntry, GraphRegistry
from worker.runs.model import RunSpec
from worker.store.assistants import ConfigContextConflict, new_assistant
from worker.store.base import AssistantPatch, AssistantRecord, Store

SYSTEM_METADATA = {"created_by": "system"}


@dataclass(frozen=True, slots=True)
class ResolvedAssistant:
    """A run's assistant and the graph it runs; ``cached``: the assistant came from an
    ``AssistantCache``, so it may have changed since."""

    assistant: AssistantRecord
    entry: GraphEntry
    cached: bool = False


def default_assistant_name(entry: GraphEntry) -> str:
    """The graph's own name unless it is LangGraph's default name, else the graph id."""
    name = getattr(entry.graph, "name", None)
    return name if name and name != "LangGraph" else entry.graph_id


async def ensure_default_assistants(
    store: Store, graphs: GraphRegistry, now: datetime | None = None
) -> None:
    """Create each graph's default assistant unless it exists (every worker does, at start).

    An existing one whose name no longer matches the graph is patched (a new version), as
    the LangGraph Server does on start.
    """
    for entry in graphs:
        name = default_assistant_name(entry)
        made = await store.create_assistant(
            new_assistant(
                assistant_id=entry.assistant_id,
                graph_id=entry.graph_id,
                now=now or datetime.now(UTC),
                metadata=SYSTEM_METADATA,
                name=name,
            ),
            if_exists="do_nothing",
        )
        if made.name != name:
            await store.patch_assistant(entry.assistant_id, AssistantPatch(name=name))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class AssistantCache:
    """Assistants as last read from the store, by id: the most recently used ``size``.

    An entry may be stale (another worker may have changed the assistant since), so a run
    made from one is written only if the assistant is still as read (``Store.begin_run``'s
    ``assistant``); when it is not, the entry is forgotten and the run made anew.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[str, AssistantRecord] = OrderedDict()

    def get(self, assistant_id: str) -> AssistantRecord | None:
        record = self._items.get(assistant_id)
        if record is not None:
            self._items.move_to_end(assistant_id)
        return record

    def put(self, record: AssistantRecord) -> None:
        self._items[record.assistant_id] = record
        self._items.move_to_end(record.assistant_id)
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def forget(self, assistant_id: str) -> None:
        self._items.pop(assistant_id, None)


async def resolve_assistant(
    store: Store,
    graphs: GraphRegistry,
    assistant_or_graph_id: str,
    cache: AssistantCache | None = None,
) -> ResolvedAssistant:
    """The assistant a run names: a graph name means that graph's default assistant; from
    ``cache`` when it has it (see ``AssistantCache`` for what that asks of the caller).

    422 when the name is neither a UUID nor a graph served here; 404 when no such assistant
    exists, or its graph is not served by this worker.
    """
    entry = graphs.get(assistant_or_graph_id)
    assistant_id = entry.assistant_id if entry is not None else assistant_or_graph_id
    if entry is None and not _is_uuid(assistant_or_graph_id):
        raise Unprocessable(
            f"Invalid assistant: {assistant_or_graph_id!r}. Must be either a valid assistant "
            f"UUID or one of the registered graphs: {', '.join(graphs.names)}",
            code="invalid_assistant",
        )
    assistant = cache.get(assistant_id) if cache is not None else None
    cached = assistant is not None
    if assistant is None:
        assistant = await store.get_assistant(assistant_id)
        if assistant is None:
            raise NotFound(f"assistant {assistant_id} not found", code="assistant_not_found")
        if cache is not None:
            cache.put(assistant)
    served = graphs.get(assistant.graph_id)
    if served is None or served.graph_id != assistant.graph_id:
        raise NotFound(
            f"assistant {assistant_id} runs graph {assistant.graph_id!r}, which this worker "
            f"does not serve (graphs served here: {', '.join(graphs.names)})",
            code="assistant_not_found",
        )
    return ResolvedAssistant(assistant, served, cached)


def merge_run_config(
    assistant: AssistantRecord, config: Mapping[str, Any] | None, context: Any
) -> tuple[dict[str, Any], Any]:
    """The run's ``(config, context)`` over the assistant's, as the LangGraph Server merges.

    The run's context and its ``config["configurable"]`` are one value (context wins as the
    newer spelling; both at once is a 400). Config merges key by key over the assistant's,
    ``configurable`` one level deeper; context key by key over the assistant's. A context
    that is not an object is the graph's business: it passes unmerged.
    """
    run_config = copy.deepcopy(dict(config or {}))
    configurable = dict(run_config.get("configurable") or {})
    if isinstance(context, Mapping) and context:
        if configurable:
            raise BadRequest(str(ConfigContextConflict()), code="config_and_context")
        configurable = copy.deepcopy(dict(context))
    base_configurable = copy.deepcopy(assistant.config.get("configurable") or {})
    merged_config = {
        **copy.deepcopy(assistant.config),
        **run_config,
        "configurable": {**base_configurable, **configurable},
    }
    if context is not None and not isinstance(context, Mapping):
        return merged_config, context
    run_context = dict(context) if context else configurable
    return merged_config, {**copy.deepcopy(assistant.context), **copy.deepcopy(run_context)}


@functools.lru_cache(maxsize=256)
def _context_keys(graph: Any) -> frozenset[str] | None:
    """The keys the graph's context schema names; None when it has none (anything goes)."""
    if getattr(graph, "context_schema", None) is None:
        return None
    try:
        properties = (graph.get_context_jsonschema() or {}).get("properties")
    except Exception:
        return None
    return frozenset(properties) if properties else None


def context_for_graph(graph: Any, context: Any) -> Any:
    """``context`` without the keys the graph's context schema does not name.

    As the LangGraph Server filters: a ``configurable`` mirrored into the context (or an
    assistant's context written for another graph) must not make a context dataclass
    refuse its arguments.
    """
    if not isinstance(context, Mapping) or not context:
        return context
    keys = _context_keys(graph)
    if keys is None:
        return context
    return {k: v for k, v in context.items() if k in keys}


def apply_assistant(spec: RunSpec, resolved: ResolvedAssistant) -> RunSpec:
    """``spec`` as the run executes it: the assistant's config and context merged in
    (``merge_run_config``), the context fitted to the graph (``context_for_graph``)."""
    config, context = merge_run_config(resolved.assistant, spec.config, spec.context)
    context = context_for_graph(resolved.entry.graph, context)
    return spec.model_copy(update={"config": config, "context": context})
